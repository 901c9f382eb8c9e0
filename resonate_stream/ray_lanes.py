"""Where the job graph's lanes run on Ray: separator windows over an actor pool,
each in-order lane in one actor (:mod:`engine.graph` describes the graph).

* :class:`PoolWindows` is the separation lane's window runner: windows go to
  the :class:`~resonate_stream.ray_pipeline.SeparatorPool` with at most
  ``max_in_flight`` in flight (back-pressure); they come back in any order
  and the stitcher reorders them.  Separator actors are stateless: Ray
  restarts a dead one and retries its windows, so the output is unchanged.
* :class:`StatefulLane` runs one in-order lane in a
  :class:`~actors.stateful.StageActor` with pipelined calls (block k+1 is sent
  before block k is answered), and brings a dead actor back to its state.
"""
from __future__ import annotations

import collections
from typing import Callable

import ray
from ray.exceptions import RayActorError, RayTaskError

from engine.errors import ResonateError
from engine.graph import LaneSpec, block_samples


class StageActorFailedError(ResonateError):
    """An in-order stage actor kept dying although it was replaced each time."""

    code = "stage_actor_failed"


class PoolWindows:
    """Separation windows over a separator actor pool, at most ``max_in_flight`` at once.

    ``windows_per_actor`` and ``peak_in_flight`` count this job's windows.
    """

    def __init__(self, pool, max_in_flight: int, variant: tuple | None = None, geometry=None):
        self.pool = pool
        self.variant = variant  # the job's window settings on the pool's model (None: the pool's own)
        self.geometry = geometry if geometry is not None else pool.geometry["geometry"]
        self.max_in_flight = int(max_in_flight)
        self._refs: dict = {}  # ref -> (window, actor index)
        self._done: list = []  # (window, stems) back but not yet collected
        self.windows_per_actor = [0] * len(pool.actors)
        self.peak_in_flight = 0

    @property
    def in_flight(self) -> int:
        return len(self._refs) + len(self._done)

    def _wait(self, wait: bool) -> None:
        if not self._refs:
            return
        refs = list(self._refs)
        ready, _ = ray.wait(refs, num_returns=1 if wait else len(refs), timeout=None if wait else 0)
        for ref in ready:
            window, i = self._refs.pop(ref)
            self.pool.done(i)
            self._done.append((window, ray.get(ref)))

    def submit(self, window) -> None:
        while len(self._refs) >= self.max_in_flight:
            self._wait(True)
        ref, i = self.pool.submit(window) if self.variant is None else self.pool.submit(window, self.variant)
        self._refs[ref] = (window, i)
        self.windows_per_actor[i] += 1
        self.peak_in_flight = max(self.peak_in_flight, len(self._refs))

    def collect(self, wait: bool) -> list:
        self._wait(wait and not self._done)
        done, self._done = self._done, []
        return done


#: calls the lane sends on its own; their answers are booked, never handed out
_BOOKKEEPING = ("start", "snapshot")


class StatefulLane:
    """One in-order lane in an actor, fed strictly in order; replaced and brought back to its state if it dies.

    ``take_actor()`` gives an idle :class:`~actors.stateful.StageActor` (warm
    from a pool, or new), ``release(actor)`` takes it back when the job ends.
    The lane first sends ``start(spec)``.  Every ``snapshot_every`` ``process``
    calls it queues a ``snapshot`` call behind them (in order, so it captures
    the state after exactly those inputs) and keeps the pickled state here, in
    the coordinator, with the inputs answered since.  A replacement actor
    restores the snapshot and replays those inputs, then the calls in flight
    are re-sent: its output is identical to an uninterrupted run.  If the
    stage cannot be pickled (``snapshot_every=None`` or a failed snapshot), the
    replacement is re-primed with the last ``preroll_samples`` of input
    instead, and its output converges back within a few seconds.
    """

    def __init__(self, spec: LaneSpec, take_actor: Callable[[], object], release: Callable[[object], None],
                 preroll_samples: int, *, snapshot_every: int | None = 5, max_recoveries: int = 3):
        self.spec = spec
        self.name = spec.name
        self.take_actor = take_actor
        self.release = release
        self.preroll_samples = preroll_samples
        self.snapshot_every = snapshot_every
        self.snapshot: bytes | None = None  # pickled state after the inputs answered before ``history``
        self.history: collections.deque = collections.deque()  # inputs answered since the snapshot (or pre-roll)
        self._history_samples = 0
        self._since_snapshot = 0  # process calls submitted since the last snapshot call
        self.inflight: collections.deque = collections.deque()  # (method, args, ref)
        self.recoveries = 0
        self.max_recoveries = max_recoveries
        self.actor = take_actor()
        # runs before any call of this job (an actor's calls keep their order); its error surfaces on the first pop
        self._send("start", (spec,))

    def submit(self, method: str, *args) -> None:
        self._send(method, args)
        if method == "process" and self.snapshot_every:
            self._since_snapshot += 1
            if self._since_snapshot >= self.snapshot_every:
                self._send("snapshot", ())
                self._since_snapshot = 0

    def _send(self, method: str, args: tuple) -> None:
        self.inflight.append((method, args, getattr(self.actor, method).remote(*args)))

    def head_ready(self) -> bool:
        """Whether the oldest call the pipeline waits for has answered (bookkeeping calls are skipped)."""
        while self.inflight:
            ready, _ = ray.wait([self.inflight[0][2]], timeout=0)
            if not ready or self.inflight[0][0] not in _BOOKKEEPING:
                return bool(ready)
            self._take_head()
        return False

    def pop(self):
        """Block for the oldest ``process``/``flush`` result (recovering from a dead actor)."""
        while True:
            method, out = self._take_head()
            if method not in _BOOKKEEPING:
                return out

    def query(self, name: str):
        """A read-only question to the stage, answered after the calls before it."""
        return ray.get(self.actor.query.remote(name))

    def _take_head(self):
        """Wait for the oldest call in flight and book it: ``(method, result)``."""
        while True:
            method, args, ref = self.inflight[0]
            try:
                out = ray.get(ref)
                break
            except RayActorError:
                self._recover()
            except RayTaskError as e:
                if isinstance(e.cause, RayActorError):
                    self._recover()
                elif method == "snapshot":  # state not picklable: fall back to the pre-roll
                    self.snapshot_every, self.snapshot, out = None, None, None
                    break
                else:
                    raise
        self.inflight.popleft()
        if method == "snapshot" and out is not None:
            self.snapshot = out
            self.history.clear()
            self._history_samples = 0
        elif method == "process":
            self.history.append(args[0])
            self._history_samples += block_samples(args[0])
            while (self.snapshot is None and self.history
                   and self._history_samples - block_samples(self.history[0]) >= self.preroll_samples):
                self._history_samples -= block_samples(self.history.popleft())
        return method, out

    def _recover(self) -> None:
        """Replace the dead actor, start and restore it, re-send the calls in flight."""
        while True:
            self.recoveries += 1
            if self.recoveries > self.max_recoveries:
                raise StageActorFailedError(f"the {self.name} actor died {self.recoveries} times in one job "
                                            "(out of memory? see the Ray logs); giving up")
            try:
                ray.kill(self.actor, no_restart=True)
            except Exception:
                pass
            self.actor = self.take_actor()
            try:
                ray.get(self.actor.start.remote(self.spec))
                if self.snapshot is not None:
                    ray.get(self.actor.restore.remote(self.snapshot))
                if self.history:
                    ray.get(self.actor.prime.remote(list(self.history)))
                break
            except RayActorError:
                continue  # the replacement died too
        pending = [(m, a) for m, a, _ in self.inflight if m != "start"]
        self.inflight.clear()
        for method, args in pending:
            self._send(method, args)

    def close(self) -> None:
        """Hand the actor back (``release``); calls still queued finish unread, and the next
        job's ``start`` (queued behind them) resets the stage."""
        self.release(self.actor)
