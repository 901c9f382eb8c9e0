"""The high band edge with a confidence (engine.estimators.band_limits.high_edge_from_psd)
and the high-band extension that starts from it: synthetic phone bands over sloped content."""
from __future__ import annotations

import numpy as np
import pytest

from engine.estimators import BandLimitDetector, detect_high_edge
from engine.restore import HighBandExtender
from engine.restore.chains import build_restore_chain
from engine.restore.config import RestoreConfig
from engine.stage import LatencyAligned, run_in_blocks

SR = 44100
EDGES = (3400.0, 5000.0, 7500.0, 8000.0, 11000.0)
SLOPES = (-3.0, -6.0, -9.0, -12.0, -18.0)


def sloped(slope_db_per_oct: float, seconds: float = 2.5, seed: int = 0) -> np.ndarray:
    """Stereo noise whose spectrum falls ``slope_db_per_oct`` above 500 Hz (flat below,
    nothing under 40 Hz), 0.1 s fades (no onset click), rms 0.1, float64 ``(2, n)``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    f = np.fft.rfftfreq(n, 1.0 / SR)
    g = (np.maximum(f, 500.0) / 1000.0) ** (slope_db_per_oct / (20.0 * np.log10(2.0)))
    g[f < 40.0] = 0.0
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal((2, n)), axis=1) * g, n, axis=1)
    x *= 0.1 / np.sqrt(np.mean(x ** 2))
    m = int(0.1 * SR)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(m) / m)
    x[:, :m] *= ramp
    x[:, -m:] *= ramp[::-1]
    return x


def phone(x: np.ndarray, high_hz: float, agc: float = 0.0, floor_db: float | None = None) -> np.ndarray:
    """A phone's 6th-order Butterworth band-pass 100 Hz - ``high_hz`` (magnitude, applied
    in the frequency domain), optionally a tanh AGC and a white floor ``floor_db`` under the signal."""
    n = x.shape[-1]
    f = np.fft.rfftfreq(n, 1.0 / SR)
    h = 1.0 / np.sqrt(1.0 + (f / high_hz) ** 12) / np.sqrt(1.0 + (100.0 / np.maximum(f, 1e-3)) ** 12)
    y = np.fft.irfft(np.fft.rfft(x, axis=-1) * h, n, axis=-1)
    if agc:
        y = 0.5 * np.tanh(agc * y / np.max(np.abs(y))) / np.tanh(agc)
    if floor_db is not None:
        rng = np.random.default_rng(99)
        y = y + np.sqrt(np.mean(y ** 2)) * 10.0 ** (floor_db / 20.0) * rng.standard_normal(y.shape)
    return y


def energy_db(x: np.ndarray, lo: float, hi: float) -> float:
    f = np.fft.rfftfreq(x.shape[-1], 1.0 / SR)
    p = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    return float(10.0 * np.log10(p[..., (f >= lo) & (f < hi)].sum() + 1e-30))


@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("edge", EDGES)
def test_phone_edge_found_and_the_band_above_it_restored_to_the_truth(edge, slope):
    x = sloped(slope)
    y = phone(x, edge)
    found = detect_high_edge(y, SR)
    assert abs(found.edge_hz - edge) <= 0.1 * edge
    assert found.confidence > 0.5
    truth = energy_db(x, found.edge_hz, 20000.0)
    assert energy_db(y, found.edge_hz, 20000.0) < truth - 4.0  # really missing before
    # the extension continuing the measured slope puts back the unfiltered content's energy
    ext = HighBandExtender(found.edge_hz, 1.0, confidence=found.confidence, rolloff_db_per_oct=0.0)
    z = run_in_blocks(LatencyAligned(ext), y.astype(np.float32))
    assert abs(energy_db(z, found.edge_hz, 20000.0) - truth) <= 4.0
    # the shipped settings (an extra roll-off: real music steepens above a phone's band)
    # stay conservative: never above the truth, not far under it
    cfg = RestoreConfig()
    ext = HighBandExtender(found.edge_hz, cfg.high_band, confidence=found.confidence,
                           rolloff_db_per_oct=cfg.high_band_rolloff_db_per_oct)
    got = energy_db(run_in_blocks(LatencyAligned(ext), y.astype(np.float32)), found.edge_hz, 20000.0)
    assert truth - 9.0 <= got <= truth + 1.0


@pytest.mark.parametrize("edge", (3400.0, 8000.0))
def test_edge_found_under_agc_by_products(edge):
    found = detect_high_edge(phone(sloped(-6.0), edge, agc=2.0), SR)
    assert abs(found.edge_hz - edge) <= 0.1 * edge
    assert found.confidence > 0.5


def test_a_recording_that_already_has_energy_above_the_edge_gets_no_confidence():
    # content falling 12 dB/octave over a white floor 40 dB down: above 5 kHz the floor
    # is at (or over) what the trend continues to, so there is nothing to fill
    found = detect_high_edge(phone(sloped(-12.0), 5000.0, floor_db=-40.0), SR)
    assert found.confidence < 0.1
    # and the chain then regenerates nothing
    chain = build_restore_chain("vocals", RestoreConfig(), (100.0, 5000.0), (found.edge_hz, found.confidence))
    assert not any(isinstance(s, HighBandExtender) for s in chain.stages)
    # a lower floor leaves a clear edge again
    assert detect_high_edge(phone(sloped(-9.0), 5000.0, floor_db=-45.0), SR).confidence > 0.9


@pytest.mark.parametrize("slope", (-3.0, -12.0, -24.0))
def test_no_edge_on_a_natural_roll_off(slope):
    found = detect_high_edge(sloped(slope), SR)
    assert found.confidence == 0.0


def test_codec_holes_do_not_hide_the_edge():
    # AAC-like holes: 30 % of the bins in each 20 ms frame zeroed, in band
    y = phone(sloped(-6.0, seed=3), 7500.0)
    rng = np.random.default_rng(4)
    n = 882
    frames = y[:, : y.shape[1] // n * n].reshape(2, -1, n)
    spec = np.fft.rfft(frames, axis=-1)
    spec *= rng.random(spec.shape) > 0.3
    holed = np.fft.irfft(spec, n, axis=-1).reshape(2, -1)
    found = detect_high_edge(holed, SR)
    assert abs(found.edge_hz - 7500.0) <= 750.0
    assert found.confidence > 0.5


def test_silence_and_full_band():
    assert detect_high_edge(np.zeros(SR), SR) == (SR / 2.0, 0.0)
    rng = np.random.default_rng(1)
    assert detect_high_edge(0.1 * rng.standard_normal((2, 2 * SR)), SR).confidence == 0.0


def test_high_edge_is_independent_of_block_cuts():
    y = phone(sloped(-9.0, 2.0), 5000.0).astype(np.float32)
    a, b = BandLimitDetector(SR), BandLimitDetector(SR)
    run_in_blocks(a, y, sizes=[SR])
    run_in_blocks(b, y, sizes=[1000, 1, 4410, 333])
    assert a.high_edge() == pytest.approx(b.high_edge(), abs=1e-9)
    assert a.latency == 0


def test_chain_scales_the_extension_by_the_confidence():
    cfg = RestoreConfig()
    sure = build_restore_chain("vocals", cfg, (100.0, 8000.0), (7000.0, 1.0)).stages
    unsure = build_restore_chain("vocals", cfg, (100.0, 8000.0), (7000.0, 0.4)).stages
    none = build_restore_chain("vocals", cfg, (100.0, 8000.0), (7000.0, 0.0)).stages
    assert sure[0].cutoff_hz == 7000.0 and sure[0].effective_amount == cfg.high_band
    assert unsure[0].effective_amount == pytest.approx(0.4 * cfg.high_band)
    assert not any(isinstance(s, HighBandExtender) for s in none)
    # without a measured edge: the old behaviour (the band limit, full confidence)
    old = build_restore_chain("vocals", cfg, (100.0, 8000.0)).stages
    assert old[0].cutoff_hz == 8000.0 and old[0].confidence == 1.0
