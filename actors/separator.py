"""Separator actor: owns one separation model on its device; windows are independent.

Stateless per call, so Ray restarts a crashed actor and retries its windows
(``max_restarts``/``max_task_retries``): the job's output is unchanged.
"""
from __future__ import annotations

import os

import ray


@ray.remote
class SeparatorActor:
    def __init__(self, separation: dict, threads: int | None = None):
        import torch

        from engine.separation.factory import build_separator

        if threads:
            torch.set_num_threads(int(threads))
        s = dict(separation)
        self.separator, self.notes = build_separator(
            s["separator"], model=s["model"], repo=s.get("model_repo"), device=s["device"],
            quality=s["quality"], segment=s.get("segment_s"), overlap=s.get("overlap"), shifts=s.get("shifts"),
            threads=threads)

    def geometry(self) -> dict:
        """Window geometry (``WindowGeometry``) and identity of this actor's separator."""
        return {"geometry": self.separator.geometry, "description": dict(self.separator.description),
                "notes": list(self.notes)}

    def separate(self, window):
        """One window -> ``(sources, 2, window.length)`` float32."""
        return self.separator.separate(window)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def pid(self) -> int:
        """Worker process id (changes when Ray restarts the actor)."""
        return os.getpid()
