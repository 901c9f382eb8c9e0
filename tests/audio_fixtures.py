"""Test signals and files, generated on the fly (no binary fixtures).

Signals are float32 ``(channels, samples)`` arrays; writers take that shape
and write real files with libsndfile (wav/flac/ogg/mp3) or PyAV (m4a/aac).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


def sine(freqs: float | Sequence[float] = 1000.0, seconds: float = 1.0, sr: int = 44100,
         amp: float = 0.5, channels: int = 2, phase: float = 0.0) -> np.ndarray:
    """Sum of equal-amplitude sines (peak <= ``amp``), same on every channel: ``(channels, n)``."""
    freqs = [freqs] if np.isscalar(freqs) else list(freqs)
    t = np.arange(int(round(seconds * sr))) / sr
    x = sum(np.sin(2 * np.pi * f * t + phase) for f in freqs) * (amp / len(freqs))
    return np.repeat(x[None, :].astype(np.float32), channels, axis=0)


def noise(seconds: float = 1.0, sr: int = 44100, rms: float = 0.1, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Independent Gaussian white noise per channel at ``rms`` (linear): ``(channels, n)``."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((channels, int(round(seconds * sr)))) * rms).astype(np.float32)


def clicks(seconds: float = 1.0, sr: int = 44100, every_s: float = 0.25, amp: float = 0.9,
           channels: int = 2) -> np.ndarray:
    """Single-sample impulses every ``every_s`` seconds, first at ``every_s``: ``(channels, n)``."""
    x = np.zeros((channels, int(round(seconds * sr))), dtype=np.float32)
    x[:, int(round(every_s * sr))::int(round(every_s * sr))] = amp
    return x


def write_sf(path: Path, x: np.ndarray, sr: int, subtype: str | None = None, format: str | None = None) -> Path:
    """Write ``(channels, n)`` with soundfile (format from the extension unless given)."""
    import soundfile as sf

    sf.write(str(path), np.ascontiguousarray(x.T), sr, subtype=subtype, format=format)
    return Path(path)


def write_m4a(path: Path, x: np.ndarray, sr: int, faststart: bool = False, bitrate: int = 128000) -> Path:
    """Write ``(1|2, n)`` as AAC in an MP4 (m4a) container with PyAV's encoder."""
    import av

    layout = "mono" if x.shape[0] == 1 else "stereo"
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as c:
        s = c.add_stream("aac", rate=sr, layout=layout)
        s.bit_rate = bitrate
        for i in range(0, x.shape[1], 4096):
            blk = np.ascontiguousarray(x[:, i:i + 4096], dtype=np.float32)
            fr = av.AudioFrame.from_ndarray(blk, format="fltp", layout=layout)
            fr.sample_rate = sr
            fr.pts = i
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return Path(path)


def truncate_file(src: Path, dst: Path, fraction: float = 0.5, extra_bytes: int = 0) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes (plus ``extra_bytes``) to ``dst``."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[:int(len(data) * fraction) + extra_bytes])
    return Path(dst)


def concat(blocks: Iterable[np.ndarray], channels: int = 2) -> np.ndarray:
    """Concatenate ``(channels, n)`` blocks (an empty ``(channels, 0)`` if none)."""
    blocks = list(blocks)
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((channels, 0), np.float32)


def dominant_frequency(x: np.ndarray, sr: int) -> float:
    """Frequency (Hz) of the largest spectral peak of a 1-D signal (Hann window, parabolic)."""
    x = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec[1:-1])) + 1
    a, b, c = np.log(spec[k - 1:k + 2] + 1e-300)
    k_frac = k + 0.5 * (a - c) / (a - 2 * b + c)
    return float(k_frac * sr / len(x))


def sine_amplitude(x: np.ndarray, freq: float, sr: int) -> float:
    """Least-squares amplitude of a ``freq`` Hz sinusoid in the 1-D signal ``x``."""
    t = np.arange(len(x)) / sr
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, np.asarray(x, dtype=np.float64), rcond=None)
    return float(np.hypot(*coef))
