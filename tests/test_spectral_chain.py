"""SpectralChain / fuse_spectral: consecutive spectral stages on one STFT.

The fused chain must equal, frame for frame, the members' spectral processing
applied in order to one analysis (so it is the same maths, one transform
instead of several), stay chunk-size invariant, keep each member's report, and
sit in every stem chain the pipeline builds, with one frame of latency per
fused group instead of one per stage."""
from __future__ import annotations

import numpy as np
import pytest

from engine.audio import STEM_NAMES
from engine.dsp.spectral_chain import SpectralChain, fuse_spectral, fusable
from engine.dsp.stft import StreamingSTFTStage
from engine.enhance.lsa import LSANoiseSuppressor
from engine.errors import SettingsError
from engine.pipeline import build_stem_chain, stage_reports
from engine.restore.bandwidth import HighBandExtender
from engine.restore.tonal import BAND_CENTRES_HZ, TonalCorrector
from engine.stage import Chain, Delay, run_in_blocks

SR = 44100


def _music(seconds: float = 3.0, seed: int = 3) -> np.ndarray:
    """Band-limited (below 6 kHz) tones plus noise, stereo float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = sum(0.2 / k * np.sin(2 * np.pi * 220.0 * k * t + k) for k in range(1, 20) if 220.0 * k < 6000)
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal((2, n))) * (np.fft.rfftfreq(n, 1 / SR) < 6000), n=n)
    return (np.stack([x, 0.8 * x]) + 0.02 * noise).astype(np.float32)


def _members():
    gains = np.linspace(-3.0, 4.0, len(BAND_CENTRES_HZ))
    return [LSANoiseSuppressor(strength=0.8), TonalCorrector(gains), HighBandExtender(6000.0, amount=1.0)]


def test_fused_chain_is_the_members_in_order_on_one_stft():
    x = _music()

    class Reference(StreamingSTFTStage):
        """One STFT whose process_frames runs fresh members by hand."""
        fft_dtype = np.float32

        def __init__(self):
            super().__init__()
            self.members = _members()

        def process_frames(self, spectra, ends):
            s = spectra
            for m in self.members:
                out = m.process_frames(s, ends)
                s = (s + out).astype(np.complex64) if m.add_to_dry else out
            return s

    want = run_in_blocks(Reference(), x, [SR])
    got = run_in_blocks(SpectralChain(_members()), x, [SR])
    np.testing.assert_array_equal(got, want)
    # and it really changed the signal (noise suppressed, tilt applied, band above 6 kHz added)
    assert np.max(np.abs(got[:, 2047:2047 + x.shape[1]] - x)) > 1e-2


def test_fused_chain_is_chunk_size_invariant_and_keeps_reports():
    x = _music()
    whole = SpectralChain(_members())
    a = run_in_blocks(whole, x, None)
    cut = SpectralChain(_members())
    b = run_in_blocks(cut, x, [1, 511, 2048, 7919, 3])
    np.testing.assert_array_equal(a, b)
    assert whole.latency == 2047
    assert a.shape[1] == x.shape[1] + 2047
    reps = stage_reports(Chain([whole]))
    assert [r.get("stage", "high_band_extender" if "cutoff_hz" in r else None) for r in reps] == [
        "noise_reduction", "tonal_corrector", "high_band_extender"]
    assert reps[2]["added_db"] > 1.0  # the extender measured what it added inside the shared STFT
    whole.reset()
    np.testing.assert_array_equal(run_in_blocks(whole, x, [SR]), a)  # reset forgets every member's state


def test_fuse_groups_only_consecutive_compatible_spectral_stages():
    a, b, c = _members()
    delay = Delay(10)
    odd = LSANoiseSuppressor(frame_length=1024, hop=256)
    fused = fuse_spectral([a, b, delay, c, odd])
    assert isinstance(fused[0], SpectralChain) and fused[0].stages == [a, b]
    assert fused[1] is delay and fused[2] is c and fused[3] is odd  # a run of one stays as it is
    exciter = HighBandExtender(6000.0, harmonic_ratio=0.5)  # side-chain STFT channels: not fusable
    assert not fusable(exciter)
    out = fuse_spectral([LSANoiseSuppressor(), exciter])
    assert not any(isinstance(s, SpectralChain) for s in out)
    with pytest.raises(SettingsError):
        SpectralChain([LSANoiseSuppressor(), odd])
    with pytest.raises(SettingsError):
        SpectralChain([])


@pytest.mark.parametrize("preset", ["conservative", "balanced", "aggressive"])
def test_every_stem_chain_shares_one_stft(preset):
    from engine.master.preview import PreviewPrior
    from engine.restore.tonal import TonalProfile
    from resonate_stream.settings import Settings

    x = _music(4.0)
    head = [x[:, i:i + SR] for i in range(0, x.shape[1], SR)]
    cfg = Settings.from_preset(preset).pipeline_config((120.0, 6000.0), PreviewPrior.measure(head),
                                                       tonal_profile=TonalProfile.measure(head))
    for stem in STEM_NAMES:
        chain = build_stem_chain(stem, cfg)
        spectral = [s for s in chain.stages if isinstance(s, StreamingSTFTStage)]
        assert len(spectral) == 1, (stem, [s.name for s in chain.stages])
        assert isinstance(spectral[0], SpectralChain) and len(spectral[0].stages) >= 2
        assert chain.latency < 2 * 2048  # one frame for the whole group
