"""Band-limit detection (engine.estimators.band_limits)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.estimators import BandLimitDetector, detect_band_limits
from engine.stage import run_in_blocks
from stage_signals import band_noise, phone_like

SR = 44100


@pytest.mark.parametrize("lo,hi", [(100.0, 8000.0), (300.0, 4000.0), (50.0, 16000.0)])
def test_band_limits_of_band_limited_noise(lo, hi):
    x = band_noise(lo, hi)
    low, high = detect_band_limits(np.stack([x, x]), SR)
    assert abs(low - lo) < 0.15 * lo + 5.0
    assert abs(high - hi) < 0.04 * hi


def test_full_band_and_silence():
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(2 * SR)).astype(np.float32)
    low, high = detect_band_limits(x, SR)
    assert high > 20000.0 and low < 30.0
    assert detect_band_limits(np.zeros(SR, np.float32), SR) == (0.0, 0.0)


def test_phone_band_edges_are_found_at_the_knees():
    x = phone_like()
    low, high = detect_band_limits(x, SR)
    # the knee of the 36 dB/octave roll-off, not where it has fallen 30 dB (about 12 kHz on bright noise)
    assert 8000.0 <= high < 9000.0
    assert detect_band_limits(x, SR, edge_slope_db_per_oct=None)[1] > 11000.0
    # the high-pass edge under the by-product floor
    assert 75.0 < low < 110.0


def test_no_false_edges_on_smooth_spectra():
    from scipy import signal

    rng = np.random.default_rng(7)
    x = signal.lfilter([1.0], [1.0, -0.9], 0.05 * rng.standard_normal((2, 4 * SR)), axis=1)  # -6 dB/oct
    low, high = detect_band_limits(x.astype(np.float32), SR)
    assert low < 30.0 and high > 19000.0


def test_streaming_detector_matches_offline_and_passes_through():
    x = np.stack([band_noise(150, 6000, 2.0, seed=3)] * 2)
    det = BandLimitDetector(SR)
    out = run_in_blocks(det, x, sizes=[1000, 1, 4410, 333])
    np.testing.assert_array_equal(out, x)  # a pass-through stage
    assert det.limits() == pytest.approx(detect_band_limits(x, SR), abs=1e-6)
    det.reset()
    assert det.limits() == (0.0, 0.0)


def test_fractional_octave_median_is_numpys_median_over_each_window():
    from engine.estimators.band_limits import median_smooth_fractional_octave

    rng = np.random.default_rng(5)
    freqs = np.fft.rfftfreq(4096, 1.0 / 44100.0)
    psd = rng.gamma(1.0, 1.0, freqs.size) * np.exp(-freqs / 4000.0)
    for fraction in (12.0, 3.0):
        half = 2.0 ** (0.5 / fraction)
        lo = np.clip(np.floor(freqs / half / freqs[1]).astype(int), 0, freqs.size - 1)
        hi = np.clip(np.ceil(freqs * half / freqs[1]).astype(int), 0, freqs.size - 1)
        want = [np.median(psd[max(min(lo[k], k - 1), 0):max(hi[k], k + 1) + 1]) for k in range(freqs.size)]
        assert np.array_equal(median_smooth_fractional_octave(freqs, psd, fraction), np.array(want))
