"""Block sinks on a worker thread: meters, analysers and writers beside the caller's work.

:class:`SinkThread` calls its sinks (``sink(block)``: a meter's ``update``, a
writer's ``write``) on one worker thread, block after block in the order
given, so each sink sees exactly the stream it would see inline and its
result is the same to the bit.  The numba kernels (true-peak, loudness,
limiter, noise suppression) are compiled ``nogil`` and numpy / scipy / libsndfile
release the GIL in their loops, so on a machine with two cores a pass that
meters, analyses and writes runs about as fast as its slowest part instead
of the sum of them.

At most ``depth`` blocks wait at once (the caller waits beyond that: memory
stays bounded).  A sink that raised re-raises in the caller at the next
call or at :meth:`close` (the worker's traceback chained); blocks after the
failure are not handed to the sinks.  The blocks must not be written to
after they are handed over (every producer here returns fresh arrays).
"""
from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import numpy as np


class SinkThread:
    """``sinks`` fed on one worker thread, in order; ``depth`` blocks queued at most."""

    def __init__(self, *sinks: Callable[[np.ndarray], object], depth: int = 4, name: str = "resonate-sink"):
        if not sinks:
            raise ValueError("give at least one sink")
        if int(depth) < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.sinks = sinks
        self.depth = int(depth)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: collections.deque[Future] = collections.deque()
        self._closed = False
        self._failed = False

    def _feed(self, block: np.ndarray) -> None:
        if self._failed:
            return
        try:
            for sink in self.sinks:
                sink(block)
        except BaseException:
            self._failed = True
            raise

    def _settle(self, keep: int) -> None:
        while self._pending and (len(self._pending) > keep or self._pending[0].done()):
            self._pending.popleft().result()  # re-raises a sink's error here

    def __call__(self, block: np.ndarray) -> None:
        if self._closed:
            raise RuntimeError("SinkThread is closed")
        self._settle(self.depth - 1)
        self._pending.append(self._executor.submit(self._feed, block))

    def close(self) -> None:
        """Wait until every block is consumed; re-raise a sink's error; stop the worker."""
        if self._closed:
            return
        self._closed = True
        try:
            self._settle(0)
        finally:
            self._abandon()

    def abort(self) -> None:
        """Stop without waiting for the queued blocks (after an error elsewhere)."""
        self._closed = True
        self._abandon()

    def _abandon(self) -> None:
        for f in self._pending:
            f.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "SinkThread":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
