"""Generator actor: owns one JASCO model on its device; windows are independent.

Stateless per call (window ``k`` is generated with torch seeded from the job
seed and ``k``), so Ray restarts a crashed actor and retries its windows.
Placement as the separator and polish actors: :func:`actors.placement.actor_options`.
"""
from __future__ import annotations

import ray


@ray.remote
class GeneratorActor:
    def __init__(self, generate: dict, device: str, threads: int | None = None):
        import torch

        from engine.generate.config import GenerateConfig
        from engine.generate.jasco import build_generator

        if threads:
            torch.set_num_threads(int(threads))
        self.generator = build_generator(GenerateConfig.from_dict(generate), device)

    def geometry(self) -> dict:
        """Window geometry (``GenerationGeometry``) and what this actor runs."""
        return {"geometry": self.generator.geometry, "description": dict(self.generator.description)}

    def generate(self, window):
        """One :class:`~engine.generate.streaming.GenerationWindow` -> ``(2, length)`` float32 at 44.1 kHz."""
        return self.generator.run(window)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()
