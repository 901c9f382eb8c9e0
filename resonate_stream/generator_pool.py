"""JASCO generation on Ray: a pool of :class:`~actors.generator.GeneratorActor` s, shared across jobs.

The generation lane's windows (:class:`engine.generate.streaming.StreamingGeneration`)
go to the pool through the same window runner as separation and polish
(:class:`~resonate_stream.ray_lanes.PoolWindows`).  Actors ask Ray for a GPU,
the ``mps`` resource or CPUs (:func:`actors.placement.actor_options`); a pool
that cannot be placed fails fast with what the cluster offers.
"""
from __future__ import annotations

from actors.generator import GeneratorActor
from engine.generate.config import GenerateConfig

from .model_pool import ModelActorPool


class GeneratorPool(ModelActorPool):
    """``n_actors`` generator actors with one :class:`GenerateConfig` (JASCO loaded in each).

    ``n_actors`` defaults to the cluster's GPUs / ``mps`` resources, else 1 CPU actor.
    """

    method = "generate"

    def __init__(self, cfg: GenerateConfig, n_actors: int | None = None, threads: int | None = None,
                 start_timeout_s: float = 300.0):
        super().__init__(GeneratorActor, (cfg.to_dict(),), cfg.device, what="JASCO generator", section="generate",
                         off="generate.mode=restore", n_actors=n_actors, threads=threads,
                         start_timeout_s=start_timeout_s)
