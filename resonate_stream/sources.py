"""Where a job's audio comes from: a file, or blocks arriving over a socket.

Both yield float32 ``(2, n)`` blocks at the engine's 44.1 kHz working rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np


@dataclass
class SourceInfo:
    """What is known about the input before decoding it all."""

    name: str
    sample_rate: Optional[int] = None  # source rate, Hz
    channels: Optional[int] = None  # source channel count
    duration_s: Optional[float] = None  # None while unknown (live upload)
    format: Optional[str] = None


class FileSource:
    """A recording on disk, decoded block by block (never whole)."""

    def __init__(self, path: Path, block_seconds: float = 1.0):
        from engine.io.decode import probe

        self.path = Path(path)
        self.block_seconds = block_seconds
        info = probe(self.path)  # raises typed errors for bad input before any work
        self.info = SourceInfo(name=self.path.name, sample_rate=info.sample_rate, channels=info.channels,
                               duration_s=info.duration_s, format=info.format)

    def blocks(self) -> Iterator[np.ndarray]:
        from engine.io.decode import open_audio

        with open_audio(self.path, block_seconds=self.block_seconds) as dec:
            yield from dec


class BlockSource:
    """Blocks produced elsewhere (an upload being decoded), in order."""

    def __init__(self, blocks: Iterable[np.ndarray], info: SourceInfo):
        self._blocks = blocks
        self.info = info

    def blocks(self) -> Iterator[np.ndarray]:
        yield from self._blocks
