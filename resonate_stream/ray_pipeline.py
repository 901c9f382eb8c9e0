"""The job graph on Ray: a shared separator pool, per-job stem and mix actors.

The coordinator (this module, running in the gateway process) does what
:class:`engine.pipeline.LocalPipeline` does, with the model and in-order
stages living in actors:

* windows from the :class:`WindowPlanner` go to the separator pool with at
  most ``inflight_per_actor`` windows per actor in flight (back-pressure); they
  come back in any order and the :class:`OverlapAddStitcher` reorders them;
* stitched stems are re-blocked to the same 1 s blocks as in-process and sent
  to one :class:`StemActor` per stem; results go to the :class:`MixMasterActor`.
  Calls are pipelined: window k+1 separates while block k is enhanced.

Faults: separator actors are stateless; Ray restarts them and retries their
windows, so the output is unchanged.  A stateful actor that dies is replaced
and re-primed with the last ``preroll_s`` seconds of its input, then the blocks
in flight are re-sent; its output converges back to the uninterrupted run's
within a few seconds (see ``tests/test_ray_faults.py`` for the measured bound).

Each pipeline keeps counters (:meth:`RayPipeline.stats`): windows per actor,
the peak number of windows in flight, actor recoveries.
"""
from __future__ import annotations

import collections
import os
import socket
import threading
from typing import Callable

import numpy as np
import ray
from ray.exceptions import RayActorError, RayTaskError

from actors.placement import actor_options, cluster_devices
from actors.separator import SeparatorActor
from actors.stateful import MixMasterActor, StemActor
from engine.audio import SAMPLE_RATE, STEM_NAMES
from engine.blocks import StemReblocker
from engine.errors import ResonateError, SettingsError
from engine.blocks import StemFifo
from engine.pipeline import PIPELINE_BLOCK, ProcessedBlock, StageConfigs, common_stem_latency
from engine.separation.base import to_stem_dict
from engine.separation.quality import SeparationQualityMeter

from .settings import SeparationSettings


class RayClusterUnavailableError(ResonateError):
    """The Ray cluster to join cannot be reached, or actors cannot be placed on it."""

    code = "ray_unavailable"


class SeparatorPool:
    """``n_actors`` separator actors with the same settings (shared across jobs).

    CPU actors reserve as many Ray CPUs as the torch threads they run
    (``threads``, default: the cluster's CPUs shared out), so Ray never puts
    more work on a node than it has cores; actors are spread over the nodes.
    ``windows_per_actor`` counts the windows sent to each actor (all jobs).
    """

    def __init__(self, separation: SeparationSettings, n_actors: int | None = None, threads: int | None = None,
                 start_timeout_s: float = 300.0):
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
            raise RuntimeError(f"separator actors disagree on the model they loaded: {sorted(kinds)}; "
                               "put the same weights on every node (see README 'Model weights')")
        self.geometry = geoms[0]
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
                raise RuntimeError(f"{self.name} actor died {self.recoveries} times; giving up")
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

    def __init__(self, pool: SeparatorPool, cfg: StageConfigs, *, inflight_per_actor: int = 2,
                 preroll_s: float = 5.0, snapshot_every_s: float | None = 5.0, stems=STEM_NAMES):
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
        opts = {"num_cpus": 0}
        self.stem_lanes = {
            s: StatefulLane(lambda s=s: StemActor.options(**opts).remote(s, cfg, latency), name=f"stem {s}", **lane)
            for s in stems}
        self.mix_lane = StatefulLane(lambda: MixMasterActor.options(**opts).remote(cfg), name="mix/master", **lane)
        self.stems_in_flight: collections.deque = collections.deque()  # blocks sent to the stem lanes
        self._mixed: collections.deque = collections.deque()  # enhanced stems sent to the mix lane
        self.separated_s = 0.0
        self.enhanced_s = 0.0

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

    def _drain(self, wait: bool) -> list[ProcessedBlock]:
        out = []
        while self.stems_in_flight:
            if not wait and not all(l.head_ready() for l in self.stem_lanes.values()):
                break
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

    def finish(self) -> list[ProcessedBlock]:
        for w in self.planner.finish():
            self._submit_window(w)
        while self.windows:
            self._collect_windows(wait=True)
        self._route(self.stitcher.finish(self._consumed))
        for block in self.reblocker.finish():
            self._submit_stems(block)
        out = self._drain(wait=True)
        for lane in self.stem_lanes.values():
            lane.submit("flush")
        tails = {s: lane.pop() for s, lane in self.stem_lanes.items()}
        self.mix_lane.submit("process", *[tails[s] for s in STEM_NAMES])
        mix, preview = self.mix_lane.pop()
        out.append(ProcessedBlock(mix, preview, tails))
        self.mix_lane.submit("flush")
        mix, preview = self.mix_lane.pop()
        out.append(ProcessedBlock(mix, preview, {}))
        self._gains = ray.get(self.mix_lane.actor.stem_gains_db.remote())
        return out

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
        for lane in [*self.stem_lanes.values(), self.mix_lane]:
            lane.close()


def ray_pipeline_factory(pool: SeparatorPool, **options) -> Callable:
    """A ``pipeline_factory`` for :func:`resonate_stream.runner.run_job` that runs on ``pool``."""
    def factory(settings, cfg: StageConfigs) -> RayPipeline:
        return RayPipeline(pool, cfg, **options)

    return factory


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
                 log_to_driver=False)
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
