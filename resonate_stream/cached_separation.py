"""Separation backed by the stem cache (module 09).

Separation is by far the most expensive step, so ``resonate process`` keys the
separated stems by (input file hash, separator and window geometry) and stores
them while they stream by.  Re-processing the same recording with other
enhancement, mix or master settings then reads the stems back instead of
separating again.  Both classes are separation lanes like
:class:`engine.separation.streaming.StreamingSeparation` (``process`` /
``flush`` / ``drain`` / ``reset`` / ``latency``), so the runner wraps the
separation lane of any :class:`engine.graph.GraphPipeline` with them, whether
its windows run in this process or on Ray actors.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from engine.audio import CHANNELS, STEM_NAMES
from engine.blocks import StemFifo
from engine.separation.streaming import join_stems

from .cache import StemCache, StemWriter, cache_key, hash_file

#: bump when the stored stems' meaning changes (invalidates old entries)
CACHE_VERSION = 1
DEFAULT_MAX_BYTES = 20 * 1024 ** 3
DEFAULT_MAX_AGE_DAYS = 7.0


def separation_key(path, description: dict) -> str:
    """Cache key of the stems of file ``path`` separated as ``description`` says."""
    return cache_key(hash_file(path), "separate", {"separator": description, "version": CACHE_VERSION})


class RecordingSeparation:
    """Pass-through around a real separation that also writes its stems to the cache.

    The entry is published only when the stream ends (``finish``); a failed or
    cancelled job leaves nothing behind (call :meth:`abort`).
    """

    def __init__(self, inner, writer: StemWriter):
        self.inner = inner
        self.writer = writer

    @property
    def latency(self) -> int:
        return self.inner.latency

    def _record(self, stems: dict) -> dict:
        if stems and next(iter(stems.values())).shape[1]:
            self.writer.write(stems)
        return stems

    def process(self, block: np.ndarray) -> dict:
        return self._record(self.inner.process(block))

    def drain(self) -> Iterator[dict]:
        """End of stream: the rest in pieces (recorded); publishes the entry after the last."""
        for stems in self.inner.drain():
            yield self._record(stems)
        self.writer.commit()

    def flush(self) -> dict:
        return join_stems(list(self.drain()))

    def reset(self) -> None:
        """Discard the entry being written (the stream it recorded is abandoned)."""
        self.abort()
        self.inner.reset()

    def abort(self) -> None:
        self.writer.abort()


class CachedSeparation:
    """Replays cached stems in step with the input: ``push(n samples)`` returns ``n`` samples of stems."""

    latency = 0

    def __init__(self, cache: StemCache, key: str):
        self.reader = cache.reader(key)
        self.fifo = StemFifo()

    def _take(self, n: int | None) -> dict:
        while n is None or self.fifo.available < n:
            block = next(self.reader, None)
            if block is None:
                break
            self.fifo.push({k: block[k] for k in STEM_NAMES})  # canonical stem order
        if not self.fifo.available:
            return {k: np.zeros((CHANNELS, 0), np.float32) for k in STEM_NAMES}
        return self.fifo.pop(None if n is None else min(n, self.fifo.available))

    def process(self, block: np.ndarray) -> dict:
        return self._take(block.shape[1])

    def flush(self) -> dict:
        out = self._take(None)
        self.reader.close()
        return out

    def drain(self) -> Iterator[dict]:
        yield self.flush()

    def reset(self) -> None:
        """Stop reading (a cached entry replays one stream only)."""
        self.abort()

    def abort(self) -> None:
        self.reader.close()
