"""JASCO generation on Ray: a pool of :class:`~actors.generator.GeneratorActor` s, shared across jobs.

The generation lane's windows (:class:`engine.generate.streaming.StreamingGeneration`)
go to the pool through the same window runner as separation and polish
(:class:`~resonate_stream.ray_lanes.PoolWindows`).  Actors ask Ray for a GPU,
the ``mps`` resource or CPUs (:func:`actors.placement.actor_options`); a pool
that cannot be placed fails fast with what the cluster offers.
"""
from __future__ import annotations

import threading

import numpy as np
import ray

from actors.generator import GeneratorActor
from actors.placement import actor_options, cluster_devices
from engine.errors import DeviceUnavailableError, ModelUnavailableError
from engine.generate.config import GenerateConfig


class GeneratorPool:
    """``n_actors`` generator actors with one :class:`GenerateConfig` (JASCO loaded in each).

    ``n_actors`` defaults to the cluster's GPUs / ``mps`` resources, else 1 CPU actor.
    """

    def __init__(self, cfg: GenerateConfig, n_actors: int | None = None, threads: int | None = None,
                 start_timeout_s: float = 300.0):
        device = cfg.device if cfg.device != "auto" else cluster_devices()
        res = ray.cluster_resources()
        if n_actors is None:
            n_actors = max(1, int(res.get({"cuda": "GPU", "mps": "mps"}.get(device, "none"), 1)))
        opts = {**actor_options(device, num_cpus=float(threads or 1)), "max_restarts": -1, "max_task_retries": -1,
                "scheduling_strategy": "SPREAD"}
        self.device = device
        self.actors = [GeneratorActor.options(**opts).remote(cfg.to_dict(), device, threads) for _ in range(n_actors)]
        try:
            geoms = ray.get([a.geometry.remote() for a in self.actors], timeout=start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            self.shutdown()
            raise DeviceUnavailableError(
                f"{n_actors} JASCO generator actor(s) ({opts}) could not be placed within {start_timeout_s:g} s; the "
                f"cluster offers {res}: set generate.device to one it has, or generate.mode=restore") from None
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
        with self._lock:
            i = int(np.argmin(self.inflight))
            self.inflight[i] += 1
        return self.actors[i].generate.remote(window), i

    def done(self, i: int) -> None:
        with self._lock:
            self.inflight[i] -= 1

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)
