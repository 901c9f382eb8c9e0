"""StreamingSTFTStage, the one streaming STFT of every spectral stage:
exact reconstruction, latency, fixed frame grid, frame-recursive state."""
from __future__ import annotations

import numpy as np
import pytest

from engine.audio import db_to_gain
from engine.dsp.stft import StreamingSTFTStage, sqrt_hann_pair
from engine.errors import SettingsError
from engine.stage import LatencyAligned, run_in_blocks


@pytest.mark.parametrize("n, hop", [(2048, 512), (1024, 512), (512, 64), (8, 2)])
def test_windows_are_cola(n, hop):
    a, s = sqrt_hann_pair(n, hop)
    total = (a * s).reshape(n // hop, hop).sum(axis=0)
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)


def test_bad_geometry_is_refused():
    for n, hop in ((1000, 300), (512, 512), (512, 0)):
        with pytest.raises(SettingsError):
            sqrt_hann_pair(n, hop)


@pytest.mark.parametrize("n, hop", [(2048, 512), (1024, 256), (256, 128), (2048, 1024), (512, 128)])
def test_identity_reconstructs_input_delayed_by_latency(n, hop):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 9000)) * 0.3).astype(np.float32)
    stage = StreamingSTFTStage(frame_length=n, hop=hop)
    assert stage.latency == n - 1
    y = run_in_blocks(stage, x, [1, 100, 777, 4096])
    assert y.shape == (2, x.shape[1] + n - 1)
    assert np.all(y[:, :n - 1] == 0.0)
    np.testing.assert_allclose(y[:, n - 1:], x, atol=1e-6)
    aligned = run_in_blocks(LatencyAligned(StreamingSTFTStage(n, hop)), x, [333])
    np.testing.assert_allclose(aligned, x, atol=1e-6)


class FrameRecorder(StreamingSTFTStage):
    """Records the frame grid and a running per-frame state (sum of magnitudes)."""

    def __init__(self, frame_length, hop):
        super().__init__(frame_length, hop)
        self.reset_spectral_state()

    def reset_spectral_state(self):
        self.ends = []
        self.energy = 0.0

    def process_frames(self, spectra, frame_ends):
        self.ends.extend(int(e) for e in frame_ends)
        out = spectra.copy()
        for i in range(spectra.shape[0]):  # a stateful, order-dependent modification
            self.energy = 0.9 * self.energy + 0.1 * float(np.abs(spectra[i]).mean())
            out[i] *= 1.0 / (1.0 + self.energy)
        return out


def test_frames_sit_on_absolute_positions_whatever_the_chunking():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 5000)) * 0.1).astype(np.float32)
    a, b = FrameRecorder(512, 128), FrameRecorder(512, 128)
    ya = run_in_blocks(a, x, None)
    yb = run_in_blocks(b, x, [1, 2, 3, 127, 128, 129, 1000])
    assert a.ends == b.ends == list(range(128, x.shape[1] + 511 + 1, 128))
    assert np.max(np.abs(ya - yb)) < 1e-7


def test_flush_returns_latency_samples():
    stage = StreamingSTFTStage(256, 64)
    stage.process(np.ones((2, 1000), dtype=np.float32))
    assert stage.flush().shape == (2, 255)


class HalfGainAbove(StreamingSTFTStage):
    """A frame-recursive toy: gain follows a running frame counter."""

    def __init__(self, frame_length, hop):
        super().__init__(frame_length, hop)
        self.reset_spectral_state()

    def reset_spectral_state(self):
        self.count = 0

    def process_frames(self, spectra, frame_ends):
        out = spectra.copy()
        for t in range(spectra.shape[0]):
            self.count += 1
            out[t, :, 100:] *= 0.5 + 0.5 * np.cos(self.count / 10.0)
        return out


def test_frame_recursive_state_is_chunk_size_invariant_and_resets():
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal((2, 20000))).astype(np.float32)
    st = HalfGainAbove(1024, 256)
    whole = run_in_blocks(st, x)
    st.reset()
    again = run_in_blocks(st, x)
    np.testing.assert_array_equal(whole, again)
    parts = run_in_blocks(HalfGainAbove(1024, 256), x, sizes=[1, 7, 255, 256, 257, 3001, 1])
    assert np.max(np.abs(whole - parts)) < db_to_gain(-90)


class SideChainCorrection(StreamingSTFTStage):
    """add_to_dry with an extra analysis channel set: the correction is taken
    from the side-chain (here: the block negated), so dry + correction = 0."""

    add_to_dry = True

    def __init__(self):
        super().__init__(512, 128, analysis_channels=4)

    def analysis_input(self, block):
        return np.concatenate([block, -block], axis=0)

    def process_frames(self, spectra, frame_ends):
        assert spectra.shape[1] == 4
        return spectra[:, 2:]


def test_add_to_dry_and_side_chain_channels():
    rng = np.random.default_rng(3)
    x = (0.3 * rng.standard_normal((2, 6000))).astype(np.float32)
    y = run_in_blocks(SideChainCorrection(), x, [1, 500, 77])
    assert y.shape == (2, 6000 + 511)
    assert np.max(np.abs(y)) < 1e-6


def test_bad_parameters_raise():
    with pytest.raises(SettingsError):
        StreamingSTFTStage(1000, 300)
    with pytest.raises(SettingsError):
        StreamingSTFTStage(1024, 1024)
