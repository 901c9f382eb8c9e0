"""Behaviour of the spectral noise reducer and the de-esser."""
from __future__ import annotations

import numpy as np
import pytest

from engine.audio import SAMPLE_RATE as SR
from engine.enhance import DeEsser, SpectralNoiseReducer
from engine.stage import LatencyAligned, run_in_blocks
from stage_signals import sine, white_noise


def band_powers(x: np.ndarray, freqs: list[float], half_width_hz: float = 30.0) -> tuple[float, float]:
    """Power inside the bands around ``freqs`` and outside them (Hann-windowed spectrum)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[1]), axis=1)) ** 2
    f = np.fft.rfftfreq(x.shape[1], 1 / SR)
    inside = np.zeros(f.shape, dtype=bool)
    for fc in freqs:
        inside |= np.abs(f - fc) < half_width_hz
    return float(spec[:, inside].sum()), float(spec[:, ~inside].sum())


@pytest.mark.parametrize("amplitude, noise_rms", [(0.3, 0.03), (0.05, 0.02)])
def test_noise_reducer_improves_snr_and_keeps_the_sine(amplitude, noise_rms):
    x = sine(1000.0, 3.0, amplitude) + white_noise(3.0, noise_rms, seed=1)
    y = run_in_blocks(LatencyAligned(SpectralNoiseReducer(strength=1.0)), x, [4410, 999])
    steady = slice(SR // 2, None)  # after the trackers' first half second
    s_in, n_in = band_powers(x[:, steady], [1000.0])
    s_out, n_out = band_powers(y[:, steady], [1000.0])
    assert abs(10 * np.log10(s_out / s_in)) < 1.0  # the sine is kept within 1 dB
    snr_gain = 10 * np.log10((s_out / n_out) / (s_in / n_in))
    assert snr_gain > 6.0
    assert snr_gain < 12.5  # and never more than the 12 dB reduction limit (+ tolerance)


def test_noise_reducer_strength_scales_the_reduction():
    x = sine(440.0, 2.0, 0.2) + white_noise(2.0, 0.02, seed=2)
    gains = []
    for strength in (0.25, 0.5, 1.0):
        y = run_in_blocks(LatencyAligned(SpectralNoiseReducer(strength=strength, max_reduction_db=20.0)), x, None)
        _, n_in = band_powers(x[:, SR // 2:], [440.0])
        _, n_out = band_powers(y[:, SR // 2:], [440.0])
        gains.append(10 * np.log10(n_out / n_in))
    assert gains[0] > gains[1] > gains[2]
    assert gains[0] == pytest.approx(-5.0, abs=1.5) and gains[2] == pytest.approx(-20.0, abs=3.0)


def test_noise_reducer_keeps_a_long_sustained_chord():
    """Sustained harmonic notes are protected by the across-frequency floor, however long they last."""
    seconds = 8.0
    chord = sum(sine(f, seconds, a) for f, a in ((220.0, 0.1), (277.2, 0.08), (329.6, 0.08), (440.0, 0.05),
                                                  (660.0, 0.03), (880.0, 0.02)))
    x = chord + white_noise(seconds, 0.005, seed=3)
    y = run_in_blocks(LatencyAligned(SpectralNoiseReducer(strength=1.0)), x, [SR])
    freqs = [220.0, 277.2, 329.6, 440.0, 660.0, 880.0]
    last = slice(-2 * SR, None)
    s_in, n_in = band_powers(x[:, last], freqs, 15.0)
    s_out, n_out = band_powers(y[:, last], freqs, 15.0)
    assert abs(10 * np.log10(s_out / s_in)) < 1.0
    assert 10 * np.log10(n_out / n_in) < -6.0


def test_noise_reducer_adapts_to_a_rising_noise_floor():
    """The floor tracker follows the noise up (4 dB/s): 10 dB louder noise is reduced again a few s later."""
    quiet = white_noise(3.0, 0.003, seed=4)
    loud = white_noise(6.0, 0.0095, seed=5)
    x = np.concatenate([quiet, loud], axis=1)
    y = run_in_blocks(LatencyAligned(SpectralNoiseReducer(strength=1.0)), x, [SR])
    late = slice(-SR, None)
    reduction = 10 * np.log10(np.mean(y[:, late].astype(float) ** 2) / np.mean(x[:, late].astype(float) ** 2))
    assert reduction < -9.0


def test_noise_reducer_on_digital_silence_and_after_it():
    x = np.concatenate([np.zeros((2, SR)), sine(1000.0, 2.0, 0.2) + white_noise(2.0, 0.02, seed=6)], axis=1)
    y = run_in_blocks(LatencyAligned(SpectralNoiseReducer()), x.astype(np.float32), [1234])
    assert np.all(y[:, :SR - 2048] == 0.0)
    s_in, _ = band_powers(x[:, -SR:], [1000.0])
    s_out, _ = band_powers(y[:, -SR:], [1000.0])
    assert abs(10 * np.log10(s_out / s_in)) < 1.0


def sibilant_bursts(seconds: float, freq: float = 7000.0, amplitude: float = 0.3) -> np.ndarray:
    x = sine(freq, seconds, amplitude)
    t = np.arange(x.shape[1]) / SR
    gate = (np.floor(t / 0.1) % 2 == 1).astype(np.float32)  # 100 ms on / off
    return x * gate


def test_deesser_reduces_sibilance_more_than_a_low_tone():
    deess = lambda: DeEsser(depth_db=8.0)  # noqa: E731
    ess = sibilant_bursts(1.0)
    tone = sine(500.0, 1.0, 0.3)
    ess_out = run_in_blocks(deess(), ess, [512])
    tone_out = run_in_blocks(deess(), tone, [512])
    ess_change = 10 * np.log10(np.mean(ess_out.astype(float) ** 2) / np.mean(ess.astype(float) ** 2))
    tone_change = 10 * np.log10(np.mean(tone_out.astype(float) ** 2) / np.mean(tone.astype(float) ** 2))
    assert ess_change < -4.0
    assert abs(tone_change) < 0.1
    # mixed: 7 kHz bursts as loud as a vowel-like 500 Hz tone (6 dB above the -12 dB relative
    # threshold) are still reduced, the tone barely
    mix = ess + tone
    out = run_in_blocks(deess(), mix, [777])
    s_in, _ = band_powers(mix, [7000.0], 100.0)
    s_out, _ = band_powers(out, [7000.0], 100.0)
    t_in, _ = band_powers(mix, [500.0], 50.0)
    t_out, _ = band_powers(out, [500.0], 50.0)
    assert 10 * np.log10(s_out / s_in) < -3.0
    assert 10 * np.log10(s_out / s_in) < 10 * np.log10(t_out / t_in) - 3.0
    assert abs(10 * np.log10(t_out / t_in)) < 0.3


def test_deesser_never_boosts():
    """The first-order split band cannot boost: output power <= input power in every band."""
    x = white_noise(1.0, 0.2, seed=7) + sibilant_bursts(1.0)
    y = run_in_blocks(DeEsser(depth_db=12.0, relative_threshold_db=-30.0), x, None)
    sx = np.abs(np.fft.rfft(x.astype(float), axis=1)) ** 2
    sy = np.abs(np.fft.rfft(y.astype(float), axis=1)) ** 2
    edges = np.linspace(0, sx.shape[1], 65).astype(int)
    for a, b in zip(edges[:-1], edges[1:]):
        assert sy[:, a:b].sum() <= sx[:, a:b].sum() * 1.02
