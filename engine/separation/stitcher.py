"""Reorder separated windows and overlap-add them back into a stream.

Weights are those of ``demucs.apply.apply_model``'s split loop: a triangle
over the segment (``1..L//2`` then ``L-L//2..1``), normalised to a maximum of
1 and raised to ``transition_power``; a window of length ``n`` uses the first
``n`` weights.  Each output sample is divided by the sum of the weights of the
windows that cover it, so the weights sum to one.

Windows may arrive in any order (parallel actors, retries).  A sample is
final once every window that covers it has been added; with windows added up
to ``seq = k`` in order, every sample before ``(k + 1) * stride`` is final.
"""
from __future__ import annotations

import numpy as np

from ..audio import CHANNELS
from ..errors import ResonateError
from .windows import n_windows, window_stride


class StitchError(ResonateError):
    """Windows handed to the stitcher are inconsistent or missing."""

    code = "separation_stitch_error"


def demucs_transition_weight(segment_samples: int, transition_power: float = 1.0) -> np.ndarray:
    """The overlap-add weight of ``apply_model``: float32 ``(segment_samples,)``."""
    L = int(segment_samples)
    if transition_power < 1:
        raise ValueError("transition_power < 1 leads to weird behaviour (demucs asserts >= 1)")
    w = np.concatenate([np.arange(1, L // 2 + 1), np.arange(L - L // 2, 0, -1)]).astype(np.float32)
    w = w / np.float32(w.max())
    if transition_power != 1:
        w = w ** np.float32(transition_power)
    return w.astype(np.float32)


class OverlapAddStitcher:
    """Overlap-add separated windows back into ordered, non-overlapping stems.

    Args:
        segment_samples: window length in samples (the planner's).
        overlap: window overlap fraction (the planner's).
        n_sources: number of stems ``S`` a window carries.
        transition_power: sharpness of the cross-fade (demucs' parameter, >= 1).
        channels: audio channels per stem.

    ``add(seq, offset, stems)`` takes ``stems`` float ``(S, channels, length)``
    for window ``seq``; ``pop_ready()`` returns float32 ``(S, channels, n)``.
    Memory: the accumulator spans at most ``segment + stride`` samples;
    windows that arrive early are held until their turn (the caller bounds
    how many are in flight).
    """

    def __init__(self, segment_samples: int, overlap: float, n_sources: int,
                 transition_power: float = 1.0, channels: int = CHANNELS):
        self.segment_samples = int(segment_samples)
        self.overlap = float(overlap)
        self.stride = window_stride(self.segment_samples, self.overlap)
        self.n_sources = int(n_sources)
        self.channels = int(channels)
        self.transition_power = float(transition_power)
        self.weight = demucs_transition_weight(self.segment_samples, self.transition_power)
        self.reset()

    def reset(self) -> None:
        """Forget everything; ready for a new stream."""
        self._pending: dict[int, np.ndarray] = {}
        self._next_seq = 0  # next window to integrate
        self._base = 0  # absolute index of _acc[..., 0]; everything before was popped
        self._acc = np.zeros((self.n_sources, self.channels, 0), dtype=np.float32)
        self._wsum = np.zeros((0,), dtype=np.float32)
        self._covered_end = 0  # one past the last sample any integrated window covers
        self._finished = False

    # ------------------------------------------------------------------ state
    @property
    def next_seq(self) -> int:
        """The window the stitcher is waiting for."""
        return self._next_seq

    @property
    def pending(self) -> int:
        """Windows received out of order, waiting for an earlier one."""
        return len(self._pending)

    @property
    def emitted(self) -> int:
        """Samples returned so far by :meth:`pop_ready` / :meth:`finish`."""
        return self._base

    @property
    def ready_end(self) -> int:
        """Absolute index up to which samples are final."""
        return min(self._next_seq * self.stride, self._covered_end)

    # ------------------------------------------------------------------ input
    def add(self, seq: int, offset: int, stems: np.ndarray) -> bool:
        """Accept the separated window ``seq`` (any order).

        Returns False (and ignores the data) for a duplicate, e.g. a window
        retried after an actor crash whose first answer already arrived.
        Raises :class:`StitchError` for inconsistent geometry.
        """
        if self._finished:
            raise StitchError("OverlapAddStitcher.add() after finish()")
        seq, offset = int(seq), int(offset)
        if seq < 0 or offset != seq * self.stride:
            raise StitchError(f"window {seq} must start at {seq * self.stride}, got offset {offset}")
        stems = np.asarray(stems, dtype=np.float32)
        if (stems.ndim != 3 or stems.shape[0] != self.n_sources or stems.shape[1] != self.channels
                or not 0 < stems.shape[2] <= self.segment_samples):
            raise StitchError(
                f"window {seq}: expected stems of shape ({self.n_sources}, {self.channels}, "
                f"1..{self.segment_samples}), got {stems.shape}")
        if seq < self._next_seq or seq in self._pending:
            return False
        self._pending[seq] = stems
        while self._next_seq in self._pending:
            self._integrate(self._next_seq, self._pending.pop(self._next_seq))
            self._next_seq += 1
        return True

    def _integrate(self, seq: int, stems: np.ndarray) -> None:
        offset = seq * self.stride
        n = stems.shape[2]
        start = offset - self._base
        end = start + n
        if start < 0:  # cannot happen: base never passes the next window's offset
            raise StitchError(f"window {seq} overlaps samples already emitted")
        if end > self._acc.shape[2]:
            grow = end - self._acc.shape[2]
            self._acc = np.concatenate(
                [self._acc, np.zeros((self.n_sources, self.channels, grow), np.float32)], axis=2)
            self._wsum = np.concatenate([self._wsum, np.zeros(grow, np.float32)])
        w = self.weight[:n]
        self._acc[:, :, start:end] += w * stems
        self._wsum[start:end] += w
        self._covered_end = max(self._covered_end, offset + n)

    # ----------------------------------------------------------------- output
    def _take(self, upto: int) -> np.ndarray:
        k = upto - self._base
        if k <= 0:
            return np.zeros((self.n_sources, self.channels, 0), dtype=np.float32)
        wsum = self._wsum[:k]
        if not np.all(wsum > 0):
            raise StitchError("a stretch of samples is covered by no window (missing windows?)")
        out = self._acc[:, :, :k] / wsum
        self._acc = self._acc[:, :, k:].copy()
        self._wsum = self._wsum[k:].copy()
        self._base = upto
        return out.astype(np.float32, copy=False)

    def pop_ready(self) -> np.ndarray:
        """The next final samples, in order: float32 ``(S, channels, n)``, ``n >= 0``."""
        return self._take(self.ready_end)

    def finish(self, total_length: int) -> np.ndarray:
        """End of stream of ``total_length`` samples: return every remaining sample.

        Raises :class:`StitchError` if a window covering the stream is missing.
        """
        total_length = int(total_length)
        expected = n_windows(total_length, self.stride)
        if self._next_seq < expected:
            raise StitchError(
                f"stream of {total_length} samples needs {expected} windows, only "
                f"{self._next_seq} arrived in order (waiting for window {self._next_seq}; "
                f"{len(self._pending)} later ones held)")
        if self._pending or self._next_seq > expected or self._covered_end > total_length:
            raise StitchError(f"windows beyond the end of a {total_length}-sample stream")
        if total_length < self._base:
            raise StitchError(f"{self._base} samples already emitted, stream has {total_length}")
        out = self._take(total_length)
        self._finished = True
        return out
