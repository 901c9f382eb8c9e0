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
    :class:`FixedBlocker`; ``process`` returns a list of stem dicts of
    exactly ``block_size`` samples, ``flush`` the shorter remainder (or
    nothing).  ``latency``: it holds fewer than ``block_size`` samples.
    """

    def __init__(self, block_size: int):
        self.block_size = int(block_size)
        self.latency = self.block_size - 1
        self.reset()

    def reset(self) -> None:
        self._names: tuple[str, ...] | None = None
        self._blocker: FixedBlocker | None = None

    def _split(self, stacked: np.ndarray) -> dict[str, np.ndarray]:
        return {k: stacked[i * CHANNELS:(i + 1) * CHANNELS] for i, k in enumerate(self._names)}

    def process(self, stems: dict[str, np.ndarray] | None) -> list[dict[str, np.ndarray]]:
        if not stems or next(iter(stems.values())).shape[1] == 0:
            return []
        if self._names is None:
            self._names = tuple(stems)
            self._blocker = FixedBlocker(self.block_size, CHANNELS * len(self._names))
        stacked = np.concatenate([stems[k] for k in self._names], axis=0)
        return [self._split(b) for b in self._blocker.push(stacked)]

    def flush(self) -> list[dict[str, np.ndarray]]:
        if self._blocker is None:
            return []
        return [self._split(b) for b in self._blocker.finish()]


class StemFifo:
    """FIFO of stem blocks (``dict`` name -> ``(channels, n)``): ``push`` any
    sizes, ``pop(n)`` exactly ``n`` samples of every stem.

    Used wherever two streams run at different block boundaries: separated
    stems vs the input they came from, cached stems vs the input blocks,
    enhanced stems vs the (look-ahead delayed) preview.
    """

    def __init__(self):
        self._parts: dict[str, list[np.ndarray]] = {}
        self.available = 0  # samples per stem held

    def push(self, stems: dict[str, np.ndarray]) -> None:
        lengths = {v.shape[1] for v in stems.values()}
        if len(lengths) != 1:
            raise ValueError(f"stems of different lengths {sorted(lengths)}")
        for k, v in stems.items():
            self._parts.setdefault(k, []).append(v)
        self.available += lengths.pop()

    def pop(self, n: int | None = None) -> dict[str, np.ndarray]:
        """The next ``n`` samples of every stem (all held samples when ``n`` is None)."""
        n = self.available if n is None else n
        if n > self.available:
            raise ValueError(f"asked for {n} samples, only {self.available} held")
        out = {}
        for k, parts in self._parts.items():
            cat = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
            out[k] = cat[:, :n]
            self._parts[k] = [cat[:, n:]] if cat.shape[1] > n else []
        self.available -= n
        return out
