"""Streaming windowed model stages: planner -> windows (run somewhere) -> stitcher.

:class:`WindowedLane` holds what every windowed model lane shares (separation
here, MBD polish in :mod:`engine.polish.streaming`).
:class:`StreamingSeparation` is the separation lane of the job graph
(:mod:`engine.graph`).  Where its windows run is a :class:`WindowRunner`:
:class:`InlineWindows` runs them at once in this process, :class:`ThreadWindows` on a
worker thread of this process (beside the caller's other work); the Ray runner
passes one that spreads them over a pool of separator actors (windows come
back in any order: the stitcher reorders them).
"""
from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Protocol

import numpy as np

from ..audio import CHANNELS, as_block, check_finite
from .base import Separator, to_stem_dict


class WindowRunner(Protocol):
    """Where separation windows run.

    ``geometry``: the separator's ``WindowGeometry``.  ``submit(window)``
    starts one window (it may wait while too many are in flight: the
    back-pressure bound); ``collect(wait)`` returns the ``(window, stems)``
    pairs finished since the last call (with ``wait``, at least one if any is
    in flight); ``in_flight`` counts submitted windows not yet collected.
    """

    geometry: object
    in_flight: int

    def submit(self, window) -> None: ...

    def collect(self, wait: bool) -> list: ...


class InlineWindows:
    """Runs each window at once in this process: ``run(window)`` (default ``model.separate``).

    ``model`` has the window ``geometry``; the same runner serves every windowed
    model stage (Demucs / DSP separation, MBD polish: ``run=polisher.polish``).
    """

    def __init__(self, model, run=None):
        self.model = model
        self.geometry = model.geometry
        self._run = run if run is not None else model.separate
        self._done: list = []

    @property
    def in_flight(self) -> int:
        return len(self._done)

    def submit(self, window) -> None:
        self._done.append((window, self._run(window)))

    def collect(self, wait: bool) -> list:
        done, self._done = self._done, []
        return done


class ThreadWindows:
    """Runs windows on one worker thread of this process, at most ``max_in_flight`` at once.

    The model's kernels (scipy FFTs, numba medians compiled ``nogil``, torch) release the GIL,
    so the caller's thread (decode, input analysis, routing) and the in-order lanes go on while
    a window is separated.  One worker: the model sees its windows one at a time, in order, from
    one thread.  ``submit`` waits for the oldest window when ``max_in_flight`` are running (the
    back-pressure bound); results come back in submission order, so the stitched output is the
    same as with :class:`InlineWindows`.  A window that raised re-raises in the caller at
    ``collect``.  :meth:`close` stops the worker.
    """

    def __init__(self, model, run=None, max_in_flight: int = 2):
        if int(max_in_flight) < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.model = model
        self.geometry = model.geometry
        self.max_in_flight = int(max_in_flight)
        self._run = run if run is not None else model.separate
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resonate-separator")
        self._pending: collections.deque = collections.deque()  # (window, future), oldest first

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, window) -> None:
        if len(self._pending) >= self.max_in_flight:
            self._pending[0][1].exception()  # wait for the oldest (collect hands it out, or its error)
        self._pending.append((window, self._executor.submit(self._run, window)))

    def collect(self, wait: bool) -> list:
        if wait and self._pending:
            self._pending[0][1].result()
        done = []
        while self._pending and self._pending[0][1].done():
            window, future = self._pending.popleft()
            done.append((window, future.result()))
        return done

    def close(self) -> None:
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)


class WindowedLane:
    """A stateless model stage streamed by windows: planner -> window runner -> stitcher.

    The mechanics every windowed model lane shares (separation, MBD polish):
    the planner cuts overlapping windows from the input as it arrives, the
    :class:`WindowRunner` runs them (here or on actors, in any order), the
    overlap-add stitcher puts the results back in order.  Subclasses turn the
    stitched array into their output (:meth:`_push` / :meth:`_drain_raw`).
    ``latency``: input samples needed before the first output comes out.
    """

    def __init__(self, windows: WindowRunner):
        self.windows = windows
        geometry = windows.geometry
        self.planner = geometry.planner()
        self.stitcher = geometry.stitcher()
        self.windows_processed = 0

    @property
    def latency(self) -> int:
        return self.planner.latency_samples

    @property
    def received(self) -> int:
        """Input samples processed so far."""
        return self.planner.received

    @property
    def emitted(self) -> int:
        """Output samples returned so far."""
        return self.stitcher.emitted

    def reset(self) -> None:
        """Ready for a new stream (windows still in flight are waited for and dropped)."""
        while self.windows.in_flight:
            self.windows.collect(wait=True)
        self.planner.reset()
        self.stitcher.reset()
        self.windows_processed = 0

    def _collect(self, wait: bool) -> None:
        for w, result in self.windows.collect(wait):
            self.stitcher.add(w.seq, w.offset, result)
            self.windows_processed += 1

    def _push(self, block: np.ndarray) -> np.ndarray:
        """Feed ``block``; return the stitched samples that became final."""
        for w in self.planner.push(block):
            self.windows.submit(w)
        self._collect(wait=False)
        return self.stitcher.pop_ready()

    def _drain_raw(self) -> Iterator[np.ndarray]:
        """End of stream: the remaining stitched samples in pieces, as the last windows come back."""
        for w in self.planner.finish():
            self.windows.submit(w)
        while self.windows.in_flight:
            self._collect(wait=True)
            part = self.stitcher.pop_ready()
            if part.shape[-1]:
                yield part
        yield self.stitcher.finish(self.planner.received)


class StreamingSeparation(WindowedLane):
    """Feed audio blocks in, get stems out, aligned sample-for-sample.

    Args:
        separator: any :class:`~engine.separation.base.Separator` (its windows
            run in this process), or None with ``windows``.
        map_to_stems: return ``vocals, drums, bass, other`` (True) or the
            model's own source names in model order (False).
        windows: a :class:`WindowRunner` instead of ``separator`` (e.g. the Ray
            separator pool).

    ``process(block)`` takes float32 ``(2, n)`` (any ``n``, 0 included) and
    returns a dict of stems, each ``(2, m)`` with the same ``m``; ``m`` is 0
    until the first window is complete (``latency`` = segment + context
    samples), and after that jumps by whole strides.  ``flush()`` returns the
    rest; :meth:`drain` returns it in pieces as windows come back.  Over a
    stream, the stems hold exactly as many samples as the input, output
    sample ``i`` belonging to input sample ``i``.  Memory stays bounded.
    """

    def __init__(self, separator: Separator | None = None, map_to_stems: bool = True, *,
                 windows: WindowRunner | None = None):
        if (separator is None) == (windows is None):
            raise ValueError("give a separator or a window runner, not both")
        super().__init__(windows if windows is not None else InlineWindows(separator))
        self.sources = tuple(self.windows.geometry.sources)
        self.map_to_stems = bool(map_to_stems)

    def _to_dict(self, stems: np.ndarray) -> dict[str, np.ndarray]:
        if self.map_to_stems:
            return to_stem_dict(self.sources, stems)
        return {name: stems[i] for i, name in enumerate(self.sources)}

    def process(self, block: np.ndarray) -> dict[str, np.ndarray]:
        """Consume ``block`` ``(2, n)``; return the stems that became final."""
        block = as_block(block, CHANNELS)
        check_finite(block, "separation input")
        return self._to_dict(self._push(block))

    def drain(self) -> Iterator[dict[str, np.ndarray]]:
        """End of stream: the remaining stems in pieces, as the last windows come back."""
        for part in self._drain_raw():
            yield self._to_dict(part)

    def flush(self) -> dict[str, np.ndarray]:
        """End of stream: return the remaining stems."""
        return join_stems(list(self.drain()))

    def process_all(self, mix: np.ndarray, block_size: int = 44100) -> dict[str, np.ndarray]:
        """Convenience: stream ``mix`` ``(2, n)`` in ``block_size`` blocks, return whole stems."""
        parts = []
        for start in range(0, mix.shape[1], max(1, int(block_size))):
            parts.append(self.process(mix[:, start:start + block_size]))
        parts.append(self.flush())
        return join_stems(parts)


def join_stems(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate stem dicts along time (``parts`` non-empty, same names)."""
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
