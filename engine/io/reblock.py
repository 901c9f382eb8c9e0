"""Cut a stream of variable-size blocks into fixed-size blocks."""
from __future__ import annotations

import numpy as np


class FixedBlocker:
    """Re-cut ``(channels, n)`` blocks into blocks of exactly ``block_size`` samples.

    ``push(block)`` returns the full blocks now available (a list, possibly
    empty) and keeps the remainder (fewer than ``block_size`` samples);
    ``finish()`` returns the remainder as a last, shorter block (or nothing).
    So the blocks a consumer sees depend only on the stream, never on how it
    arrived.  Memory: at most one block plus the incoming one.
    """

    def __init__(self, block_size: int, channels: int):
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = int(block_size)
        self.channels = int(channels)
        self._parts: list[np.ndarray] = []
        self._held = 0

    @property
    def held(self) -> int:
        """Samples waiting for the next full block."""
        return self._held

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        """Add ``(channels, n)``; return the completed ``(channels, block_size)`` blocks."""
        if block.shape[1] == 0:
            return []
        self._parts.append(block)
        self._held += block.shape[1]
        if self._held < self.block_size:
            return []
        joined = np.concatenate(self._parts, axis=1) if len(self._parts) > 1 else self._parts[0]
        n_full = (self._held // self.block_size) * self.block_size
        out = [np.ascontiguousarray(joined[:, i:i + self.block_size])
               for i in range(0, n_full, self.block_size)]
        rest = joined[:, n_full:]
        self._parts = [np.ascontiguousarray(rest)] if rest.shape[1] else []
        self._held = rest.shape[1]
        return out

    def finish(self) -> list[np.ndarray]:
        """End of stream: the remainder as one last block (empty list if none)."""
        if not self._held:
            return []
        joined = np.concatenate(self._parts, axis=1) if len(self._parts) > 1 else self._parts[0]
        self._parts, self._held = [], 0
        return [np.ascontiguousarray(joined)]
