"""The generation lane: separated stems in, JASCO's windows out, joined by crossfade.

::

    stems --> harmonic (vocals + bass + other) --> ProfileStage (one profile per window)
          --> drums stem, kept per window
    profile + drums of window k --> window runner (in process, or the Ray generator pool)
    generated windows (any order) --> CrossfadeStitcher (in order, equal-power joins) --> (2, m) blocks

Windows are ``window_s`` long every ``stride_s = window_s - crossfade_s``: the
``crossfade_s`` where two overlap is an equal-power crossfade (cos / sin
gains), so the join has no gap and no click whatever the two windows hold.
Each window is generated independently (seeded by its number), so windows
run in parallel on several actors, like separation windows.  The lane's
output is sample-aligned with its input and as long; a window's audio
becomes final once the next window's crossfade with it is done.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..audio import SAMPLE_RATE
from ..separation.streaming import InlineWindows
from .profile import ProfileStage, WindowProfile


@dataclass(frozen=True)
class GenerationGeometry:
    """Where generation windows lie (samples at 44.1 kHz)."""

    window: int
    stride: int

    @property
    def crossfade(self) -> int:
        return self.window - self.stride

    @classmethod
    def of(cls, cfg) -> "GenerationGeometry":
        return cls(int(round(cfg.window_s * SAMPLE_RATE)), int(round(cfg.stride_s * SAMPLE_RATE)))


@dataclass
class GenerationWindow:
    """What one generation window needs: its profile and its drums stem ``(2, length)`` (None: no drums)."""

    profile: WindowProfile
    drums: np.ndarray | None

    @property
    def seq(self) -> int:
        return self.profile.seq


def inline_generation(generator) -> InlineWindows:
    """Windows generated at once in this process on ``generator`` (a JascoGenerator)."""
    return InlineWindows(generator, run=generator.run)


def crossfade_gains(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power ``(fade_out, fade_in)`` over ``n`` samples (``out**2 + in**2 == 1``)."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    return np.cos(0.5 * np.pi * t).astype(np.float32), np.sin(0.5 * np.pi * t).astype(np.float32)


class CrossfadeStitcher:
    """Generated windows (any order) -> one continuous stream, in order.

    ``add(seq, audio)`` stores window ``seq`` (``(2, n)``, placed at ``seq *
    stride``); ``pop()`` returns the samples that became final: window ``k``'s
    are final up to where window ``k + 1`` starts, its crossfade with ``k + 1``
    once ``k + 1`` is there.  ``finish()`` returns the rest.
    """

    def __init__(self, geometry: GenerationGeometry):
        self.g = geometry
        self.fade_out, self.fade_in = crossfade_gains(geometry.crossfade)
        self._pending: dict[int, np.ndarray] = {}
        self._next = 0  # next window to place
        self._tail: np.ndarray | None = None  # the last placed window's crossfade region (faded out later)
        self.emitted = 0

    def add(self, seq: int, audio: np.ndarray) -> None:
        self._pending[int(seq)] = np.asarray(audio, np.float32)

    def pop(self) -> np.ndarray:
        parts = []
        c = self.g.crossfade
        while self._next in self._pending:
            w = self._pending.pop(self._next)
            head = w
            if self._tail is not None:
                n = min(c, w.shape[1], self._tail.shape[1])
                joined = self._tail[:, :n] * self.fade_out[:n] + w[:, :n] * self.fade_in[:n]
                head = np.concatenate([joined, w[:, n:]], axis=1)
            keep = max(0, min(self.g.stride, head.shape[1]))
            parts.append(head[:, :keep])
            self._tail = head[:, keep:]
            self._next += 1
        out = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), np.float32)
        self.emitted += out.shape[1]
        return out.astype(np.float32, copy=False)

    def finish(self) -> np.ndarray:
        """End of stream: every window must be in; the last window's tail is final as it is."""
        if self._pending:
            raise RuntimeError(f"generation windows {sorted(self._pending)} arrived after a missing one")
        out = self._tail if self._tail is not None else np.zeros((2, 0), np.float32)
        self._tail = None
        self.emitted += out.shape[1]
        return out.astype(np.float32, copy=False)


class StreamingGeneration:
    """Feed stem dicts in, get generated ``(2, m)`` audio out (aligned with the input, as long).

    Args:
        windows: a window runner (:func:`inline_generation`, or the Ray generator pool's).
        description: what generates (``generator.description``), for reports and provenance.
    """

    def __init__(self, windows, description: dict | None = None):
        self.windows = windows
        self.geometry: GenerationGeometry = windows.geometry
        g = self.geometry
        self.profile = ProfileStage(g.window / SAMPLE_RATE, g.stride / SAMPLE_RATE)
        self.stitcher = CrossfadeStitcher(g)
        self.description = dict(description or {})
        self._drums = np.zeros((2, 0), np.float32)
        self._drums_start = 0
        self.received = 0
        self.profiles: list[WindowProfile] = []

    def _submit(self, profiles) -> None:
        for p in profiles:
            a = p.offset - self._drums_start
            drums = self._drums[:, a:a + p.length].copy()
            self.windows.submit(GenerationWindow(p, drums if np.any(drums) else None))
            self.profiles.append(p)
            keep = p.offset + self.geometry.stride - self._drums_start
            self._drums = self._drums[:, keep:]
            self._drums_start += keep

    def _collect(self, wait: bool) -> np.ndarray:
        for window, audio in self.windows.collect(wait):
            self.stitcher.add(window.seq, audio)
        return self.stitcher.pop()

    def process(self, stems: dict) -> np.ndarray:
        """Consume one block of the separated stems; return the generated samples that became final."""
        drums = np.asarray(stems["drums"], np.float32)
        harmonic = sum(np.asarray(v, np.float32) for k, v in stems.items() if k != "drums")
        self.received += drums.shape[1]
        self._drums = np.concatenate([self._drums, drums], axis=1)
        self.profile.process(np.asarray(harmonic, np.float32))
        self._submit(self.profile.pop())
        return self._collect(wait=False)

    def drain(self) -> Iterator[np.ndarray]:
        """End of stream: the last window(s), then the rest, as they come back."""
        self.profile.flush()
        self._submit(self.profile.pop())
        while self.windows.in_flight:
            part = self._collect(wait=True)
            if part.shape[1]:
                yield part
        yield self.stitcher.finish()
