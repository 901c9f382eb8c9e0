"""Cut a stream into the overlapping windows a stateless separator works on.

The geometry is exactly that of :func:`demucs.apply.apply_model`'s split loop
(``split=True, shifts=0``), so that a window-by-window run stitched with
:class:`~engine.separation.stitcher.OverlapAddStitcher` reproduces a
whole-file ``apply_model`` run to float tolerance:

* ``stride = int((1 - overlap) * segment_samples)``
* window ``seq`` starts at ``offset = seq * stride``; offsets are
  ``range(0, total_length, stride)``
* window length is ``min(segment_samples, total_length - offset)`` (the last
  one or few are shorter)
* what the model sees is the window's chunk plus *real* audio around it
  (``TensorChunk(mix, offset, length).padded(...)`` in demucs), with zeros
  outside ``[0, total_length)``.

Every :class:`SeparationWindow` therefore carries a ``context`` array: the
chunk plus enough surrounding audio (zeros before the start / after the end
of the stream) for the separator to build exactly what it would have seen
in a whole-file run.

Streaming: the total length is unknown until :meth:`WindowPlanner.finish`,
so a window is emitted by :meth:`WindowPlanner.push` only once its full
chunk and its right context have arrived (which also proves it is a
full-length window); the windows near the end come out of ``finish``.
The planner holds a bounded buffer (about ``2 * segment + 2 * context``
samples plus the latest block), never the whole stream.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import CHANNELS, as_block
from ..errors import SettingsError


def window_stride(segment_samples: int, overlap: float) -> int:
    """Hop between window starts in samples, as ``demucs.apply.apply_model``.

    ``int((1 - overlap) * segment_samples)``; raises :class:`SettingsError`
    when the geometry is degenerate (overlap outside ``[0, 1)``, stride 0).
    """
    segment_samples = int(segment_samples)
    if segment_samples <= 0:
        raise SettingsError(f"separation segment must be > 0 samples, got {segment_samples}")
    if not 0.0 <= float(overlap) < 1.0:
        raise SettingsError(f"separation overlap must be in [0, 1), got {overlap}")
    stride = int((1 - overlap) * segment_samples)
    if stride <= 0:
        raise SettingsError(
            f"overlap {overlap} leaves no hop for a {segment_samples}-sample segment; "
            "use a smaller overlap or a longer segment")
    return stride


def n_windows(total_length: int, stride: int) -> int:
    """How many windows cover ``total_length`` samples: ``len(range(0, total, stride))``."""
    return len(range(0, int(total_length), int(stride)))


@dataclass
class SeparationWindow:
    """One window of the stream, ready for a stateless separator.

    Attributes:
        seq: window number, from 0; ``offset == seq * stride``.
        offset: absolute index (samples) of the chunk start in the stream.
        length: chunk length in samples (``segment_samples`` except for the
            last window(s), which are shorter).
        context: float32 ``(channels, L)`` audio around the chunk: real stream
            samples where they exist, zeros before sample 0 and after the end
            of the stream.  The chunk is ``context[:, context_offset:
            context_offset + length]``.
        context_offset: index of the chunk start inside ``context`` (samples).
    """

    seq: int
    offset: int
    length: int
    context: np.ndarray
    context_offset: int

    @property
    def chunk(self) -> np.ndarray:
        """The window's own samples, ``(channels, length)`` (a view)."""
        return self.context[:, self.context_offset:self.context_offset + self.length]

    def context_span(self, left: int, right: int) -> np.ndarray:
        """``(channels, left + length + right)``: the chunk with ``left`` /
        ``right`` samples of context, zero-padded if ``context`` is shorter.

        The result does not depend on how much context the planner happened
        to attach, which keeps separators that use a fixed context (the DSP
        separator) deterministic per window.
        """
        start = self.context_offset - int(left)
        end = self.context_offset + self.length + int(right)
        lo, hi = max(0, start), min(self.context.shape[1], end)
        out = self.context[:, lo:hi]
        if lo - start or end - hi:
            out = np.pad(out, ((0, 0), (lo - start, end - hi)))
        return np.ascontiguousarray(out, dtype=np.float32)


class _StreamBuffer:
    """Growable FIFO of stream samples with absolute indexing.

    Holds samples ``[start, end)`` of the stream; reads outside ``[0, end)``
    return zeros (before the stream start, or past its end once finished).
    Appends are amortised O(n) (capacity doubling, front compaction).
    """

    def __init__(self, channels: int):
        self.channels = channels
        self._data = np.zeros((channels, 0), dtype=np.float32)
        self._head = 0  # index in _data of the sample `start`
        self._fill = 0  # number of valid samples in _data after _head
        self.start = 0  # absolute index of the first held sample

    @property
    def end(self) -> int:
        """Absolute index one past the last received sample."""
        return self.start + self._fill

    @property
    def held(self) -> int:
        """Samples currently held in memory."""
        return self._fill

    def append(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if n == 0:
            return
        need = self._head + self._fill + n
        if need > self._data.shape[1]:
            if self._fill + n <= self._data.shape[1] // 2 and self._head:
                # plenty of room once compacted
                self._data[:, :self._fill] = self._data[:, self._head:self._head + self._fill]
            else:
                cap = max(2 * (self._fill + n), 4096)
                new = np.zeros((self.channels, cap), dtype=np.float32)
                new[:, :self._fill] = self._data[:, self._head:self._head + self._fill]
                self._data = new
            self._head = 0
        pos = self._head + self._fill
        self._data[:, pos:pos + n] = block
        self._fill += n

    def discard_before(self, index: int) -> None:
        """Forget samples before absolute ``index`` (never re-read)."""
        drop = min(max(0, int(index) - self.start), self._fill)
        self._head += drop
        self._fill -= drop
        self.start += drop

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)`` as a new ``(channels, end - start)`` array.

        Indices before 0 or at/after :attr:`end` read as zeros; indices in
        ``[0, self.start)`` were discarded and raise ``IndexError``.
        """
        out = np.zeros((self.channels, end - start), dtype=np.float32)
        lo, hi = max(start, 0), min(end, self.end)
        if hi > lo:
            if lo < self.start:
                raise IndexError(f"samples before {self.start} were discarded (asked {lo})")
            a = self._head + (lo - self.start)
            out[:, lo - start:hi - start] = self._data[:, a:a + (hi - lo)]
        return out


class WindowPlanner:
    """Streaming window cutter with ``demucs.apply.apply_model``'s geometry.

    Args:
        segment_samples: window (chunk) length in samples.
        overlap: fraction of a window shared with the next, in ``[0, 1)``.
        context_samples: samples of real audio a *full-length* window needs on
            each side (the separator's ``context_samples``).  Windows emitted
            while streaming carry exactly this much on each side.
        channels: channel count of the stream.
        tail_context_samples: extra left context given to the windows emitted
            by :meth:`finish` (the possibly shorter tail windows, which
            separators such as HTDemucs centre-pad with real audio from the
            left).  Defaults to ``segment_samples``, enough for any demucs model.

    Memory: at most ``segment + context + tail_context`` samples of history
    plus the samples not yet covered by an emitted window.
    """

    def __init__(self, segment_samples: int, overlap: float, context_samples: int = 0,
                 channels: int = CHANNELS, tail_context_samples: int | None = None):
        self.segment_samples = int(segment_samples)
        self.overlap = float(overlap)
        self.stride = window_stride(self.segment_samples, self.overlap)
        if context_samples < 0:
            raise SettingsError(f"context_samples must be >= 0, got {context_samples}")
        self.context_samples = int(context_samples)
        self.tail_context_samples = (self.segment_samples if tail_context_samples is None
                                     else int(tail_context_samples))
        self.channels = int(channels)
        self.reset()

    def reset(self) -> None:
        """Forget the stream; ready for a new one."""
        self._buf = _StreamBuffer(self.channels)
        self._next_seq = 0
        self._finished = False

    @property
    def received(self) -> int:
        """Samples pushed so far."""
        return self._buf.end

    @property
    def held_samples(self) -> int:
        """Samples currently buffered (bounded, see class docstring)."""
        return self._buf.held

    @property
    def next_seq(self) -> int:
        """Sequence number of the next window to be emitted."""
        return self._next_seq

    @property
    def latency_samples(self) -> int:
        """Samples that must arrive past a window's start before it is emitted."""
        return self.segment_samples + self.context_samples

    def push(self, block: np.ndarray) -> list[SeparationWindow]:
        """Add ``block`` ``(channels, n)``; return the windows now complete."""
        if self._finished:
            raise RuntimeError("WindowPlanner.push() after finish(); call reset() first")
        block = as_block(block, self.channels)
        self._buf.append(block)
        out = []
        L, C = self.segment_samples, self.context_samples
        while True:
            offset = self._next_seq * self.stride
            if self._buf.end < offset + L + C:
                break
            ctx = self._buf.read(offset - C, offset + L + C)
            out.append(SeparationWindow(self._next_seq, offset, L, ctx, C))
            self._next_seq += 1
            self._trim()
        return out

    def finish(self) -> list[SeparationWindow]:
        """End of stream: return the remaining windows (zeros past the end)."""
        if self._finished:
            return []
        self._finished = True
        total = self._buf.end
        L, C = self.segment_samples, self.context_samples
        left = C + self.tail_context_samples
        out = []
        while self._next_seq * self.stride < total:
            offset = self._next_seq * self.stride
            length = min(L, total - offset)
            ctx = self._buf.read(offset - left, offset + L + C)
            out.append(SeparationWindow(self._next_seq, offset, length, ctx, left))
            self._next_seq += 1
        self._buf.discard_before(total)
        return out

    def _trim(self) -> None:
        offset = self._next_seq * self.stride
        self._buf.discard_before(offset - self.context_samples - self.tail_context_samples)
