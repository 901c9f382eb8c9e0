"""Shared pieces of the gain riders (stem mixer, preview master).

Gains change only on a fixed grid of absolute sample positions (every
``hop`` samples, 100 ms) and are ramped linearly across the following hop, so
a rider's output never depends on how its input was cut into blocks.
"""
from __future__ import annotations

import math

import numpy as np


def grid_segments(samples_done: int, n: int, hop: int):
    """Cut ``n`` samples starting at absolute position ``samples_done`` at hop edges.

    Yields ``(start, stop, offset_in_hop, ends_hop)``: ``start:stop`` indexes
    the block, ``offset_in_hop`` is the position of ``start`` inside its hop
    and ``ends_hop`` tells whether ``stop`` is a hop boundary.
    """
    start = 0
    pos = samples_done
    while start < n:
        off = pos % hop
        take = min(hop - off, n - start)
        yield start, start + take, off, off + take == hop
        start += take
        pos += take


def ramp(g0: float, g1: float, offset: int, length: int, hop: int) -> np.ndarray:
    """Linear gains from ``g0`` to ``g1`` across one hop, float32 ``(length,)``.

    Sample ``offset + i`` of the hop gets ``g0 + (g1 - g0) * (offset + i + 1) / hop``:
    elementwise from absolute positions, so identical however the hop is split.
    """
    if g0 == g1:
        return np.full(length, g0, dtype=np.float32)
    k = (np.arange(offset, offset + length, dtype=np.float64) + 1.0) / hop
    return (g0 + (g1 - g0) * k).astype(np.float32)


def smooth_step(current_db: float, desired_db: float, hop_s: float, time_constant_s: float,
                max_rate_db_per_s: float) -> float:
    """One grid update of a dB gain: one-pole towards ``desired_db``, slew-limited.

    ``time_constant_s`` of the one-pole; the change per update is at most
    ``max_rate_db_per_s * hop_s`` dB.
    """
    a = 1.0 - math.exp(-hop_s / time_constant_s) if time_constant_s > 0 else 1.0
    step = (desired_db - current_db) * a
    lim = max_rate_db_per_s * hop_s
    step = max(-lim, min(lim, step))
    return current_db + step
