"""Streaming sample-rate conversion with libsoxr.

The output of :class:`StreamResampler` over a whole stream equals one-shot
``soxr.resample`` of the concatenated input at the same quality, whatever the
block sizes (libsoxr's streaming interface is chunk-size invariant); the total
output length is ``round(n_in * out_rate / in_rate)`` samples.
"""
from __future__ import annotations

import numpy as np
import soxr

from ..stage import Stage


class StreamResampler(Stage):
    """Resample ``(channels, samples)`` float32 blocks from ``in_rate`` to ``out_rate`` Hz.

    A re-timing :class:`~engine.stage.Stage` (latency 0: libsoxr compensates
    its filter delay): ``process(block)`` returns whatever output is ready
    (``(channels, m)``, ``m`` may be 0 at first: libsoxr holds back its filter
    delay); ``flush()`` ends the stream and returns the rest
    (:meth:`output_length` samples in all).  After ``flush`` the resampler is
    reset, ready for a new stream.  When the rates are equal it copies blocks
    through unchanged.

    ``quality`` is a libsoxr recipe: ``"HQ"`` (20-bit, default) or ``"VHQ"``
    (28-bit, for 24-bit exports).
    """

    name = "resampler"
    latency = 0

    def __init__(self, in_rate: int, out_rate: int, channels: int, quality: str = "HQ"):
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.channels = int(channels)
        self.quality = quality
        self.is_identity = self.in_rate == self.out_rate
        self._stream = None if self.is_identity else soxr.ResampleStream(
            self.in_rate, self.out_rate, self.channels, dtype="float32", quality=quality)

    def output_length(self, n: int) -> int:
        """Output samples for a whole stream of ``n`` input samples."""
        return int(round(n * self.out_rate / self.in_rate))

    def process(self, block: np.ndarray) -> np.ndarray:
        """Consume ``(channels, n)``; return the ``(channels, m)`` output now available."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected a ({self.channels}, samples) block, got shape {block.shape}")
        if self._stream is None:
            return block.copy()
        if block.shape[1] == 0:
            return np.zeros((self.channels, 0), dtype=np.float32)
        out = self._stream.resample_chunk(np.ascontiguousarray(block.T))
        return np.ascontiguousarray(out.T)

    def flush(self) -> np.ndarray:
        """End of stream: return the held-back tail ``(channels, k)`` and reset."""
        if self._stream is None:
            return np.zeros((self.channels, 0), dtype=np.float32)
        out = self._stream.resample_chunk(np.zeros((0, self.channels), dtype=np.float32), last=True)
        self._stream.clear()
        return np.ascontiguousarray(out.T)

    def reset(self) -> None:
        """Forget the current stream."""
        if self._stream is not None:
            self._stream.clear()
