"""Exact medians by a sorting network, run over many windows at once (numba).

A compare-exchange is a ``min`` and a ``max``: exact, branch-free, and the
same operation for every window, so a network applied to a whole row of
windows at a time vectorises where an insertion sort per window cannot.  The
median it yields is an element of the window, so it equals any other exact
median to the bit.

:func:`median_network` builds the exchanges for one odd width: Batcher's
odd-even merge sort on the next power of two, with the padding wires (which
would hold +inf) removed by propagating them through the network, then pruned
to the exchanges the median depends on (70 exchanges for 17 values, 138 for
29).  :func:`median_filter_cols` is a sliding median along axis 0 with it.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort on ``n`` (a power of two) wires: compare-exchange pairs
    ``(a, b)``, after which wire ``a`` holds the smaller value."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@functools.cache
def median_network(width: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(a, b, target)`` for ``width`` (odd, >= 1) values on wires ``0 .. width - 1``: after the
    exchanges ``wire[a[q]], wire[b[q]] = min(..), max(..)`` in order, wire ``target`` holds the median."""
    width = int(width)
    if width < 1 or width % 2 == 0:
        raise ValueError(f"the median network needs an odd width >= 1, got {width}")
    size = 1 << (width - 1).bit_length()
    holder: list[int | None] = list(range(width)) + [None] * (size - width)  # None: a +inf pad
    ops = []
    for pa, pb in _batcher_pairs(size):
        wa, wb = holder[pa], holder[pb]
        if wb is None:  # max(x, inf) stays at pb: nothing moves
            continue
        if wa is None:  # the finite value moves down, the pad up: a relabelling
            holder[pa], holder[pb] = wb, None
            continue
        ops.append((wa, wb))  # wire wa takes the min, wb the max: positions keep their wires
    target = holder[width // 2]
    need, keep = {target}, []
    for wa, wb in reversed(ops):
        if wa in need or wb in need:
            keep.append((wa, wb))
            need |= {wa, wb}
    keep.reverse()
    return (np.array([q[0] for q in keep], dtype=np.int64), np.array([q[1] for q in keep], dtype=np.int64),
            int(target))


@njit(cache=True, nogil=True)
def apply_network(wires, a, b):  # pragma: no cover - compiled
    """The exchanges ``(a, b)`` on the rows of ``wires`` ``(width, m)``, all ``m`` columns at once."""
    m = wires.shape[1]
    for q in range(a.shape[0]):
        x = wires[a[q]]
        y = wires[b[q]]
        for j in range(m):
            u = x[j]
            v = y[j]
            x[j] = min(u, v)
            y[j] = max(u, v)


@njit(cache=True, nogil=True)
def _median_cols(x, k, a, b, target):  # pragma: no cover - compiled
    n, m = x.shape
    h = k // 2
    out = np.empty_like(x)
    wires = np.empty((k, m), dtype=x.dtype)
    for i in range(n):
        for w in range(k):
            j = i + w - h
            while j < 0 or j >= n:  # scipy 'reflect': (d c b a | a b c d | d c b a)
                if j < 0:
                    j = -j - 1
                if j >= n:
                    j = 2 * n - j - 1
            wires[w] = x[j]
        apply_network(wires, a, b)
        out[i] = wires[target]
    return out


def median_filter_cols(x: np.ndarray, k: int) -> np.ndarray:
    """Median over a window of ``k`` (odd) samples along axis 0 of 2-D ``x``, every column at
    once: ``scipy.ndimage.median_filter(x, size=(k, 1), mode="reflect")``, to the bit.

    ``x`` must be finite (NaN has no place in an order).
    """
    x = np.ascontiguousarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {x.shape}")
    k = int(k) | 1
    if k <= 1 or x.shape[0] == 0:
        return x.copy()
    a, b, target = median_network(k)
    return _median_cols(x, k, a, b, target)
