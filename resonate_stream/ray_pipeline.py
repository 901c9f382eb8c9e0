"""The job graph on Ray: shared separator and stage actor pools, one coordinator per job.

The coordinator (:class:`RayPipeline`, running in the gateway process) does
what :class:`engine.pipeline.LocalPipeline` does, with the model and in-order
stages living in actors:

* windows from the :class:`WindowPlanner` go to the :class:`SeparatorPool`
  with at most ``inflight_per_actor`` windows per actor in flight
  (back-pressure); they come back in any order and the
  :class:`OverlapAddStitcher` reorders them;
* stitched stems are re-blocked to the same 1 s blocks as in-process and sent
  to one :class:`StemActor` per stem; results go to the :class:`MixMasterActor`.
  Calls are pipelined: window k+1 separates while block k is enhanced.  The
  stem and mix/master actors come warm from a :class:`StageActorPool` (a new
  process per actor and job otherwise costs seconds before the first audio).

Faults: separator actors are stateless; Ray restarts them and retries their
windows, so the output is unchanged.  A stateful actor that dies is replaced
by its :class:`StatefulLane`, which restores the last state snapshot and
replays the input since (output unchanged too), or - for stages that cannot
be pickled - re-primes it with the last ``preroll_s`` seconds of input
(output converges back; bound measured in ``tests/test_ray_faults.py``).

Each pipeline keeps counters (:meth:`RayPipeline.stats`): windows per actor,
the peak number of windows in flight, actor recoveries.
"""
from __future__ import annotations

import collections
import os
import socket
import threading
from typing import Callable, Iterator

import numpy as np
import ray
from ray.exceptions import RayActorError, RayTaskError

from actors.placement import actor_options, cluster_devices
from actors.separator import SeparatorActor
from actors.stateful import MixMasterActor, StemActor
from engine.audio import SAMPLE_RATE, STEM_NAMES
from engine.blocks import StemFifo, StemReblocker
from engine.config import PipelineConfig
from engine.errors import ModelUnavailableError, ResonateError, SettingsError
from engine.pipeline import PIPELINE_BLOCK, ProcessedBlock, common_stem_latency
from engine.separation.base import to_stem_dict
from engine.separation.quality import SeparationQualityMeter

from .settings import SeparationSettings


class RayClusterUnavailableError(ResonateError):
    """The Ray cluster to join cannot be reached, or actors cannot be placed on it."""

    code = "ray_unavailable"


class StageActorFailedError(ResonateError):
    """An in-order stage actor kept dying although it was replaced each time."""

    code = "stage_actor_failed"


class SeparatorPool:
    """``n_actors`` separator actors with the same settings (shared across jobs).

    CPU actors reserve as many Ray CPUs as the torch threads they run
    (``threads``, default: the cluster's CPUs shared out), so Ray never puts
    more work on a node than it has cores; actors are spread over the nodes.
    ``windows_per_actor`` counts the windows sent to each actor (all jobs).
    """

    def __init__(self, separation: SeparationSettings, n_actors: int | None = None, threads: int | None = None,
                 start_timeout_s: float = 300.0, warm_up: bool = True):
        device = separation.device if separation.device != "auto" else cluster_devices()
        params = {**separation.__dict__, "device": device}
        if n_actors is None:
            n_actors = default_pool_size(device)
        if threads is None and device == "cpu":
            threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // max(n_actors, 1))
        cpus = min(threads, _largest_node_cpus()) if device == "cpu" else 1.0
        opts = {**actor_options(device, num_cpus=cpus), "max_restarts": -1, "max_task_retries": -1,
                "scheduling_strategy": "SPREAD"}
        self.device = device
        self.threads = threads
        self.actors = [SeparatorActor.options(**opts).remote(params, threads) for _ in range(n_actors)]
        try:
            geoms = ray.get([a.geometry.remote() for a in self.actors], timeout=start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            self.shutdown()
            raise RayClusterUnavailableError(
                f"{n_actors} separator actor(s) ({opts}) did not start within {start_timeout_s:g} s; the "
                f"cluster offers {ray.cluster_resources()}: use fewer actors or add machines") from None
        kinds = {(g["description"].get("separator"), g["description"].get("model")) for g in geoms}
        if len(kinds) > 1:
            self.shutdown()
            raise ModelUnavailableError(f"separator actors disagree on the model they loaded: {sorted(kinds)}; "
                                        "put the same weights on every node (see README 'Model weights')")
        self.geometry = geoms[0]
        if warm_up:  # one silent window each: JIT compiles and allocations before the first job
            planner = self.geometry["geometry"].planner()
            (window, *_) = planner.push(np.zeros((2, planner.latency_samples), np.float32))
            ray.get([a.separate.remote(window) for a in self.actors])
        self._lock = threading.Lock()  # jobs may share the pool from several threads
        self.inflight = [0] * len(self.actors)
        self.windows_per_actor = [0] * len(self.actors)

    def submit(self, window) -> tuple[ray.ObjectRef, int]:
        """Send ``window`` to the least-loaded actor; returns (result ref, actor index)."""
        with self._lock:
            i = int(np.argmin(self.inflight))
            self.inflight[i] += 1
            self.windows_per_actor[i] += 1
        return self.actors[i].separate.remote(window), i

    def done(self, i: int) -> None:
        with self._lock:
            self.inflight[i] -= 1

    def node_ids(self) -> list[str]:
        """Ray node id of each actor (index order)."""
        return ray.get([a.node_id.remote() for a in self.actors])

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)


def _largest_node_cpus() -> float:
    cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    return max(1.0, max(cpus, default=1.0))


def default_pool_size(device: str) -> int:
    res = ray.cluster_resources()
    if device == "cuda":
        return max(1, int(res.get("GPU", 1)))
    if device == "mps":
        return max(1, int(res.get("mps", 1)))
    return max(1, min(8, int(res.get("CPU", 2)) - 1))


class StageActorPool:
    """Idle stem and mix/master actors kept warm between jobs (shared, like the separator pool).

    Starting an actor costs a new worker process and the engine's imports
    (seconds on a small machine, five times per job); a job takes its actors
    from here and gives them back when it ends.  Holds ``jobs`` sets (4 stem
    + 1 mix/master actors) ready; more are created on demand.  With
    ``warm_cfg`` each actor first runs a second of quiet noise through those
    stages (JIT caches, first-call allocations).
    """

    KINDS = {"stem": StemActor, "mix": MixMasterActor}

    def __init__(self, jobs: int = 1, warm_cfg: PipelineConfig | None = None):
        self._lock = threading.Lock()
        self._idle: dict[str, list] = {kind: [] for kind in self.KINDS}
        for _ in range(jobs):
            for kind, n in (("stem", len(STEM_NAMES)), ("mix", 1)):
                self._idle[kind].extend(self.new(kind) for _ in range(n))
        calls = [a.node_id.remote() for actors in self._idle.values() for a in actors]  # up and imported
        if warm_cfg is not None:
            noise = (np.random.default_rng(0).standard_normal((2, PIPELINE_BLOCK)) * 0.01).astype(np.float32)
            latency = common_stem_latency(warm_cfg)
            for stem, actor in zip(STEM_NAMES * jobs, self._idle["stem"]):
                actor.start.remote(stem, warm_cfg, latency)
                calls += [actor.process.remote(noise), actor.flush.remote()]
            for actor in self._idle["mix"]:
                actor.start.remote(warm_cfg)
                calls += [actor.process.remote(noise, noise, noise, noise), actor.flush.remote()]
        ray.get(calls)

    @classmethod
    def new(cls, kind: str):
        """A new idle actor of ``kind`` (``stem`` or ``mix``); in-order stages are cheap: no CPU reserved."""
        return cls.KINDS[kind].options(num_cpus=0).remote()

    def take(self, kind: str):
        with self._lock:
            if self._idle[kind]:
                return self._idle[kind].pop()
        return self.new(kind)

    def give_back(self, kind: str, actor) -> None:
        with self._lock:
            self._idle[kind].append(actor)

    @property
    def idle(self) -> dict[str, int]:
        """Idle actors per kind."""
        with self._lock:
            return {kind: len(actors) for kind, actors in self._idle.items()}

    def shutdown(self) -> None:
        with self._lock:
            for actors in self._idle.values():
                for a in actors:
                    ray.kill(a)
                actors.clear()


class StatefulLane:
    """One stateful actor fed strictly in order; replaced and brought back to its state if it dies.

    Every ``snapshot_every`` ``process`` calls the lane queues a ``snapshot``
    call behind them (in order, so it captures the state after exactly those
    inputs) and keeps the pickled state here, in the coordinator, with the
    inputs answered since.  A replacement actor restores the snapshot and
    replays those inputs, then the calls in flight are re-sent: its output is
    identical to an uninterrupted run.  If the stages cannot be pickled
    (``snapshot_every=None`` or a failed snapshot), the replacement is
    re-primed with the last ``preroll_samples`` of input instead, and its
    output converges back within a few seconds.
    """

    def __init__(self, make_actor: Callable[[], object], preroll_samples: int, name: str, *,
                 snapshot_every: int | None = 5, max_recoveries: int = 3):
        self.make_actor = make_actor
        self.actor = make_actor()
        self.preroll_samples = preroll_samples
        self.name = name
        self.snapshot_every = snapshot_every
        self.snapshot: bytes | None = None  # pickled state after the inputs answered before ``history``
        self.history: collections.deque = collections.deque()  # inputs answered since the snapshot (or pre-roll)
        self._history_samples = 0
        self._since_snapshot = 0  # process calls submitted since the last snapshot call
        self.inflight: collections.deque = collections.deque()  # (method, args, ref)
        self.recoveries = 0
        self.max_recoveries = max_recoveries

    @staticmethod
    def _samples(args) -> int:
        return args[0].shape[1] if args else 0

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
        """Whether the oldest call the pipeline waits for has answered (snapshots are skipped)."""
        while self.inflight:
            ready, _ = ray.wait([self.inflight[0][2]], timeout=0)
            if not ready or self.inflight[0][0] != "snapshot":
                return bool(ready)
            self._take_head()
        return False

    def pop(self):
        """Block for the oldest ``process``/``flush`` result (recovering from a dead actor)."""
        while True:
            method, out = self._take_head()
            if method != "snapshot":
                return out

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
            self.history.append(args)
            self._history_samples += self._samples(args)
            while (self.snapshot is None and self.history
                   and self._history_samples - self._samples(self.history[0]) >= self.preroll_samples):
                self._history_samples -= self._samples(self.history.popleft())
        return method, out

    def _recover(self) -> None:
        """Replace the dead actor, restore its state, re-send the calls in flight."""
        while True:
            self.recoveries += 1
            if self.recoveries > self.max_recoveries:
                raise StageActorFailedError(f"the {self.name} actor died {self.recoveries} times in one job "
                                            "(out of memory? see the Ray logs); giving up")
            try:
                ray.kill(self.actor, no_restart=True)
            except Exception:
                pass
            self.actor = self.make_actor()
            try:
                if self.snapshot is not None:
                    ray.get(self.actor.restore.remote(self.snapshot))
                if self.history:
                    ray.get(self.actor.prime.remote([a if len(a) > 1 else a[0] for a in self.history]))
                break
            except RayActorError:
                continue  # the replacement died too
        pending = list(self.inflight)
        self.inflight.clear()
        for method, args, _ in pending:
            self._send(method, args)

    def kill_for_test(self) -> None:
        """Kill the current actor (fault-injection hook used by tests)."""
        ray.kill(self.actor, no_restart=True)

    def close(self) -> None:
        try:
            ray.kill(self.actor, no_restart=True)
        except Exception:
            pass


class RayPipeline:
    """Same interface as :class:`engine.pipeline.LocalPipeline`: ``feed`` / ``finish``."""

    #: blocks (1 s each) queued on the in-order lanes before ``feed`` waits for them
    MAX_BLOCKS_QUEUED = 4

    def __init__(self, pool: SeparatorPool, cfg: PipelineConfig, *, inflight_per_actor: int = 2,
                 preroll_s: float = 5.0, snapshot_every_s: float | None = 5.0,
                 stage_actors: StageActorPool | None = None, stems=STEM_NAMES):
        g = pool.geometry
        self.pool = pool
        self.description = {**g["description"], "actors": len(pool.actors), "runner": "ray"}
        self.notes = list(g["notes"])
        geometry = g["geometry"]
        self.sources = geometry.sources
        self.planner = geometry.planner()
        self.stitcher = geometry.stitcher()
        self.max_inflight = inflight_per_actor * len(pool.actors)
        self.windows: dict = {}  # ref -> (window, actor index)
        self.windows_per_actor = [0] * len(pool.actors)
        self.peak_windows_in_flight = 0
        self.reblocker = StemReblocker(PIPELINE_BLOCK)
        self.quality = SeparationQualityMeter()
        self._mix_fifo = StemFifo()  # input, popped as the (delayed) stems come out
        self._consumed = 0
        latency = common_stem_latency(cfg, stems)
        lane = {"preroll_samples": int(preroll_s * SAMPLE_RATE),
                "snapshot_every": max(1, round(snapshot_every_s * SAMPLE_RATE / PIPELINE_BLOCK)) if snapshot_every_s
                else None}
        self.stage_actors = stage_actors
        self._starts: list = []  # results of the actors' start() calls, not yet checked
        self.stem_lanes = {s: StatefulLane(lambda s=s: self._stage_actor("stem", s, cfg, latency), name=f"stem {s}",
                                           **lane) for s in stems}
        self.mix_lane = StatefulLane(lambda: self._stage_actor("mix", cfg), name="mix/master", **lane)
        self.stems_in_flight: collections.deque = collections.deque()  # blocks sent to the stem lanes
        self._mixed: collections.deque = collections.deque()  # enhanced stems sent to the mix lane
        self.separated_s = 0.0
        self.enhanced_s = 0.0

    def _stage_actor(self, kind: str, *start_args):
        """A warm actor from ``stage_actors`` (or a new one), started for this job."""
        actor = self.stage_actors.take(kind) if self.stage_actors else StageActorPool.new(kind)
        # runs before any call this job sends (an actor's calls keep their order); checked in _drain
        self._starts.append(actor.start.remote(*start_args))
        return actor

    # -- separation -------------------------------------------------------
    def _submit_window(self, window) -> None:
        while len(self.windows) >= self.max_inflight:
            self._collect_windows(wait=True)
        ref, i = self.pool.submit(window)
        self.windows[ref] = (window, i)
        self.windows_per_actor[i] += 1
        self.peak_windows_in_flight = max(self.peak_windows_in_flight, len(self.windows))

    def _collect_windows(self, wait: bool) -> None:
        if not self.windows:
            return
        refs = list(self.windows)
        ready, _ = ray.wait(refs, num_returns=1 if wait else len(refs), timeout=None if wait else 0)
        for ref in ready:
            window, i = self.windows.pop(ref)
            self.pool.done(i)
            self.stitcher.add(window.seq, window.offset, ray.get(ref))
        self._route(self.stitcher.pop_ready())

    def _route(self, stitched) -> None:
        if stitched is None or stitched.shape[-1] == 0:
            return
        stems = to_stem_dict(self.sources, stitched)
        n = stitched.shape[-1]
        self.quality.update(self._mix_fifo.pop(n)["mix"], stems)
        self.separated_s += n / SAMPLE_RATE
        for block in self.reblocker.push(stems):
            self._submit_stems(block)

    # -- in-order stages --------------------------------------------------
    def _submit_stems(self, block: dict) -> None:
        for s, lane in self.stem_lanes.items():
            lane.submit("process", block[s])
        self.stems_in_flight.append(None)

    def _check_started(self) -> None:
        """Raise a stage's start error here, rather than as a puzzling error of its first block."""
        starts, self._starts = self._starts, []
        try:
            ray.get(starts)
        except RayActorError:
            pass  # died after starting: its lane recovers

    def _drain(self, wait: bool) -> list[ProcessedBlock]:
        out = []
        while self.stems_in_flight:
            if not wait and not all(l.head_ready() for l in self.stem_lanes.values()):
                break
            if self._starts:
                self._check_started()
            self.stems_in_flight.popleft()
            enhanced = {s: lane.pop() for s, lane in self.stem_lanes.items()}
            self.mix_lane.submit("process", *[enhanced[s] for s in STEM_NAMES])
            self.enhanced_s += next(iter(enhanced.values())).shape[1] / SAMPLE_RATE
            self._mixed.append(enhanced)
        while self._mixed and (wait or self.mix_lane.head_ready()):
            mix, preview = self.mix_lane.pop()
            out.append(ProcessedBlock(mix, preview, self._mixed.popleft()))
        return out

    def feed(self, block: np.ndarray) -> list[ProcessedBlock]:
        self._mix_fifo.push({"mix": block})
        self._consumed += block.shape[1]
        for w in self.planner.push(block):
            self._submit_window(w)
        self._collect_windows(wait=False)
        # bound the in-order backlog too: never more than a few blocks queued per lane
        backlog = max(len(self.stems_in_flight), len(self._mixed))
        return self._drain(wait=backlog > self.MAX_BLOCKS_QUEUED)

    def finish(self) -> Iterator[ProcessedBlock]:
        """End of stream: yields the remaining blocks as they become ready.

        A generator, so that the last windows (up to ``max_inflight`` of them,
        or the whole job when the input is short and was fed at once) stream
        out one by one instead of all together when the last one is done.
        """
        for w in self.planner.finish():
            self._submit_window(w)
        while self.windows:
            self._collect_windows(wait=True)
            yield from self._drain(wait=True)
        self._route(self.stitcher.finish(self._consumed))
        for block in self.reblocker.finish():
            self._submit_stems(block)
        yield from self._drain(wait=True)
        for lane in self.stem_lanes.values():
            lane.submit("flush")
        tails = {s: lane.pop() for s, lane in self.stem_lanes.items()}
        self.mix_lane.submit("process", *[tails[s] for s in STEM_NAMES])
        mix, preview = self.mix_lane.pop()
        yield ProcessedBlock(mix, preview, tails)
        self.mix_lane.submit("flush")
        mix, preview = self.mix_lane.pop()
        self._gains = ray.get(self.mix_lane.actor.stem_gains_db.remote())
        yield ProcessedBlock(mix, preview, {})

    def separation_quality(self) -> dict:
        return self.quality.result()

    def stats(self) -> dict:
        """Counters of this job: windows per separator actor, peak windows in flight (bound
        ``max_windows_in_flight``), recoveries of each stateful actor."""
        lanes = {**{f"stem_{s}": lane for s, lane in self.stem_lanes.items()}, "mix": self.mix_lane}
        return {"windows_per_actor": list(self.windows_per_actor),
                "peak_windows_in_flight": self.peak_windows_in_flight,
                "max_windows_in_flight": self.max_inflight,
                "recoveries": {k: lane.recoveries for k, lane in lanes.items()}}

    def stem_gains_db(self) -> dict | None:
        return getattr(self, "_gains", None)

    def close(self) -> None:
        """Give the stage actors back to ``stage_actors`` (or end them).

        After a failed or cancelled job an actor may still have calls queued:
        they finish unread, and the next job's ``start`` (queued behind them)
        resets the stages.  A dead actor given back is replaced by the next
        job's lane on its first call."""
        lanes = [("stem", lane) for lane in self.stem_lanes.values()] + [("mix", self.mix_lane)]
        for kind, lane in lanes:
            if self.stage_actors is not None:
                self.stage_actors.give_back(kind, lane.actor)
            else:
                lane.close()


def ray_pipeline_factory(pool: SeparatorPool, **options) -> Callable:
    """A ``pipeline_factory`` for :func:`resonate_stream.runner.run_job` that runs on ``pool``."""
    def factory(settings, cfg: PipelineConfig) -> RayPipeline:
        return RayPipeline(pool, cfg, **options)

    return factory


#: system config of the embedded local Ray: no per-task events for the (absent) dashboard; Ray's GCS
#: otherwise keeps ~3 KB per task (a 2-hour concert sends ~40 000 tasks: memory that grows with length)
LOCAL_RAY_CONFIG = {"task_events_report_interval_ms": 0}


def init_ray(address: str | None = None, num_cpus: int | None = None, connect_timeout_s: float = 5.0) -> None:
    """Join the cluster at ``address`` (``host:port`` of its head) or start a local Ray instance.

    With no address a new local instance always starts (never a cluster that
    happens to run on this machine, nor ``RAY_ADDRESS``).  An address that
    does not answer within ``connect_timeout_s`` raises
    :class:`RayClusterUnavailableError` (Ray itself would retry for minutes).
    """
    if ray.is_initialized():
        return
    if not address:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False, _system_config=LOCAL_RAY_CONFIG)
        return
    if os.uname().sysname == "Darwin" and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "1":
        raise SettingsError("joining a multi-node Ray cluster from macOS needs RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 "
                            "set on every node (see README 'Scale out')")
    if address != "auto":
        _check_reachable(address, connect_timeout_s)
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except (ConnectionError, ValueError) as e:
        raise RayClusterUnavailableError(f"cannot join the Ray cluster at {address!r}: {e}") from None


def _check_reachable(address: str, timeout_s: float) -> None:
    """Raise :class:`RayClusterUnavailableError` unless ``host:port`` accepts a TCP connection."""
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SettingsError(f"Ray address {address!r} must look like HOST:PORT (the head node's GCS port, "
                            "6379 by default, as printed by `ray start --head`)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise RayClusterUnavailableError(
            f"no Ray cluster answers at {address} ({reason}); start one with `ray start --head` on that "
            "machine, check the address and port, or leave --address out to run Ray locally") from None
