"""Music-like test material for reference matching: a clean stereo track, sections of it, and a
coloured (phone-like) copy.  Deterministic; float32 ``(2, n)`` at 44.1 kHz."""
from __future__ import annotations

import numpy as np
from scipy import signal

SR = 44100


def music_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Pink-ish bed, harmonic notes (random pitches, panned), kick-like and hat-like hits;
    a real side channel.  Peak about 0.5."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = np.zeros((2, n))
    white = rng.standard_normal((2, n))
    b, a = signal.butter(1, 300.0, fs=SR)  # -6 dB/oct tilt above 300 Hz
    x += 0.05 * signal.lfilter(b, a, white, axis=1)
    for start in np.arange(0.0, seconds - 0.5, 0.25):
        i0 = int(start * SR)
        m = min(int(0.6 * SR), n - i0)
        tt = np.arange(m) / SR
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        note = sum(np.sin(2 * np.pi * f0 * h * tt + rng.uniform(0, 6)) / h ** 1.2 for h in range(1, 12)
                   if f0 * h < 16000)
        env = np.exp(-tt / 0.25) * np.minimum(1.0, tt / 0.005)
        pan = rng.uniform(0.2, 0.8)
        x[0, i0:i0 + m] += 0.12 * pan * note * env
        x[1, i0:i0 + m] += 0.12 * (1 - pan) * note * env
    for start in np.arange(0.0, seconds - 0.2, 0.5):  # kick
        i0 = int(start * SR)
        m = min(int(0.15 * SR), n - i0)
        tt = np.arange(m) / SR
        x[:, i0:i0 + m] += 0.3 * np.sin(2 * np.pi * (50 + 80 * np.exp(-tt / 0.02)) * tt) * np.exp(-tt / 0.05)
    hats = np.zeros((2, n))
    for start in np.arange(0.125, seconds - 0.1, 0.25):
        i0 = int(start * SR)
        m = min(int(0.05 * SR), n - i0)
        hats[:, i0:i0 + m] += rng.standard_normal((2, m)) * np.exp(-np.arange(m) / (0.01 * SR))
    bh, ah = signal.butter(2, 6000.0, btype="high", fs=SR)
    x += 0.08 * signal.lfilter(bh, ah, hats, axis=1)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def coloured(x: np.ndarray) -> np.ndarray:
    """A phone-like colouring: bass cut (-10 dB under 150 Hz), a +7 dB presence bump at 2.5 kHz,
    highs rolled off above 6 kHz, and the stereo image narrowed to a third of its side."""
    sos_hp = signal.butter(2, 150.0, btype="high", fs=SR, output="sos")
    y = 0.3 * x + 0.7 * signal.sosfilt(sos_hp, x, axis=1)
    b, a = signal.iirpeak(2500.0, 1.2, fs=SR)
    y = y + 1.25 * signal.lfilter(b, a, y, axis=1)
    sos_lp = signal.butter(2, 6000.0, fs=SR, output="sos")
    y = signal.sosfilt(sos_lp, y, axis=1)
    mid, side = 0.5 * (y[0] + y[1]), 0.5 * (y[0] - y[1]) / 3.0
    return np.stack([mid + side, mid - side]).astype(np.float32)
