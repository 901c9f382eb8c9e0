"""Known answers of the restoration-evaluation metrics (benchmarks/restoration_metrics.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.restoration_metrics import (align, high_band_energy_db, log_spectral_distance,  # noqa: E402
                                            mr_stft_distance, score, si_sdr, third_octave_centres,
                                            tonal_balance_error)

SR = 44100


def noise(seconds: float = 6.0, seed: int = 0, channels: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, int(seconds * SR))) * 0.1


def tilted(x: np.ndarray, db_per_octave: float) -> np.ndarray:
    """``x`` with a gain of ``db_per_octave * log2(f / 1 kHz)`` dB applied in the frequency domain."""
    spec = np.fft.rfft(x, axis=-1)
    f = np.fft.rfftfreq(x.shape[-1], 1.0 / SR)
    g = 10 ** (db_per_octave * np.log2(np.maximum(f, 1.0) / 1000.0) / 20.0)
    return np.fft.irfft(spec * g, x.shape[-1], axis=-1)


def test_band_centres_span_50_hz_to_16_khz():
    c = third_octave_centres()
    assert len(c) == 26
    assert c[0] == pytest.approx(49.6, abs=0.1) and c[-1] == pytest.approx(16000.0)


def test_identical_signals_score_perfectly():
    x = noise()
    s = score(x, x.copy(), SR)
    assert s["lag_samples"] == pytest.approx(0.0, abs=1e-6)
    assert s["tonal_error_db"] < 1e-6
    assert s["lsd_db"] < 1e-6
    assert s["mr_stft"] < 1e-6
    assert s["si_sdr_db"] > 100.0
    assert abs(s["hf_energy_db"]) < 1e-6


def test_delay_and_gain_are_undone():
    x = signal.lfilter([1.0], [1.0, -0.9], noise(4.0, seed=1), axis=-1)  # smooth, music-like slope
    y = 0.3 * np.fft.irfft(np.fft.rfft(x, axis=-1) * np.exp(-2j * np.pi * np.fft.rfftfreq(x.shape[1]) * 1000.5),
                           x.shape[1], axis=-1)
    r, e, lag = align(x, y)
    assert lag == pytest.approx(1000.5, abs=0.05)
    s = score(x, y, SR)
    assert s["si_sdr_db"] > 30.0
    assert s["tonal_error_db"] < 0.05 and s["lsd_db"] < 0.5 and s["mr_stft"] < 0.05


def test_six_db_per_octave_tilt_gives_the_known_tonal_error():
    x = noise(10.0, seed=2)
    y = tilted(x, 6.0)
    # the 26 bands k = -13..12 differ by 2k dB; best offset (median) -1 dB; mean |2k + 1| = 13 dB
    assert tonal_balance_error(x, y, SR) == pytest.approx(13.0, abs=0.3)
    assert tonal_balance_error(x, tilted(x, -6.0), SR) == pytest.approx(13.0, abs=0.3)
    # a pure level change is no tonal error
    assert tonal_balance_error(x, 0.25 * x, SR) < 1e-6


def test_low_passed_copy_lacks_energy_above_8_khz():
    x = noise(6.0, seed=3)
    sos = signal.butter(8, 6000.0, fs=SR, output="sos")
    y = signal.sosfilt(sos, x, axis=-1)
    assert high_band_energy_db(x, y, SR) < -20.0
    assert high_band_energy_db(x, 3.0 * x, SR) == pytest.approx(0.0, abs=1e-6)
    # and the distances see it
    assert log_spectral_distance(x, y, SR) > 5.0
    assert mr_stft_distance(x, y)["total"] > mr_stft_distance(x, 0.9 * x + 0.1 * y)["total"]


def test_si_sdr_of_added_noise():
    x = noise(3.0, seed=4)
    n = noise(3.0, seed=5)
    assert si_sdr(x, x + 0.1 * n) == pytest.approx(20.0, abs=0.2)
    assert si_sdr(x, 5.0 * x + 0.5 * n) == pytest.approx(20.0, abs=0.2)  # scale-invariant
