"""Polish actor: owns one MultiBandDiffusion on its device; windows are independent.

Stateless per call (each window's sampler is seeded from the job seed and the
window number), so Ray restarts a crashed actor and retries its windows
(``max_restarts``/``max_task_retries``) and the output is unchanged.
Placement as the separator actors: :func:`actors.placement.actor_options`.
"""
from __future__ import annotations

import ray


@ray.remote
class PolishActor:
    def __init__(self, polish: dict, signals: tuple, device: str, threads: int | None = None):
        import torch

        from engine.polish.config import PolishConfig
        from engine.polish.factory import build_polisher

        if threads:
            torch.set_num_threads(int(threads))
        self.polisher = build_polisher(PolishConfig.from_dict(polish), tuple(signals), device)

    def geometry(self) -> dict:
        """Window geometry (``WindowGeometry``) and what this actor runs."""
        return {"geometry": self.polisher.geometry, "description": dict(self.polisher.description)}

    def polish(self, window):
        """One window -> its MBD correction ``(1, channels, window.length)`` float32."""
        return self.polisher.polish(window)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()
