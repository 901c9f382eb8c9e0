"""Simulate a phone recording of a live concert from a clean recording.

Chain (see ``../shared/audio/README.md``): music convolved with a real room
impulse response, crowd noise at a chosen SNR, a phone microphone's band
(about 100 Hz - 8 kHz), automatic gain control, soft clipping, then AAC in an
.m4a at 64-128 kbit/s (PyAV's encoder).  Arrays are float32 ``(channels, samples)``.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf
from scipy import signal

SR = 44100


def load_stereo(path: Path, seconds: float | None = None, start_s: float = 0.0) -> np.ndarray:
    """Read ``path`` as float32 ``(2, n)`` at 44.1 kHz (resampled with soxr when needed)."""
    import soxr

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.T
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    x = x[:2]
    if sr != SR:
        x = soxr.resample(x.T, sr, SR).T.astype(np.float32)
    a = int(start_s * SR)
    b = None if seconds is None else a + int(seconds * SR)
    return np.ascontiguousarray(x[:, a:b])


def reverberate(x: np.ndarray, rir: np.ndarray, wet: float = 0.6) -> np.ndarray:
    """Convolve each channel with the (normalised) room impulse response."""
    rir = rir / (np.max(np.abs(rir)) + 1e-9)
    y = np.stack([signal.fftconvolve(x[c], rir[c % rir.shape[0]])[: x.shape[1]] for c in range(2)])
    y *= np.sqrt(np.mean(x ** 2) / (np.mean(y ** 2) + 1e-12))
    return ((1 - wet) * x + wet * y).astype(np.float32)


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Add ``noise`` (tiled to length) at ``snr_db`` dB below the music's power."""
    reps = int(np.ceil(x.shape[1] / noise.shape[1]))
    n = np.tile(noise, (1, reps))[:, : x.shape[1]]
    gain = np.sqrt(np.mean(x ** 2) / (np.mean(n ** 2) + 1e-12) / 10 ** (snr_db / 10))
    return (x + gain * n).astype(np.float32)


def phone_band(x: np.ndarray, low_hz: float = 100.0, high_hz: float = 8000.0) -> np.ndarray:
    """Phone microphone band: steep band-pass ``low_hz`` - ``high_hz``."""
    sos = signal.butter(6, [low_hz, high_hz], btype="bandpass", fs=SR, output="sos")
    return signal.sosfilt(sos, x, axis=1).astype(np.float32)


def agc_and_clip(x: np.ndarray, target_rms: float = 0.25, drive: float = 1.6) -> np.ndarray:
    """Phone-style automatic gain control (slow RMS follower) and soft clipping."""
    env = np.sqrt(signal.lfilter([0.0005], [1, -0.9995], np.mean(x ** 2, axis=0)) + 1e-8)
    y = x * (target_rms / np.maximum(env, 0.02))
    return (np.tanh(drive * y) / np.tanh(drive)).clip(-1, 1).astype(np.float32)


def hard_clip(x: np.ndarray, clip_db: float) -> np.ndarray:
    """Clip at ``clip_db`` dB below the peak of ``x``, then scale that level to full
    scale (0.99): a recording whose input stage overloaded by ``clip_db`` dB.
    ``clip_db <= 0`` returns ``x`` unchanged."""
    if clip_db <= 0:
        return x
    t = float(np.max(np.abs(x))) * 10 ** (-clip_db / 20.0)
    return (np.clip(x, -t, t) * (0.99 / max(t, 1e-9))).astype(np.float32)


def encode_m4a(x: np.ndarray, path: Path, bitrate: int = 96000) -> None:
    """Encode ``x`` as AAC in an .m4a container with PyAV."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=SR, layout="stereo")
        stream.bit_rate = bitrate
        step = 1024
        for i in range(0, x.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i:i + step]), format="fltp", layout="stereo")
            frame.sample_rate = SR
            for pkt in stream.encode(frame):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)


def simulate_phone_concert(clean: np.ndarray, rir: np.ndarray, crowd: np.ndarray, snr_db: float = 12.0,
                           wet: float = 0.6) -> np.ndarray:
    """The whole degradation chain except the AAC step; returns ``(2, n)`` float32."""
    y = reverberate(clean, rir, wet)
    y = add_noise(y, crowd, snr_db)
    y = phone_band(y)
    return agc_and_clip(y)
