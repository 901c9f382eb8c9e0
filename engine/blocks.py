"""Re-blocking of a stems stream into fixed-size blocks.

Stitched separator output arrives in pieces whose size depends on window
timing.  Both runners (in-process and Ray) re-block it to the same fixed size
before the in-order stages, so those stages see identical block boundaries
and the two runners' outputs are bit-identical.
"""
from __future__ import annotations

import numpy as np

from .audio import CHANNELS
from .io.reblock import FixedBlocker


class StemReblocker:
    """Fixed-size re-blocking of a stems stream (``dict`` name -> ``(2, n)``).

    The stems are stacked into one ``(2 * stems, n)`` array and cut with
    :class:`FixedBlocker`; ``push`` returns stem dicts of exactly
    ``block_size`` samples, ``finish`` the shorter remainder (or nothing).
    """

    def __init__(self, block_size: int):
        self.block_size = int(block_size)
        self._names: tuple[str, ...] | None = None
        self._blocker: FixedBlocker | None = None

    def _split(self, stacked: np.ndarray) -> dict[str, np.ndarray]:
        return {k: stacked[i * CHANNELS:(i + 1) * CHANNELS] for i, k in enumerate(self._names)}

    def push(self, stems: dict[str, np.ndarray] | None) -> list[dict[str, np.ndarray]]:
        if not stems or next(iter(stems.values())).shape[1] == 0:
            return []
        if self._names is None:
            self._names = tuple(stems)
            self._blocker = FixedBlocker(self.block_size, CHANNELS * len(self._names))
        stacked = np.concatenate([stems[k] for k in self._names], axis=0)
        return [self._split(b) for b in self._blocker.push(stacked)]

    def finish(self) -> list[dict[str, np.ndarray]]:
        if self._blocker is None:
            return []
        return [self._split(b) for b in self._blocker.finish()]
