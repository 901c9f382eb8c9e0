"""Events a running job emits, whatever runs it (in-process runner or Ray).

The gateway turns these into protocol messages; the CLI turns them into
progress bars.  Audio is float32 ``(channels, samples)`` at ``sample_rate``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np


@dataclass
class ProgressEvent:
    """Progress of one stage: ``done`` out of ``total`` (same unit: seconds of audio).

    ``total`` is None while the input length is unknown (live upload).
    """

    stage: str
    done: float
    total: Optional[float] = None


@dataclass
class AudioChunk:
    """One processed block of the streamed (preview-mastered) output.

    ``seq`` counts blocks from 0 with no gaps; ``offset`` is the block's first
    sample index in the output stream at ``sample_rate``.  ``stems`` (name ->
    ``(channels, samples)``) are present only when the job asked for them.
    """

    seq: int
    offset: int
    sample_rate: int
    audio: np.ndarray
    stems: Optional[dict] = None


@dataclass
class InfoEvent:
    """Informational message (e.g. which separator ran, a fallback happened)."""

    message: str
    data: dict = field(default_factory=dict)


@dataclass
class Finished:
    """The job ended well: ``report`` (JSON-able dict) and ``outputs`` (kind -> path)."""

    report: dict
    outputs: dict


Event = Union[ProgressEvent, AudioChunk, InfoEvent, Finished]
EventSink = Callable[[Event], None]
