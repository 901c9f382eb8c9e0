"""Sliding median along the last axis (numba), for the DSP separator's HPSS.

Same result as ``scipy.ndimage.median_filter(x, size=(1, k), mode="reflect")``
(bit-exact), about 4-5x faster: each row keeps its window sorted and slides it
by one removal and one insertion.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _median_rows(x, k):  # pragma: no cover - compiled
    rows, n = x.shape
    h = k // 2
    out = np.empty_like(x)
    win = np.empty(k, dtype=x.dtype)
    pad = np.empty(n + 2 * h, dtype=x.dtype)
    for r in range(rows):
        for i in range(n + 2 * h):  # scipy 'reflect': (d c b a | a b c d | d c b a)
            j = i - h
            while j < 0 or j >= n:
                if j < 0:
                    j = -j - 1
                if j >= n:
                    j = 2 * n - j - 1
            pad[i] = x[r, j]
        for i in range(k):
            win[i] = pad[i]
        win.sort()
        out[r, 0] = win[h]
        for i in range(1, n):
            old = pad[i - 1]
            new = pad[i - 1 + k]
            p = 0
            while win[p] != old:
                p += 1
            if new >= old:
                while p + 1 < k and win[p + 1] < new:
                    win[p] = win[p + 1]
                    p += 1
            else:
                while p > 0 and win[p - 1] > new:
                    win[p] = win[p - 1]
                    p -= 1
            win[p] = new
            out[r, i] = win[h]
    return out


def median_filter_rows(x: np.ndarray, k: int) -> np.ndarray:
    """Median over a window of ``k`` (odd) samples along the last axis of 2-D ``x``.

    ``x`` must be finite (NaN would break the sorted window): callers clean it.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {x.shape}")
    if k <= 1 or x.shape[1] == 0:
        return x.copy()
    return _median_rows(x, int(k) | 1)
