"""Deterministic signals that exercise the streaming stages (tests and benchmarks).

float32 ``(channels, samples)`` unless said otherwise.  Amplitudes are linear
(1.0 = full scale), frequencies in Hz, durations in seconds.  Randomness
comes only from the ``seed``.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

from engine.audio import CHANNELS, SAMPLE_RATE, db_to_gain


def sine(freq_hz: float, seconds: float, amplitude: float = 0.5, channels: int = CHANNELS,
         sample_rate: int = SAMPLE_RATE, phase: float = 0.0) -> np.ndarray:
    """A sine of ``amplitude`` (peak, linear) on every channel."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = amplitude * np.sin(2.0 * np.pi * freq_hz * t + phase)
    return np.ascontiguousarray(np.broadcast_to(x, (channels, x.size)), dtype=np.float32)


def white_noise(seconds: float, rms: float = 0.01, channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE,
                seed: int = 0) -> np.ndarray:
    """Independent Gaussian white noise per channel with the given RMS (linear)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((channels, int(round(seconds * sample_rate)))) * rms).astype(np.float32)


def decaying_hits(seconds: float, period_s: float = 0.5, decay_ms: float = 60.0, amplitude: float = 0.5,
                  channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE, seed: int = 0,
                  first_s: float = 0.1) -> np.ndarray:
    """Drum-like hits: noise bursts with an exponential decay every ``period_s``."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    x = np.zeros((channels, n))
    length = int(8 * decay_ms * 1e-3 * sample_rate)
    env = np.exp(-np.arange(length) / (decay_ms * 1e-3 * sample_rate))
    for start in np.arange(int(first_s * sample_rate), n, int(period_s * sample_rate)):
        m = min(length, n - start)
        x[:, start:start + m] += amplitude * env[:m] * rng.uniform(-1.0, 1.0, (channels, m))
    return x.astype(np.float32)


def mixed_test_signal(seconds: float = 2.0, channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE,
             seed: int = 0) -> np.ndarray:
    """Sines (55 Hz to 7 kHz, different per channel), white noise, hits and clicks:
    a signal that exercises every enhancement stage.  Peak below 1.0."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    x = np.zeros((channels, n))
    for c in range(channels):
        for f, a in ((55.0, 0.2), (220.0, 0.1), (1000.0 + 37.0 * c, 0.08), (3500.0, 0.03), (7000.0, 0.02)):
            x[c] += a * np.sin(2.0 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        x[c] *= 0.6 + 0.4 * np.sin(2.0 * np.pi * 0.7 * t + c)  # slow level changes for the dynamics
    x += 0.01 * rng.standard_normal((channels, n))
    x += decaying_hits(seconds, 0.37, 40.0, 0.3, channels, sample_rate, seed + 1)
    pos = rng.integers(0, n, 6)
    x[:, pos] += 0.3
    return (x / max(1.0, np.max(np.abs(x)) / 0.95)).astype(np.float32)


def band_noise(lo: float, hi: float, seconds: float = 3.0, seed: int = 0,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """White noise brick-wall limited to [lo, hi] Hz, peak 0.5, shape (n,) float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spec[(f < lo) | (f > hi)] = 0.0
    x = np.fft.irfft(spec, n)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def phone_like(seconds: float = 6.0, seed: int = 0, floor_db: float = -45.0,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Bright white noise through a phone's 6th-order Butterworth 100 Hz - 8 kHz band-pass,
    plus a broadband floor ``floor_db`` below the input (AGC / codec by-products), (2, n) float32."""
    rng = np.random.default_rng(seed)
    x = 0.1 * rng.standard_normal((2, int(seconds * sample_rate)))
    sos = signal.butter(6, [100.0, 8000.0], btype="bandpass", fs=sample_rate, output="sos")
    floor = 0.1 * db_to_gain(floor_db) * rng.standard_normal(x.shape)
    return (signal.sosfilt(sos, x, axis=1) + floor).astype(np.float32)


# -- rooms: dry notes convolved with synthetic exponential-decay impulse responses --

def dry_notes(seconds: float, period: float = 1.5, on: float = 0.3, kind: str = "tonal", seed: int = 0):
    """Mono dry signal ``(n,)`` float64 and the note ``(start, end)`` sample indices."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    x = np.zeros(n)
    notes = []
    for st in np.arange(0.2, seconds - period + 0.01, period):
        i0, i1 = int(st * SAMPLE_RATE), int((st + on) * SAMPLE_RATE)
        tt = np.arange(i1 - i0) / SAMPLE_RATE
        if kind == "tonal":
            f0 = rng.choice([220.0, 262.0, 330.0, 392.0, 440.0])
            note = sum(np.sin(2 * np.pi * f0 * h * tt + rng.uniform(0, 6)) / h for h in range(1, 8))
            note = note + 0.3 * rng.standard_normal(len(tt))
        else:  # speech-like: noise with a 6 Hz syllable envelope
            note = rng.standard_normal(len(tt)) * (0.5 + 0.5 * np.sin(2 * np.pi * 6 * tt) ** 2)
        ramp = np.minimum(1.0, np.minimum(tt / 0.005, (on - tt) / 0.005))
        x[i0:i1] = 0.2 * note * ramp
        notes.append((i0, i1))
    return x, notes


def exp_ir(rt60: float, seed: int) -> np.ndarray:
    """Direct impulse + exponentially decaying noise tail of equal energy (DRR 0 dB)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.5 * rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    tail = rng.standard_normal(len(t)) * np.exp(-6.908 * t / rt60)
    tail[: int(0.003 * SAMPLE_RATE)] = 0.0
    tail /= np.sqrt(np.sum(tail ** 2))
    tail[0] += 1.0
    return tail


def reverberant(rt60: float, seconds: float, kind: str = "tonal"):
    x, notes = dry_notes(seconds, kind=kind)
    y = np.stack([signal.fftconvolve(x, exp_ir(rt60, s))[: len(x)] for s in (1, 2)])
    return np.stack([x, x]).astype(np.float32), y.astype(np.float32), notes


def harmonic_music(seconds: float = 3.0, seed: int = 1, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Notes with five harmonics and decaying envelopes every 0.25 s, panned, over a 55 Hz
    bass line; peak-normalised to 1.0 (clip it to make a clipped recording)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    x = np.zeros((2, n))
    for start in np.arange(0.0, seconds, 0.25):
        f0 = 220.0 * 2 ** (rng.integers(0, 12) / 12)
        env = np.where(t >= start, np.exp(-(t - start) * 4.0), 0.0)
        note = sum((0.6 / h) * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) for h in range(1, 6))
        pan = rng.uniform(0.3, 0.7)
        x += np.stack([pan, 1 - pan])[:, None] * env * note
    x += 0.5 * np.sin(2 * np.pi * 55 * t)
    return (x / np.max(np.abs(x))).astype(np.float32)
