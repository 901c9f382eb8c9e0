"""The one array convention: float32, shape ``(channels, samples)``.

The working format inside the engine is 44.1 kHz stereo.  Helpers here convert
and validate blocks at the boundaries.
"""
from __future__ import annotations

import numpy as np

from .errors import NonFiniteAudioError

SAMPLE_RATE = 44100  # Hz, working rate of every stage
CHANNELS = 2  # working channel count (stereo)
STEM_NAMES: tuple[str, ...] = ("vocals", "drums", "bass", "other")


def empty_block(channels: int = CHANNELS) -> np.ndarray:
    """A zero-length block, shape ``(channels, 0)``."""
    return np.zeros((channels, 0), dtype=np.float32)


def as_block(x: np.ndarray, channels: int = CHANNELS) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 ``(channels, samples)`` array.

    A 1-D array is treated as mono and duplicated to ``channels``.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = np.broadcast_to(x, (channels, x.shape[0]))
    if x.ndim != 2 or x.shape[0] != channels:
        raise ValueError(f"expected a ({channels}, samples) block, got shape {x.shape}")
    return np.ascontiguousarray(x)


def check_finite(x: np.ndarray, where: str = "input") -> None:
    """Raise :class:`NonFiniteAudioError` if ``x`` holds NaN or Inf samples."""
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise NonFiniteAudioError(
            f"{where} contains {bad} NaN/Inf sample(s); the file is corrupt or was "
            "written by a broken encoder. Re-export it and try again."
        )


def db_to_gain(db: float | np.ndarray) -> float | np.ndarray:
    """Decibels to linear amplitude gain (``-inf`` dB gives 0); float or array.

    Plain arithmetic, so numba kernels compile it too
    (:data:`engine.dsp.envelope.db_to_gain_kernel`).
    """
    return 10.0 ** (db / 20.0)


def gain_to_db(gain: float | np.ndarray, floor: float = 0.0) -> float | np.ndarray:
    """Linear amplitude gain (magnitude) to decibels; float or array.

    Magnitudes below ``floor`` (linear) count as ``floor``; with the default 0,
    a zero gain gives ``-inf``.
    """
    g = np.maximum(np.abs(gain), floor)
    with np.errstate(divide="ignore"):
        out = 20.0 * np.log10(g)
    return float(out) if np.ndim(out) == 0 else out
