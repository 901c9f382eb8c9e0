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

from actors.polish import PolishActor
from engine.polish.config import PolishConfig
from engine.polish.factory import polish_signals

from .model_pool import ModelActorPool


class PolishPool(ModelActorPool):
    """``n_actors`` polish actors with one :class:`PolishConfig` (MBD loaded in each).

    ``n_actors`` defaults to the cluster's GPUs / ``mps`` resources, else 1 CPU
    actor (MBD at real size needs about 15 GB of memory per actor).
    """

    method = "polish"

    def __init__(self, cfg: PolishConfig, stems=None, n_actors: int | None = None, threads: int | None = None,
                 start_timeout_s: float = 300.0):
        self.signals = polish_signals(cfg) if stems is None else polish_signals(cfg, stems)
        super().__init__(PolishActor, (cfg.to_dict(), self.signals), cfg.device, what="MBD polish",
                         section="polish", off="polish.mode=off", n_actors=n_actors, threads=threads,
                         start_timeout_s=start_timeout_s)
