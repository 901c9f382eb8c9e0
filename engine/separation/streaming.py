"""In-process streaming separation: planner -> separator -> stitcher.

The Ray coordinator does the same with a pool of remote separators; this is
the single-process version (CLI without Ray, tests, benchmarks).
"""
from __future__ import annotations

import numpy as np

from ..audio import CHANNELS, as_block, check_finite
from .base import Separator, to_stem_dict


class StreamingSeparation:
    """Feed audio blocks in, get stems out, aligned sample-for-sample.

    Args:
        separator: any :class:`~engine.separation.base.Separator`.
        map_to_stems: return ``vocals, drums, bass, other`` (True) or the
            model's own source names in model order (False).

    ``push(block)`` takes float32 ``(2, n)`` (any ``n``, 0 included) and
    returns a dict of stems, each ``(2, m)`` with the same ``m``; ``m`` is 0
    until the first window is complete (``segment + context`` samples), and
    after that jumps by whole strides.  ``finish()`` returns the rest.  Over
    a stream, the stems hold exactly as many samples as the input, output
    sample ``i`` belonging to input sample ``i``.  Memory stays bounded.
    """

    def __init__(self, separator: Separator, map_to_stems: bool = True):
        self.separator = separator
        self.map_to_stems = bool(map_to_stems)
        geometry = separator.geometry
        self.planner = geometry.planner()
        self.stitcher = geometry.stitcher()
        self.windows_processed = 0

    def reset(self) -> None:
        self.planner.reset()
        self.stitcher.reset()
        self.windows_processed = 0

    @property
    def received(self) -> int:
        """Input samples pushed so far."""
        return self.planner.received

    @property
    def emitted(self) -> int:
        """Stem samples returned so far."""
        return self.stitcher.emitted

    def _to_dict(self, stems: np.ndarray) -> dict[str, np.ndarray]:
        if self.map_to_stems:
            return to_stem_dict(self.separator.sources, stems)
        return {name: stems[i] for i, name in enumerate(self.separator.sources)}

    def _run(self, windows) -> None:
        for w in windows:
            self.stitcher.add(w.seq, w.offset, self.separator.separate(w))
            self.windows_processed += 1

    def push(self, block: np.ndarray) -> dict[str, np.ndarray]:
        """Consume ``block`` ``(2, n)``; return the stems that became final."""
        block = as_block(block, CHANNELS)
        check_finite(block, "separation input")
        self._run(self.planner.push(block))
        return self._to_dict(self.stitcher.pop_ready())

    def finish(self) -> dict[str, np.ndarray]:
        """End of stream: return the remaining stems."""
        self._run(self.planner.finish())
        return self._to_dict(self.stitcher.finish(self.planner.received))

    def process_all(self, mix: np.ndarray, block_size: int = 44100) -> dict[str, np.ndarray]:
        """Convenience: stream ``mix`` ``(2, n)`` in ``block_size`` blocks, return whole stems."""
        parts = []
        for start in range(0, mix.shape[1], max(1, int(block_size))):
            parts.append(self.push(mix[:, start:start + block_size]))
        parts.append(self.finish())
        return {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
