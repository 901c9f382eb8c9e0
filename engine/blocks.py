"""Re-blocking: cut a stream of variable-size blocks into fixed-size blocks.

Stitched separator output arrives in pieces whose size depends on window
timing.  Both runners (in-process and Ray) re-block it to the same fixed size
before the in-order stages, so those stages see identical block boundaries
and the two runners' outputs are bit-identical.
"""
from __future__ import annotations

import numpy as np


class StemReblocker:
    """Fixed-size re-blocking of a stems stream (``dict`` name -> ``(2, n)``).

    ``push`` returns a list of stem dicts of exactly ``block_size`` samples;
    ``finish`` returns the remainder (one shorter dict, or nothing).
    """

    def __init__(self, block_size: int):
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self.block_size = int(block_size)
        self._parts: dict[str, list[np.ndarray]] = {}
        self._held = 0

    def push(self, stems: dict[str, np.ndarray] | None) -> list[dict[str, np.ndarray]]:
        if not stems:
            return []
        n = next(iter(stems.values())).shape[1]
        if n == 0:
            return []
        for k, v in stems.items():
            self._parts.setdefault(k, []).append(v)
        self._held += n
        out = []
        if self._held >= self.block_size:
            joined = {k: np.concatenate(v, axis=1) for k, v in self._parts.items()}
            pos = 0
            while self._held - pos >= self.block_size:
                out.append({k: v[:, pos:pos + self.block_size] for k, v in joined.items()})
                pos += self.block_size
            self._parts = {k: [v[:, pos:]] for k, v in joined.items()}
            self._held -= pos
        return out

    def finish(self) -> list[dict[str, np.ndarray]]:
        if self._held == 0:
            return []
        rest = {k: np.concatenate(v, axis=1) for k, v in self._parts.items()}
        self._parts, self._held = {}, 0
        return [rest]
