"""The polish lane: a windowed model stage, streamed like Demucs separation.

Windows are cut by the separation's :class:`~engine.separation.windows.WindowPlanner`
and stitched by its :class:`~engine.separation.stitcher.OverlapAddStitcher`
(both generic over what a window computes; here: one "source", the MBD
correction, over ``2 * len(signals)`` channels).  Windows are independent
(the sampler is seeded per window), so they run anywhere, in parallel, in any
order: :func:`inline_polish` runs them in this process; the Ray runner passes
a runner over polish actors (the same :class:`~engine.separation.streaming.WindowRunner`
protocol).  Contract: the streamed output equals the windows applied to the
whole signal and overlap-added (:func:`polish_whole`), for any block sizes.

The lane keeps its input until the stitched correction for it is final and
returns ``input + blend * correction``: ``blend = 0`` gives the input back
bit-for-bit, and above the crossover (where the correction is low-passed
away) the input passes untouched.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..audio import check_finite
from ..blocks import StemFifo
from ..separation.streaming import InlineWindows, WindowedLane


def inline_polish(polisher) -> InlineWindows:
    """The polish lane's windows run at once in this process on ``polisher`` (an MBDPolisher)."""
    return InlineWindows(polisher, run=polisher.polish)


class StreamingPolish(WindowedLane):
    """Feed stem dicts (or a mix) in, get them polished out, sample-aligned.

    Args:
        windows: a window runner (:func:`inline_polish`, or the Ray polish pool's).
        signals: names of the stereo signals in channel order (stems, or ``("mix",)``).
        blend: share of the stitched correction added to the input, 0 .. 1.
        description: what ran (``polisher.description``), for the report.

    ``process(payload)`` takes a dict ``{name: (2, n)}`` with exactly
    ``signals`` (any ``n``) and returns such a dict with ``m`` samples; ``m``
    is 0 until the first window is complete (``latency``), then jumps by whole
    strides.  :meth:`drain` returns the rest in pieces at the end of the stream.
    """

    def __init__(self, windows, signals: tuple[str, ...], blend: float, description: dict | None = None):
        super().__init__(windows)
        self.signals = tuple(signals)
        self.blend = np.float32(blend)
        self.description = dict(description or {})
        self._input = StemFifo()

    def reset(self) -> None:
        super().reset()
        self._input = StemFifo()

    def _stack(self, payload: dict) -> np.ndarray:
        if set(payload) != set(self.signals):
            raise ValueError(f"polish lane expects {self.signals}, got {sorted(payload)}")
        return np.concatenate([np.asarray(payload[s], np.float32) for s in self.signals], axis=0)

    def _output(self, correction: np.ndarray) -> dict[str, np.ndarray]:
        """``input + blend * correction`` for the next ``correction.shape[-1]`` samples."""
        n = correction.shape[-1]
        if n == 0:
            return {s: np.zeros((2, 0), np.float32) for s in self.signals}
        x = self._input.pop(n)
        out = {}
        for i, s in enumerate(self.signals):
            out[s] = x[s] if self.blend == 0 else (x[s] + self.blend * correction[0, 2 * i:2 * i + 2]).astype(np.float32)
        return out

    def process(self, payload: dict) -> dict[str, np.ndarray]:
        """Consume one block of every signal; return the samples that became final."""
        block = self._stack(payload)
        check_finite(block, "polish input")
        self._input.push({s: np.asarray(payload[s], np.float32) for s in self.signals})
        return self._output(self._push(block))

    def drain(self) -> Iterator[dict[str, np.ndarray]]:
        """End of stream: the remaining output in pieces, as the last windows come back."""
        for part in self._drain_raw():
            yield self._output(part)


def polish_whole(polisher, payload: dict, blend: float) -> dict[str, np.ndarray]:
    """Reference: the polisher's windows over the whole signal, overlap-added with
    demucs' weights, ``input + blend * correction`` (what the lane must stream)."""
    from ..separation.stitcher import demucs_transition_weight
    from ..separation.windows import SeparationWindow

    g = polisher.geometry
    x = np.concatenate([np.asarray(payload[s], np.float32) for s in polisher.signals], axis=0)
    total, L, C = x.shape[1], g.segment_samples, g.context_samples
    padded = np.pad(x, ((0, 0), (C, L + C)))
    acc = np.zeros((x.shape[0], total + L), np.float64)
    wsum = np.zeros(total + L, np.float64)
    weight = demucs_transition_weight(L, g.transition_power)
    for seq, offset in enumerate(range(0, total, g.stride)):
        n = min(L, total - offset)
        w = SeparationWindow(seq, offset, n, padded[:, offset:offset + n + 2 * C], C)
        acc[:, offset:offset + n] += weight[:n] * polisher.polish(w)[0]
        wsum[offset:offset + n] += weight[:n]
    correction = (acc[:, :total] / wsum[:total]).astype(np.float32)
    return {s: (x[2 * i:2 * i + 2] + np.float32(blend) * correction[2 * i:2 * i + 2]).astype(np.float32)
            for i, s in enumerate(polisher.signals)}
