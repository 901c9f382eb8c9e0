"""Stereo width by mid/side gain (memoryless, zero latency)."""
from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import SettingsError
from ..stage import Stage


class StereoWidth(Stage):
    """Scales the side signal of a stereo ``(2, samples)`` block by ``width``.

    ``mid = (L + R) / 2``, ``side = (L - R) / 2``; the output is
    ``L' = L + (width - 1) * side`` and ``R' = R - (width - 1) * side``, i.e.
    mid unchanged and side times ``width`` (linear: 0 = mono, 1 = unchanged,
    2 = side +6 dB).  ``width == 1`` is a bit-exact pass-through.  Memoryless,
    so trivially chunk-size invariant.
    """

    name = "width"
    channels = 2

    def __init__(self, width: float = 1.0, sample_rate: int = SAMPLE_RATE):
        if not 0.0 <= float(width) <= 4.0:
            raise SettingsError(f"stereo width must be between 0 and 4, not {width!r}")
        self.width = float(width)
        self.sample_rate = int(sample_rate)

    def _process(self, block: np.ndarray) -> np.ndarray:
        if block.shape[0] != 2:
            raise ValueError(f"StereoWidth needs a (2, samples) block, got {block.shape}")
        if self.width == 1.0:
            return block.astype(np.float32, copy=True)
        x = block.astype(np.float64)
        extra = (self.width - 1.0) * 0.5 * (x[0] - x[1])
        return np.stack([x[0] + extra, x[1] - extra]).astype(np.float32)
