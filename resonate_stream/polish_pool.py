"""MBD polish on Ray: a pool of :class:`~actors.polish.PolishActor` s, shared across jobs.

The polish lane's windows (:class:`engine.polish.streaming.StreamingPolish`)
go to the pool through the same window runner as separation
(:class:`~resonate_stream.ray_lanes.PoolWindows`: bounded windows in flight,
any order back).  Actors ask Ray for a GPU, the ``mps`` resource or CPUs
(:func:`actors.placement.actor_options`); a pool that cannot be placed fails
fast with what the cluster offers, instead of leaving jobs waiting for a
device that will never come.
"""
from __future__ import annotations

import threading

import numpy as np
import ray

from actors.placement import actor_options, cluster_devices
from actors.polish import PolishActor
from engine.errors import DeviceUnavailableError, ModelUnavailableError
from engine.polish.config import PolishConfig
from engine.polish.factory import polish_signals


class PolishPool:
    """``n_actors`` polish actors with one :class:`PolishConfig` (MBD loaded in each).

    ``n_actors`` defaults to the cluster's GPUs / ``mps`` resources, else 1 CPU
    actor (MBD at real size needs about 15 GB of memory per actor).
    """

    def __init__(self, cfg: PolishConfig, stems=None, n_actors: int | None = None, threads: int | None = None,
                 start_timeout_s: float = 300.0):
        device = cfg.device if cfg.device != "auto" else cluster_devices()
        res = ray.cluster_resources()
        if n_actors is None:
            n_actors = max(1, int(res.get({"cuda": "GPU", "mps": "mps"}.get(device, "none"), 1)))
        cpus = float(threads or 1)
        opts = {**actor_options(device, num_cpus=cpus), "max_restarts": -1, "max_task_retries": -1,
                "scheduling_strategy": "SPREAD"}
        self.device = device
        self.signals = polish_signals(cfg) if stems is None else polish_signals(cfg, stems)
        self.actors = [PolishActor.options(**opts).remote(cfg.to_dict(), self.signals, device, threads)
                       for _ in range(n_actors)]
        try:
            geoms = ray.get([a.geometry.remote() for a in self.actors], timeout=start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            self.shutdown()
            raise DeviceUnavailableError(
                f"{n_actors} MBD polish actor(s) ({opts}) could not be placed within {start_timeout_s:g} s; the "
                f"cluster offers {res}: set polish.device to one it has, or polish.mode=off") from None
        except ray.exceptions.RayActorError as e:  # the model did not load (model_unavailable inside)
            self.shutdown()
            cause = getattr(e, "cause", None) or e
            raise ModelUnavailableError(str(getattr(cause, "message", cause)).splitlines()[-1]) from None
        self.geometry = geoms[0]
        self._lock = threading.Lock()
        self.inflight = [0] * len(self.actors)

    @property
    def description(self) -> dict:
        return {**self.geometry["description"], "actors": len(self.actors)}

    def submit(self, window) -> tuple[ray.ObjectRef, int]:
        """Send ``window`` to the least-loaded actor; returns (result ref, actor index)."""
        with self._lock:
            i = int(np.argmin(self.inflight))
            self.inflight[i] += 1
        return self.actors[i].polish.remote(window), i

    def done(self, i: int) -> None:
        with self._lock:
            self.inflight[i] -= 1

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)
