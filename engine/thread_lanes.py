"""In-order lanes on worker threads of this process (`resonate process --lane-threads`).

The lane protocol of :mod:`engine.graph` (``submit`` / ``head_ready`` /
``pop`` / ``query`` / ``close``) was made for lanes that answer later (Ray
actors); here each lane's calls run on one worker thread, in order, so the
four stem lanes, the mix/master lane and the separator (on the caller's
thread) overlap wherever their kernels release the GIL (numpy FFTs, the numba
kernels compiled ``nogil``, torch).  A lane is bound to one worker for its
life, so its stage sees its calls strictly in order and the output is the
same as with every lane inline (tested bit for bit); with fewer workers than
lanes, lanes share workers round-robin (``workers=1``: all in-order work on
one thread beside the separator).

A call that raises re-raises in the caller at its ``pop`` (or ``query``),
with the worker's traceback chained.
"""
from __future__ import annotations

import collections
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from .errors import SettingsError

if TYPE_CHECKING:  # engine.graph imports this module
    from .graph import LaneSpec

MAX_AUTO_WORKERS = 6  # 4 stem lanes, the mixer and the mix/master lane


def auto_workers(cpu_count: int | None = None, reserved: int = 0) -> int:
    """Workers for ``lane_threads="auto"``: one per core not ``reserved`` (by the separator's
    own thread pool), up to one per lane, and at least 2 on any machine with 2 cores or more;
    0 (inline) on one core.

    Measured on 2 cores: with a separator that leaves the cores free
    (``benchmarks/bench_lanes.py``), 2 workers run the lanes 1.5-1.6x faster than inline; with
    Demucs' 2 torch threads on the same 2 cores (``bench_peer.py --compare-lanes 2``, 60 s, 3
    rounds), 2 workers still took 0.92x the inline wall (median 51.5 s vs 55.7 s): the lanes
    fill the model's idle gaps, so the floor of 2 holds even when every core is reserved.
    """
    n = int((os.cpu_count() if cpu_count is None else cpu_count) or 1)
    if n < 2:
        return 0
    return max(2, min(n - max(int(reserved), 0), MAX_AUTO_WORKERS))


def resolve_workers(value, reserved: int = 0) -> int:
    """``"auto"`` / None -> :func:`auto_workers` (``reserved``: cores the separator's pool
    takes); an int >= 0 as is (0: every lane inline)."""
    if value is None or value == "auto":
        return auto_workers(reserved=reserved)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"lane threads must be 'auto' or an integer >= 0, got {value!r}") from None
    if n < 0 or n != float(value):
        raise SettingsError(f"lane threads must be 'auto' or an integer >= 0, got {value!r}")
    return n


class ThreadLanes:
    """``workers`` single-thread executors; :meth:`place` makes a lane on the next one."""

    def __init__(self, workers: int):
        if int(workers) < 1:
            raise SettingsError(f"workers must be >= 1, got {workers}")
        self.executors = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"resonate-lane-{i}")
                          for i in range(int(workers))]
        self._next = 0

    @property
    def workers(self) -> int:
        return len(self.executors)

    def place(self, spec: LaneSpec) -> "ThreadLane":
        executor = self.executors[self._next % len(self.executors)]
        self._next += 1
        return ThreadLane(spec, executor)

    def shutdown(self) -> None:
        for ex in self.executors:
            ex.shutdown(wait=True, cancel_futures=True)


class ThreadLane:
    """One in-order lane whose calls run on ``executor`` (a single worker thread)."""

    recoveries = 0

    def __init__(self, spec: LaneSpec, executor: ThreadPoolExecutor):
        self.name = spec.name
        self._executor = executor
        # the stage is built on its worker, like an actor builds its own
        self.stage = executor.submit(spec.build).result()
        self._answers: collections.deque[Future] = collections.deque()

    def submit(self, method: str, *args) -> None:
        self._answers.append(self._executor.submit(getattr(self.stage, method), *args))

    def head_ready(self) -> bool:
        return bool(self._answers) and self._answers[0].done()

    def pop(self):
        return self._answers.popleft().result()

    def query(self, name: str):
        """A read-only question to the stage, answered after the calls before it."""
        return self._executor.submit(getattr(self.stage, name)).result()

    def close(self) -> None:
        for f in self._answers:
            f.cancel()
        self._answers.clear()
