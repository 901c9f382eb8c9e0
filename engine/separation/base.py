"""The interface every separator backend implements, and stem-name mapping.

A separator is *stateless per window*: :meth:`Separator.separate` turns one
:class:`~engine.separation.windows.SeparationWindow` into stems and depends on
nothing but that window, so windows can run in any order, in parallel, on
any machine (a Ray actor pool), and a retried window gives the same answer.

The window geometry a separator needs (segment, overlap, context, cross-fade
power, source order) is bundled in :class:`WindowGeometry`, a small picklable
value a coordinator can fetch from a remote separator once and use to build
the local :class:`~engine.separation.windows.WindowPlanner` and
:class:`~engine.separation.stitcher.OverlapAddStitcher`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..audio import CHANNELS, STEM_NAMES
from ..errors import SettingsError
from .stitcher import OverlapAddStitcher
from .windows import SeparationWindow, WindowPlanner, window_stride


@dataclass(frozen=True)
class WindowGeometry:
    """How a separator wants the stream cut and stitched.

    Attributes:
        sources: model source names, in the order of the stems axis.
        segment_samples: window (chunk) length in samples.
        overlap: fraction of a window shared with the next, ``[0, 1)``.
        context_samples: real audio (samples) a full-length window needs on
            each side of its chunk.
        transition_power: cross-fade sharpness of the overlap-add (>= 1).
        channels: audio channels.
    """

    sources: tuple[str, ...]
    segment_samples: int
    overlap: float
    context_samples: int
    transition_power: float = 1.0
    channels: int = CHANNELS

    def __post_init__(self):
        window_stride(self.segment_samples, self.overlap)  # raises SettingsError if degenerate
        if self.context_samples < 0:
            raise SettingsError(f"context_samples must be >= 0, got {self.context_samples}")
        if self.transition_power < 1:
            raise SettingsError(f"transition_power must be >= 1, got {self.transition_power}")

    @property
    def stride(self) -> int:
        """Hop between window starts in samples."""
        return window_stride(self.segment_samples, self.overlap)

    def planner(self) -> WindowPlanner:
        return WindowPlanner(self.segment_samples, self.overlap, self.context_samples,
                             channels=self.channels)

    def stitcher(self) -> OverlapAddStitcher:
        return OverlapAddStitcher(self.segment_samples, self.overlap, len(self.sources),
                                  transition_power=self.transition_power, channels=self.channels)


class Separator(abc.ABC):
    """A stateless, window-by-window source separator.

    Attributes every backend sets:
        sources: model source names, the order of the stems axis.
        segment_samples: window length in samples.
        overlap: window overlap fraction.
        context_samples: samples of context a full-length window needs per side.
        transition_power: overlap-add cross-fade power (1 = linear).
        description: what ran, for reports, e.g.
            ``{"separator": "demucs", "model": "htdemucs", "device": "cpu"}``.
        cpu_threads: cores the separator keeps busy beside its caller's thread
            (torch's CPU thread pool); ``lane_threads="auto"`` leaves them free.
    """

    sources: tuple[str, ...]
    segment_samples: int
    overlap: float
    context_samples: int
    transition_power: float = 1.0
    description: dict
    cpu_threads: int = 0

    @abc.abstractmethod
    def separate(self, window: SeparationWindow) -> np.ndarray:
        """Stems of one window: float32 ``(len(sources), channels, window.length)``."""

    @property
    def geometry(self) -> WindowGeometry:
        return WindowGeometry(tuple(self.sources), int(self.segment_samples), float(self.overlap),
                              int(self.context_samples), float(self.transition_power))


def to_stem_dict(sources: Sequence[str], array: np.ndarray) -> dict[str, np.ndarray]:
    """Map model stems onto the engine's stems ``vocals, drums, bass, other``.

    Args:
        sources: model source names, one per entry of ``array``'s first axis.
        array: float ``(S, channels, n)``.

    Returns a dict with exactly :data:`engine.audio.STEM_NAMES` as keys, each a
    float32 ``(channels, n)`` array.  Sources outside those four (``guitar``
    and ``piano`` of ``htdemucs_6s``, any other name) are summed into
    ``other``; stems the model lacks are silent.  The sum over the dict equals
    the sum over ``array``, so mixture consistency is preserved.
    """
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3 or array.shape[0] != len(sources):
        raise ValueError(f"expected ({len(sources)}, channels, n) stems, got {array.shape}")
    out = {name: np.zeros(array.shape[1:], dtype=np.float32) for name in STEM_NAMES}
    for name, stem in zip(sources, array):
        key = name if name in out else "other"
        out[key] += stem
    return out


def stems_from_dict(sources: Sequence[str], stems: Mapping[str, np.ndarray]) -> np.ndarray:
    """Inverse helper for tests and tools: ``(S, channels, n)`` in ``sources`` order."""
    return np.stack([np.asarray(stems[s], dtype=np.float32) for s in sources])
