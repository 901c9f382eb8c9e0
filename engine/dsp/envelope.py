"""Envelope followers with caller-owned state (numba, per sample).

Time constants are given in milliseconds and turned into one-pole smoothing
coefficients by :func:`time_constant_coeff`.  Kernels take their state as a
small float64 array that they update in place, so a stage carries it from one
block to the next and the result is bit-exact under any chunking.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..audio import db_to_gain

#: level floor of the dB conversions in the kernels (linear amplitude, -200 dBFS)
LEVEL_FLOOR = 1e-10


def time_constant_coeff(time_ms: float, sample_rate: float, step_samples: float = 1.0) -> float:
    """One-pole coefficient ``exp(-step / (tau * fs))`` for a time constant in ms.

    ``step_samples`` is how many samples one update covers (1 per sample; the
    hop for per-frame smoothers).  A time constant of 0 ms (or less) gives 0:
    the smoother follows its input instantly.
    """
    tau_s = float(time_ms) / 1000.0
    if tau_s <= 0.0:
        return 0.0
    return math.exp(-float(step_samples) / (tau_s * float(sample_rate)))


def linked_level(x: np.ndarray) -> np.ndarray:
    """Stereo-linked detector input: ``max_c |x[c, n]|`` as float64 ``(samples,)``."""
    return np.max(np.abs(np.asarray(x, dtype=np.float64)), axis=0)


@njit(cache=True, nogil=True)
def follow(level: float, env: float, attack: float, release: float) -> float:
    """One step of a branching one-pole follower (attack when rising)."""
    if level > env:
        return attack * env + (1.0 - attack) * level
    return release * env + (1.0 - release) * level


#: :func:`engine.audio.db_to_gain` compiled for the numba kernels
db_to_gain_kernel = njit(cache=True, nogil=True)(db_to_gain)


@njit(cache=True, nogil=True)
def amp_to_db(x: float) -> float:
    """Linear amplitude to dB, floored at :data:`LEVEL_FLOOR` (-200 dB)."""
    if x < 1e-10:
        return -200.0
    return 20.0 * math.log10(x)
