"""Separator actor: owns one separation model on its device; windows are independent.

Stateless per call, so Ray restarts a crashed actor and retries its windows
(``max_restarts``/``max_task_retries``): the job's output is unchanged.

The model's identity (separator kind, model, weights folder, device) is fixed
when the actor starts; the window settings (``quality``, ``segment_s``,
``overlap``, ``shifts``) may differ per call (``variant``), so jobs with other
presets share the same actors and the same weights in memory.
"""
from __future__ import annotations

import os

import ray

#: the per-call window settings of a separation setting (the rest names the model)
VARIANT_KEYS = ("quality", "segment_s", "overlap", "shifts")


def variant_of(separation: dict) -> tuple:
    """The hashable per-call window settings of a separation settings map."""
    return tuple((k, separation.get(k)) for k in VARIANT_KEYS)


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
        self.variants = {variant_of(s): self.separator}

    def _separator(self, variant: tuple | None):
        if variant is None:
            return self.separator
        sep = self.variants.get(variant)
        if sep is None:
            from engine.separation.factory import separator_variant

            v = dict(variant)
            sep = self.variants[variant] = separator_variant(
                self.separator, v["quality"], segment=v["segment_s"], overlap=v["overlap"], shifts=v["shifts"])
        return sep

    def geometry(self, variant: tuple | None = None) -> dict:
        """Window geometry (``WindowGeometry``) and identity of this actor's separator for ``variant``."""
        sep = self._separator(variant)
        return {"geometry": sep.geometry, "description": dict(sep.description), "notes": list(self.notes)}

    def separate(self, window, variant: tuple | None = None):
        """One window -> ``(sources, 2, window.length)`` float32."""
        return self._separator(variant).separate(window)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def pid(self) -> int:
        """Worker process id (changes when Ray restarts the actor)."""
        return os.getpid()
