"""A pool of Ray actors that each own one generative model (MBD polish, JASCO generation).

The polish and generation pools differ only in the actor class, its arguments and
the method a window is sent to; placement, the fail-fast start, least-loaded
dispatch and shutdown are here once.  Actors ask Ray for a GPU, the ``mps``
resource or CPUs (:func:`actors.placement.actor_options`); a pool that cannot be
placed fails fast with what the cluster offers instead of leaving jobs waiting
for a device that will never come.
"""
from __future__ import annotations

import threading

import numpy as np
import ray

from actors.placement import actor_options, cluster_devices
from engine.errors import DeviceUnavailableError, ModelUnavailableError


class ModelActorPool:
    """``n_actors`` actors of ``actor_cls`` (``actor_cls.remote(*args, device, threads)``).

    ``n_actors`` defaults to the cluster's GPUs / ``mps`` resources, else 1 CPU actor.
    ``what`` names the actors in errors ("MBD polish"), ``section``/``off`` the setting
    to change ("polish", "polish.mode=off"); windows go to ``actor.<method>``.
    """

    method = ""

    def __init__(self, actor_cls, args: tuple, device: str, *, what: str, section: str, off: str,
                 n_actors: int | None = None, threads: int | None = None, start_timeout_s: float = 300.0):
        device = device if device != "auto" else cluster_devices()
        res = ray.cluster_resources()
        if n_actors is None:
            n_actors = max(1, int(res.get({"cuda": "GPU", "mps": "mps"}.get(device, "none"), 1)))
        opts = {**actor_options(device, num_cpus=float(threads or 1)), "max_restarts": -1, "max_task_retries": -1,
                "scheduling_strategy": "SPREAD"}
        self.device = device
        self.actors = [actor_cls.options(**opts).remote(*args, device, threads) for _ in range(n_actors)]
        try:
            geoms = ray.get([a.geometry.remote() for a in self.actors], timeout=start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            self.shutdown()
            raise DeviceUnavailableError(
                f"{n_actors} {what} actor(s) ({opts}) could not be placed within {start_timeout_s:g} s; the "
                f"cluster offers {res}: set {section}.device to one it has, or {off}") from None
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
        return getattr(self.actors[i], self.method).remote(window), i

    def done(self, i: int) -> None:
        with self._lock:
            self.inflight[i] -= 1

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)
