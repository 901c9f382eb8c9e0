"""De-clipper (engine/restore/declip.py): repair, passthrough, chunk-size invariance, latency."""
from __future__ import annotations

import numpy as np
import pytest

from engine.errors import SettingsError
from engine.restore.declip import Declipper, DeclipConfig, clip_threshold, sspade
from engine.stage import LatencyAligned, run_in_blocks
from stage_signals import harmonic_music

SR = 44100


def _sines(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = 0.8 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1230 * t + 1.0)
    x = np.stack([x, np.roll(x, 37)])
    return (x / np.max(np.abs(x))).astype(np.float32)


def _music(seconds: float = 3.0, seed: int = 1) -> np.ndarray:
    """Notes with harmonics and decaying envelopes over a bass line (a fixture)."""
    return harmonic_music(seconds, seed, SR)


def _clip(x: np.ndarray, level: float) -> np.ndarray:
    return np.clip(x, -level, level).astype(np.float32)


def _declip(x: np.ndarray, sizes=None, config: DeclipConfig | None = None) -> np.ndarray:
    return run_in_blocks(LatencyAligned(Declipper(config)), x, sizes)


def _error_db(est: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    return float(10 * np.log10(np.sum((est - ref)[mask] ** 2) / np.sum(ref[mask] ** 2)))


@pytest.mark.parametrize("make,level", [(_sines, 0.6), (_music, 0.5)])
def test_error_on_clipped_samples_falls_by_6_db(make, level):
    x = make()
    c = _clip(x, level)
    y = _declip(c)
    clipped = np.abs(c) >= level - 1e-6
    assert clipped.mean() > 0.02
    before, after = _error_db(c, x, clipped), _error_db(y, x, clipped)
    assert after <= before - 6.0, (before, after)


def test_reliable_samples_pass_bit_exactly():
    c = _clip(_music(), 0.5)
    d = Declipper()
    y = run_in_blocks(LatencyAligned(d), c, [4096])
    theta = d.theta
    assert theta is not None and 0.45 <= theta <= 0.5
    below = np.abs(c) < theta
    np.testing.assert_array_equal(y[below], c[below])


def test_unclipped_music_is_passed_through_bit_exactly():
    x = _music() * np.float32(0.9)
    d = Declipper()
    y = run_in_blocks(LatencyAligned(d), x, [1000])
    np.testing.assert_array_equal(y, x)
    assert d.theta is None and d.report()["frames_repaired"] == 0


def test_off_is_a_zero_latency_passthrough():
    c = _clip(_sines(), 0.6)
    d = Declipper(DeclipConfig(mode="off"))
    assert d.latency == 0
    np.testing.assert_array_equal(run_in_blocks(d, c, [333]), c)


def test_chunk_size_invariance_including_single_samples():
    c = _clip(_music(1.5), 0.5)
    whole = _declip(c)
    rng = np.random.default_rng(3)
    for sizes in ([1], [1, 2, 3], list(rng.integers(1, 5000, size=50)), [4096]):
        np.testing.assert_array_equal(_declip(c, sizes), whole)


def test_latency_is_one_frame():
    d = Declipper(DeclipConfig(frame=512))
    assert d.latency == 512
    c = _clip(_sines(1.0), 0.6)
    raw = run_in_blocks(d, c, [700], flush=False)
    # the raw output is the input delayed by exactly `latency` samples (reliable ones bit-exact)
    assert np.all(raw[:, :512] == 0.0)
    lag = raw[:, 512:]
    below = np.abs(c[:, :lag.shape[1]]) < 0.55
    np.testing.assert_array_equal(lag[below], c[:, :lag.shape[1]][below])
    d.reset()
    full = run_in_blocks(LatencyAligned(d), c, [700])
    assert full.shape == c.shape


def test_sspade_is_consistent():
    rng = np.random.default_rng(0)
    y = np.clip(rng.standard_normal((4, 256)), -1.0, 1.0)
    high, low = y >= 1.0, y <= -1.0
    x = sspade(y, high, low, np.ones(4), 30)
    np.testing.assert_array_equal(x[~(high | low)], y[~(high | low)])
    assert np.all(x[high] >= 1.0) and np.all(x[low] <= -1.0)


def test_clip_threshold_needs_a_pile_up():
    rng = np.random.default_rng(2)
    g = np.abs(rng.standard_normal(200000)) * 0.2
    hist = np.bincount(np.minimum((g / 0.01).astype(int), 199), minlength=200)
    assert clip_threshold(hist, 1.25, 2e-3) is None
    clipped = np.minimum(g, 0.3) + rng.uniform(-0.02, 0.02, g.size) * (g >= 0.3)  # blurred plateau
    hist = np.bincount(np.minimum((np.abs(clipped) / 0.01).astype(int), 199), minlength=200)
    theta = clip_threshold(hist, 1.25, 2e-3)
    assert theta is not None and 0.26 <= theta <= 0.3


def test_config_is_validated():
    with pytest.raises(SettingsError):
        DeclipConfig(mode="on")
    with pytest.raises(SettingsError):
        DeclipConfig(frame=1001)
