"""Behaviour of the tonal stages: parametric EQ, high-pass, bass exciter, stereo width."""
from __future__ import annotations

import numpy as np
import pytest

from engine.audio import SAMPLE_RATE as SR, db_to_gain
from engine.enhance import BassExciter, EQBand, HighPass, ParametricEQ, StereoWidth
from engine.errors import SettingsError
from engine.stage import run_in_blocks
from stage_signals import sine, white_noise


def sine_gain_db(stage_factory, freq: float, seconds: float = 0.5) -> float:
    """Steady-state gain of a stage for a sine at ``freq`` (RMS over the second half)."""
    x = sine(freq, seconds, 0.25)
    y = run_in_blocks(stage_factory(), x, [4096])
    half = slice(x.shape[1] // 2, None)
    return float(10 * np.log10(np.mean(y[:, half].astype(float) ** 2) / np.mean(x[:, half].astype(float) ** 2)))


@pytest.mark.parametrize("freq, gain_db, q", [(100.0, 4.0, 1.0), (1000.0, 6.0, 0.7), (3500.0, -5.0, 2.0),
                                              (12000.0, 3.0, 1.4)])
def test_peak_band_gain_at_its_centre(freq, gain_db, q):
    measured = sine_gain_db(lambda: ParametricEQ([EQBand("peak", freq, gain_db, q)]), freq)
    assert measured == pytest.approx(gain_db, abs=0.1)


def test_shelves_reach_their_gain_and_half_of_it_at_the_corner():
    low = lambda: ParametricEQ([EQBand("low_shelf", 300.0, 6.0)])  # noqa: E731
    high = lambda: ParametricEQ([EQBand("high_shelf", 4000.0, -6.0)])  # noqa: E731
    assert sine_gain_db(low, 300.0) == pytest.approx(3.0, abs=0.1)
    assert sine_gain_db(low, 30.0, 1.0) == pytest.approx(6.0, abs=0.2)
    assert sine_gain_db(high, 4000.0) == pytest.approx(-3.0, abs=0.1)
    assert sine_gain_db(high, 18000.0) == pytest.approx(-6.0, abs=0.2)


def test_measured_response_matches_the_designed_curve():
    bands = [EQBand("peak", 250.0, -2.0, 1.0), EQBand("peak", 3500.0, 3.0, 0.9), EQBand("high_shelf", 10000.0, 2.0)]
    eq = ParametricEQ(bands)
    for f in (100.0, 250.0, 1000.0, 3500.0, 8000.0, 15000.0):
        assert sine_gain_db(lambda: ParametricEQ(bands), f) == pytest.approx(float(eq.response_db(f)[0]), abs=0.1)


def test_highpass_minus_3db_at_cutoff_and_blocks_rumble():
    assert sine_gain_db(lambda: HighPass(80.0), 80.0) == pytest.approx(-3.01, abs=0.1)
    assert sine_gain_db(lambda: HighPass(80.0), 1000.0) == pytest.approx(0.0, abs=0.05)
    assert sine_gain_db(lambda: HighPass(80.0, order=4), 20.0, 1.0) < -45.0


def test_eq_rejects_bad_bands():
    with pytest.raises(SettingsError):
        EQBand("wobble", 100.0)
    with pytest.raises(SettingsError):
        ParametricEQ([EQBand("peak", 30000.0, 3.0)])
    with pytest.raises(SettingsError):
        ParametricEQ([EQBand("peak", 1000.0, 3.0, q=0.0)])


def harmonic_levels_db(x: np.ndarray, fundamental: float) -> list[float]:
    spec = np.abs(np.fft.rfft(x[0].astype(float) * np.hanning(x.shape[1])))
    f = np.fft.rfftfreq(x.shape[1], 1 / SR)
    return [float(20 * np.log10(spec[np.abs(f - k * fundamental) < 3.0].max() + 1e-12)) for k in (1, 2, 3)]


def test_exciter_adds_second_and_third_harmonics_of_bass():
    x = sine(60.0, 2.0, 0.3)
    y = run_in_blocks(BassExciter(amount=0.5), x, [1024, 7])
    steady = slice(SR // 2, None)
    before = harmonic_levels_db(x[:, steady], 60.0)
    after = harmonic_levels_db(y[:, steady], 60.0)
    assert abs(after[0] - before[0]) < 1.0  # fundamental kept
    for k in (1, 2):  # 120 Hz and 180 Hz
        assert after[k] > before[k] + 40.0
        assert after[0] - 20.0 < after[k] < after[0]  # audible, but below the fundamental


def test_exciter_leaves_high_content_alone():
    x = sine(2000.0, 1.0, 0.3)
    y = run_in_blocks(BassExciter(amount=1.0), x, None)
    steady = slice(SR // 10, None)  # after the filters' onset transient
    assert np.max(np.abs(y[:, steady] - x[:, steady])) < db_to_gain(-50) * np.max(np.abs(x))  # below -50 dB


def test_width_scales_side_and_keeps_mid():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 4000)) * 0.1).astype(np.float32)
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
    mono = run_in_blocks(StereoWidth(0.0), x, None)
    np.testing.assert_allclose(mono[0], mono[1], atol=1e-7)
    np.testing.assert_allclose(mono[0], mid, atol=1e-7)
    wide = run_in_blocks(StereoWidth(2.0), x, [3])
    np.testing.assert_allclose((wide[0] - wide[1]) / 2, 2 * side, atol=1e-6)
    np.testing.assert_allclose((wide[0] + wide[1]) / 2, mid, atol=1e-6)
    with pytest.raises(SettingsError):
        StereoWidth(-1.0)


def test_exciter_and_eq_keep_noise_finite_and_bounded():
    x = white_noise(1.0, 0.3, seed=1)
    for stage in (BassExciter(amount=2.0), ParametricEQ([EQBand("peak", 100.0, 12.0)])):
        y = run_in_blocks(stage, x, [333])
        assert np.all(np.isfinite(y)) and np.max(np.abs(y)) < 8 * np.max(np.abs(x))
