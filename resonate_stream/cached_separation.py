"""Separation backed by the stem cache (module 09).

Separation is by far the most expensive step, so ``resonate process`` keys the
separated stems by (input file hash, separator and window geometry) and stores
them while they stream by.  Re-processing the same recording with other
enhancement, mix or master settings then reads the stems back instead of
separating again.  Both classes have the ``push`` / ``finish`` interface of
:class:`engine.separation.streaming.StreamingSeparation`.
"""
from __future__ import annotations

import numpy as np

from engine.audio import CHANNELS, STEM_NAMES

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

    def _record(self, stems: dict) -> dict:
        if stems and next(iter(stems.values())).shape[1]:
            self.writer.write(stems)
        return stems

    def push(self, block: np.ndarray) -> dict:
        return self._record(self.inner.push(block))

    def finish(self) -> dict:
        stems = self._record(self.inner.finish())
        self.writer.commit()
        return stems

    def abort(self) -> None:
        self.writer.abort()


class CachedSeparation:
    """Replays cached stems in step with the input: ``push(n samples)`` returns ``n`` samples of stems."""

    def __init__(self, cache: StemCache, key: str):
        self.reader = cache.reader(key)
        self._parts: list[dict] = []
        self._held = 0

    def _take(self, n: int | None) -> dict:
        while n is None or self._held < n:
            try:
                block = next(self.reader)
            except StopIteration:
                break
            self._parts.append(block)
            self._held += next(iter(block.values())).shape[1]
        if not self._parts:
            return {k: np.zeros((CHANNELS, 0), np.float32) for k in STEM_NAMES}
        joined = {k: np.concatenate([p[k] for p in self._parts], axis=1) for k in self._parts[0]}
        n = self._held if n is None else min(n, self._held)
        self._parts = [{k: v[:, n:] for k, v in joined.items()}]
        self._held -= n
        return {k: v[:, :n] for k, v in joined.items()}

    def push(self, block: np.ndarray) -> dict:
        return self._take(block.shape[1])

    def finish(self) -> dict:
        out = self._take(None)
        self.reader.close()
        return out

    def abort(self) -> None:
        self.reader.close()
