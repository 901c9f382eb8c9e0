"""The job graph on Ray: shared separator and stage actor pools, one coordinator per job.

:class:`RayPipeline` (running in the gateway process) is the graph of
:mod:`engine.graph` with its lanes placed on Ray actors
(:mod:`resonate_stream.ray_lanes`):

* windows from the planner go to the :class:`SeparatorPool` with at most
  ``inflight_per_actor`` windows per actor in flight (back-pressure); they
  come back in any order and the stitcher reorders them;
* stitched stems are re-blocked to the same 1 s blocks as in-process and sent
  to one :class:`~actors.stateful.StageActor` per stem; results go to the
  mix/master one.  Calls are pipelined: window k+1 separates while block k is
  enhanced.  The stage actors come warm from a :class:`StageActorPool` (a new
  process per actor and job otherwise costs seconds before the first audio).

Faults: separator actors are stateless; Ray restarts them and retries their
windows, so the output is unchanged.  A stateful actor that dies is replaced
by its :class:`~resonate_stream.ray_lanes.StatefulLane`, which restores the
last state snapshot and replays the input since (output unchanged too), or -
for stages that cannot be pickled - re-primes it with the last ``preroll_s``
seconds of input (output converges back; bound measured in
``tests/test_ray_faults.py``).

Each pipeline keeps counters (:meth:`RayPipeline.stats`): windows per actor,
the peak number of windows in flight, actor recoveries.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable

import numpy as np
import ray

from actors.placement import actor_options, cluster_devices
from actors.separator import SeparatorActor, variant_of
from actors.stateful import StageActor
from engine.audio import SAMPLE_RATE, STEM_NAMES
from engine.config import PipelineConfig
from engine.errors import ModelUnavailableError, ResonateError, SettingsError
from engine.graph import PIPELINE_BLOCK, GraphPipeline, JobGraph, LaneSpec, lanes_per_job
from engine.separation.streaming import StreamingSeparation

from .ray_lanes import PoolWindows, StatefulLane
from .settings import SeparationSettings


class RayClusterUnavailableError(ResonateError):
    """The Ray cluster to join cannot be reached, or actors cannot be placed on it."""

    code = "ray_unavailable"


class SeparatorPool:
    """``n_actors`` separator actors of one model (shared across jobs).

    CPU actors reserve as many Ray CPUs as the torch threads they run
    (``threads``, default: the cluster's CPUs shared out), so Ray never puts
    more work on a node than it has cores; actors are spread over the nodes.
    ``windows_per_actor`` counts the windows sent to each actor (all jobs).

    The actors load the model named by ``separation`` (separator, model,
    weights folder, device: :func:`pool_key`); jobs whose window settings
    differ (``quality``, ``segment_s``, ``overlap``, ``shifts``) run on the
    same actors with their own :meth:`geometry_for` / ``submit(window,
    variant)``, so another preset never needs another pool.

    With ``n_actors=None`` the pool takes what the cluster has free (at least
    one actor); when not even one actor fits, or an explicit ``n_actors`` does
    not, it fails at once with :class:`RayClusterUnavailableError` instead of
    waiting for resources that other pools hold.
    """

    def __init__(self, separation: SeparationSettings, n_actors: int | None = None, threads: int | None = None,
                 start_timeout_s: float = 300.0, warm_up: bool = True):
        device = separation.device if separation.device != "auto" else cluster_devices()
        params = {**separation.__dict__, "device": device}
        auto_size = n_actors is None
        if n_actors is None:
            n_actors = default_pool_size(device)
        if threads is None and device == "cpu":
            threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // max(n_actors, 1))
        cpus = min(threads, _largest_node_cpus()) if device == "cpu" else 1.0
        n_actors, fitted = _fit(device, n_actors, cpus, auto_size, separation)
        if fitted < cpus:  # the free CPUs hold one actor with fewer threads
            cpus, threads = fitted, max(1, int(fitted))
        opts = {**actor_options(device, num_cpus=cpus), "max_restarts": -1, "max_task_retries": -1,
                "scheduling_strategy": "SPREAD"}
        self.device = device
        self.threads = threads
        self.variant = variant_of(params)
        self.actors = [SeparatorActor.options(**opts).remote(params, threads) for _ in range(n_actors)]
        try:
            geoms = ray.get([a.geometry.remote() for a in self.actors], timeout=start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            self.shutdown()
            what = f"{cpus:g} CPU(s)" if device == "cpu" else f"one {device} device"
            raise RayClusterUnavailableError(
                f"{n_actors} separator actor(s) for model {separation.model!r} (each needs {what}) did not "
                f"start within {start_timeout_s:g} s: the cluster is busy or too small. Start the server "
                "with fewer workers (--workers) or add machines to the cluster") from None
        kinds = {(g["description"].get("separator"), g["description"].get("model")) for g in geoms}
        if len(kinds) > 1:
            self.shutdown()
            raise ModelUnavailableError(f"separator actors disagree on the model they loaded: {sorted(kinds)}; "
                                        "put the same weights on every node (see README 'Model weights')")
        self.geometry = geoms[0]
        self._geometries = {self.variant: self.geometry}
        if warm_up:  # one silent window each: JIT compiles and allocations before the first job
            planner = self.geometry["geometry"].planner()
            (window, *_) = planner.push(np.zeros((2, planner.latency_samples), np.float32))
            ray.get([a.separate.remote(window) for a in self.actors])
        self._lock = threading.Lock()  # jobs may share the pool from several threads
        self.inflight = [0] * len(self.actors)
        self.windows_per_actor = [0] * len(self.actors)

    def geometry_for(self, separation: SeparationSettings | None) -> tuple[tuple, dict]:
        """``(variant, geometry)`` of ``separation``'s window settings on this pool's model
        (``separation`` None: the pool's own).  Raises ``SettingsError`` for a bad combination."""
        if separation is None:
            return self.variant, self.geometry
        variant = variant_of(separation.__dict__)
        g = self._geometries.get(variant)
        if g is None:  # asked of one actor (queued behind its windows); cached for every later job
            try:
                g = ray.get(self.actors[0].geometry.remote(variant))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.as_instanceof_cause()
                if isinstance(cause, ResonateError):
                    raise cause from None
                raise
            self._geometries[variant] = g
        return variant, g

    def submit(self, window, variant: tuple | None = None) -> tuple[ray.ObjectRef, int]:
        """Send ``window`` to the least-loaded actor (window settings ``variant``: see
        :meth:`geometry_for`; None: the pool's own); returns (result ref, actor index)."""
        with self._lock:
            i = int(np.argmin(self.inflight))
            self.inflight[i] += 1
            self.windows_per_actor[i] += 1
        if variant is None or variant == self.variant:
            return self.actors[i].separate.remote(window), i
        return self.actors[i].separate.remote(window, variant), i

    def done(self, i: int) -> None:
        with self._lock:
            self.inflight[i] -= 1

    def node_ids(self) -> list[str]:
        """Ray node id of each actor (index order)."""
        return ray.get([a.node_id.remote() for a in self.actors])

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)


def pool_key(separation: SeparationSettings) -> tuple:
    """What makes separator actors different: the model they load and where (not the window settings)."""
    return (separation.separator, separation.model, separation.model_repo, separation.device)


#: seconds a new separator pool waits for free resources before it gives up (not minutes: other jobs
#: wait behind it, and actors that cannot fit now will not fit later either)
FIT_WAIT_S = 5.0


def _fit(device: str, n_actors: int, cpus: float, auto_size: bool, separation: SeparationSettings):
    """``(n_actors, cpus per actor)`` that the cluster's free resources hold now; raises
    :class:`RayClusterUnavailableError` at once when not even one actor (or, with an explicit
    count, not all of them) fits."""
    deadline = time.monotonic() + FIT_WAIT_S
    while True:  # resources of actors killed a moment ago come back within a second or two
        free = ray.available_resources()
        need = (1.0 if auto_size else float(cpus) * n_actors) if device == "cpu" else float(1 if auto_size else n_actors)
        have = float(free.get({"cpu": "CPU", "cuda": "GPU"}.get(device, device), 0.0))
        if have >= need or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    if device == "cpu":
        if have < cpus and have >= 1 and auto_size:
            cpus = float(int(have))  # fewer threads rather than a wait
        fit = int(have // cpus) if cpus > 0 else n_actors
        unit = f"{cpus:g} CPU(s)"
    else:
        fit = int(have)
        unit = f"one {device} device"
    if auto_size:
        n_actors = min(n_actors, fit)
    if fit < max(1, n_actors if not auto_size else 1):
        raise RayClusterUnavailableError(
            f"no room on the cluster for separator model {separation.model!r} "
            f"({separation.separator}, {separation.device}): each actor needs {unit}, {have:g} are free "
            "(the other models' actors hold the rest). Use the model the server already runs, start the "
            "server with fewer --workers, or add machines to the cluster")
    return max(1, n_actors), cpus


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
    """Idle in-order lane actors kept warm between jobs (shared, like the separator pool).

    Starting an actor costs a new worker process and the engine's imports
    (seconds on a small machine, five times per job); a job takes its actors
    from here and gives them back when it ends.  Holds ``jobs`` sets (one
    actor per lane of a job, by lane kind: :func:`engine.graph.lanes_per_job`;
    the ``input`` lane, the de-clipper, when ``warm_cfg`` has it on) ready; more are created on demand when jobs run at once, and given back
    beyond ``keep_jobs`` sets (default ``jobs``) they are killed, so a burst
    of concurrent jobs does not leave its worker processes (hundreds of MB
    each) behind.  :attr:`live` counts the actors alive (idle + in use).
    With ``warm_cfg`` each actor first runs a second of quiet noise through
    its lane (JIT caches, first-call allocations).
    """

    def __init__(self, jobs: int = 1, warm_cfg: PipelineConfig | None = None, keep_jobs: int | None = None):
        self._lock = threading.Lock()
        per_job = lanes_per_job(cfg=warm_cfg)
        self._keep_jobs = jobs if keep_jobs is None else keep_jobs
        self._keep = {kind: n * self._keep_jobs for kind, n in per_job.items()}
        self._live = 0
        self._idle: dict[str, list] = {kind: [self._new() for _ in range(n * jobs)] for kind, n in per_job.items()}
        calls = [a.node_id.remote() for actors in self._idle.values() for a in actors]  # up and imported
        if warm_cfg is not None:
            noise = (np.random.default_rng(0).standard_normal((2, PIPELINE_BLOCK)) * 0.01).astype(np.float32)
            stem_specs, mix_spec = JobGraph(warm_cfg).lane_specs()
            for spec, actor in zip(list(stem_specs.values()) * jobs, self._idle["stem"]):
                actor.start.remote(spec)
                calls += [actor.process.remote(noise), actor.flush.remote()]
            for actor in self._idle["mix"]:
                actor.start.remote(mix_spec)
                calls += [actor.process.remote(dict.fromkeys(STEM_NAMES, noise)), actor.flush.remote()]
            input_spec = JobGraph(warm_cfg).input_spec()
            for actor in self._idle.get("input", []):
                actor.start.remote(input_spec)
                calls += [actor.process.remote(noise), actor.flush.remote()]
        ray.get(calls)

    @staticmethod
    def new():
        """A new idle lane actor; in-order stages are cheap: no CPU reserved."""
        return StageActor.options(num_cpus=0).remote()

    def _new(self):
        actor = self.new()
        with self._lock:
            self._live += 1
        return actor

    def take(self, kind: str):
        """An idle actor for a lane of ``kind`` (a new one when none is idle)."""
        with self._lock:
            if self._idle.get(kind):
                return self._idle[kind].pop()
        return self._new()

    def give_back(self, kind: str, actor) -> None:
        """Back to the idle actors of ``kind`` (killed instead when ``keep_jobs`` sets are idle).
        After a failed or cancelled job it may still have calls queued: they finish unread, and
        the next job's ``start`` resets it.  A dead actor given back is replaced by the next
        job's lane on its first call."""
        with self._lock:
            idle = self._idle.setdefault(kind, [])
            # a kind not warmed up front (the input lane of a job that de-clips) keeps one per job set
            if len(idle) < self._keep.get(kind, self._keep_jobs):
                idle.append(actor)
                return
            self._live -= 1
        _kill(actor)

    @property
    def idle(self) -> dict[str, int]:
        """Idle actors per kind."""
        with self._lock:
            return {kind: len(actors) for kind, actors in self._idle.items()}

    @property
    def live(self) -> int:
        """Actors of this pool alive now: idle ones and those jobs hold."""
        with self._lock:
            return self._live

    def shutdown(self) -> None:
        with self._lock:
            for actors in self._idle.values():
                for a in actors:
                    ray.kill(a)
                self._live -= len(actors)
                actors.clear()


class RayPipeline(GraphPipeline):
    """The job graph (:class:`engine.graph.GraphPipeline`) with its lanes on Ray actors.

    Separation windows run on ``pool`` with ``inflight_per_actor`` windows per
    actor in flight (:class:`PoolWindows`); each in-order lane runs in one
    actor from ``stage_actors`` (warm) or a new one (:class:`StatefulLane`,
    snapshots every ``snapshot_every_s`` seconds of input, else a
    ``preroll_s`` pre-roll after a crash).  Output identical to
    :class:`engine.graph.LocalPipeline`.  ``separation``: the job's separation settings
    when its window settings differ from the pool's (same model: :func:`pool_key`).
    """

    def __init__(self, pool: SeparatorPool, cfg: PipelineConfig, *, inflight_per_actor: int = 2,
                 preroll_s: float = 5.0, snapshot_every_s: float | None = 5.0,
                 stage_actors: StageActorPool | None = None, stems=STEM_NAMES, polish_pool=None,
                 separation: SeparationSettings | None = None, generator_pool=None):
        variant, g = pool.geometry_for(separation)
        self.pool = pool
        self.pool_windows = PoolWindows(pool, inflight_per_actor * len(pool.actors), variant, g["geometry"])
        snapshot_every = max(1, round(snapshot_every_s * SAMPLE_RATE / PIPELINE_BLOCK)) if snapshot_every_s else None

        def place_lane(spec: LaneSpec) -> StatefulLane:
            if stage_actors is None:
                take, release = lambda: StageActorPool.new(), _kill
            else:
                take, release = lambda: stage_actors.take(spec.kind), lambda a: stage_actors.give_back(spec.kind, a)
            return StatefulLane(spec, take, release, int(preroll_s * SAMPLE_RATE), snapshot_every=snapshot_every)

        graph = JobGraph(cfg, stems)
        super().__init__(graph, StreamingSeparation(windows=self.pool_windows), place_lane,
                         g["description"], notes=g["notes"], runner={"actors": len(pool.actors), "runner": "ray"},
                         polish=_ray_polish(graph, polish_pool, inflight_per_actor),
                         generation=_ray_generation(graph, generator_pool, inflight_per_actor))

    def stats(self) -> dict:
        """Counters of this job: windows per separator actor, peak windows in flight (bound
        ``max_windows_in_flight``), recoveries of each stateful actor."""
        w = self.pool_windows
        return {"windows_per_actor": list(w.windows_per_actor),
                "peak_windows_in_flight": w.peak_in_flight,
                "max_windows_in_flight": w.max_in_flight,
                "recoveries": {k: lane.recoveries for k, lane in self.lanes.items()}}


def _ray_polish(graph: JobGraph, polish_pool, inflight_per_actor: int):
    """The job's polish lane over ``polish_pool`` (a :class:`~resonate_stream.polish_pool.PolishPool`
    started with the job's polish settings), or None when polish is off."""
    p = graph.polish_config
    if p is None:
        return None
    if polish_pool is None:
        raise SettingsError("polish.mode=mbd on Ray needs a polish actor pool (resonate_stream.polish_pool."
                            "PolishPool) started with the same polish settings")
    from engine.polish.streaming import StreamingPolish

    windows = PoolWindows(polish_pool, inflight_per_actor * len(polish_pool.actors))
    return StreamingPolish(windows, polish_pool.signals, p.blend, polish_pool.description)


def _kill(actor) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:
        pass


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
    # Ray 2.60 turns token authentication on for a new local cluster (kept) and
    # warns about it at every start unless RAY_AUTH_MODE was set before ray was
    # imported: that notice is for Ray's users, not ours.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
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


def _ray_generation(graph: JobGraph, generator_pool, inflight_per_actor: int):
    """The job's generation lane over ``generator_pool`` (a :class:`~resonate_stream.generator_pool.GeneratorPool`
    started with the job's generate settings), or None when the job does not generate."""
    g = graph.generate_config
    if g is None:
        return None
    if generator_pool is None:
        raise SettingsError("generate.mode=generate|both on Ray needs a generator actor pool (resonate_stream."
                            "generator_pool.GeneratorPool) started with the same generate settings")
    from engine.generate.streaming import StreamingGeneration

    windows = PoolWindows(generator_pool, inflight_per_actor * len(generator_pool.actors))
    return StreamingGeneration(windows, generator_pool.description)
