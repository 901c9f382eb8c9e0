"""The one chunk-size invariant streaming STFT framework (analysis -> spectra -> OLA).

Every spectral stage (noise reduction, de-reverberation, high-band extension)
is a :class:`StreamingSTFTStage`.  The stage cuts the signal it analyses into
frames of ``frame_length`` samples at a fixed ``hop`` **on absolute sample
positions**: frame ``k`` (k = 1, 2, ...) covers input samples
``[k*hop - frame_length, k*hop)``, the samples before the stream start being
zeros.  Each frame is windowed with a periodic sqrt-Hann window, transformed
(``numpy.fft.rfft``, float64), handed to :meth:`~StreamingSTFTStage.process_frames`
(the subclass's spectral processing, in time order, with its own carried
state), transformed back, windowed again with the COLA-normalised sqrt-Hann
synthesis window and overlap-added.

Array layout: spectra are complex128 ``(frames, channels, bins)`` (complex64
when the subclass sets ``fft_dtype = numpy.float32``: analysis, FFTs and the
overlap-add then run in single precision, about twice as fast) with
``bins = frame_length // 2 + 1`` (one spectrum per frame, frames in time
order); ``frame_ends`` ``(frames,)`` int64 gives each frame's absolute end
position in samples (frames ending before ``frame_length`` include the zeros
before the stream start).

Because the frames depend only on absolute positions, the same frames are
computed - and the same state updates happen in the same order - however the
input is cut into blocks, so the output is chunk-size invariant.

Latency: an output sample is final once the last frame covering it has been
computed; the first sample of a hop needs ``frame_length - 1`` more input
samples, so the stage reports ``latency = frame_length - 1`` samples; the
first ``latency`` output samples (the warm-up) are silence.  With an identity
:meth:`~StreamingSTFTStage.process_frames` the stage reconstructs its input
delayed by exactly that many samples (to float64 round-off, then float32).

Two options for the restoration stages:

* ``add_to_dry = True``: the returned spectra are a *correction* added to the
  (delayed, untouched) input, so "amount 0" / "wet 0" is bit-exactly
  transparent.
* ``analysis_channels`` > ``channels`` with :meth:`~StreamingSTFTStage.analysis_input`:
  the STFT sees extra side-chain channels (e.g. an exciter signal) next to the
  block; :meth:`~StreamingSTFTStage.process_frames` still returns ``channels``.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from ..audio import CHANNELS, SAMPLE_RATE
from ..errors import SettingsError
from ..stage import Stage

#: frames transformed per batch (bounds the memory of one call on a long block)
MAX_BATCH_FRAMES = 128


def sqrt_hann_pair(frame_length: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Analysis and synthesis windows (float64 ``(frame_length,)``) for ``hop``.

    Analysis: periodic sqrt-Hann.  Synthesis: the same divided by the constant
    overlap sum of ``analysis * synthesis`` at ``hop`` (COLA normalisation), so
    unmodified spectra reconstruct the input exactly.  Raises
    :class:`~engine.errors.SettingsError` unless ``frame_length / hop`` is an
    integer >= 2.
    """
    n, h = int(frame_length), int(hop)
    if h < 1 or n % h != 0 or n // h < 2:
        raise SettingsError(f"STFT frame_length ({n}) must be a multiple (>= 2x) of hop ({h})")
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    analysis = np.sqrt(hann)
    overlap_sum = hann.reshape(n // h, h).sum(axis=0)
    if not np.allclose(overlap_sum, overlap_sum[0], rtol=1e-12, atol=0.0):  # pragma: no cover - maths guard
        raise SettingsError("sqrt-Hann windows are not COLA at this hop")
    return analysis, analysis / overlap_sum[0]


class StreamingSTFTStage(Stage):
    """Base class of every spectral streaming stage (itself the identity STFT).

    Parameters: ``frame_length`` and ``hop`` in samples (``frame_length`` a
    multiple of ``hop``, >= 2 hops), ``channels`` of the blocks,
    ``sample_rate`` in Hz, ``analysis_channels`` the channels the STFT sees
    (default ``channels``; more when :meth:`analysis_input` adds side-chains).

    Subclasses override :meth:`process_frames` and, for their own frame state,
    :meth:`reset_spectral_state`: they call it at the end of their
    ``__init__`` (the base constructor only sets up the buffers) and
    :meth:`reset` calls it again.  Latency: ``frame_length - 1`` samples.
    """

    name = "stft"
    #: the processed spectra are a correction added to the delayed input
    add_to_dry: bool = False
    #: precision of the analysis, the FFTs and the overlap-add (``numpy.float64``: complex128
    #: spectra; ``numpy.float32``: complex64 spectra, float32 round-off in the output)
    fft_dtype = np.float64

    def __init__(self, frame_length: int = 2048, hop: int = 512, channels: int = CHANNELS,
                 sample_rate: int = SAMPLE_RATE, analysis_channels: int | None = None):
        self.frame_length = int(frame_length)
        self.hop = int(hop)
        self.channels = int(channels)
        self.analysis_channels = self.channels if analysis_channels is None else int(analysis_channels)
        self.sample_rate = int(sample_rate)
        self.analysis_window, self.synthesis_window = sqrt_hann_pair(self.frame_length, self.hop)
        self._dtype = np.dtype(self.fft_dtype)
        if self._dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise SettingsError(f"STFT fft_dtype must be float64 or float32, not {self._dtype}")
        self._win_a = self.analysis_window.astype(self._dtype)
        self._win_s = self.synthesis_window.astype(self._dtype)
        self.latency = self.frame_length - 1
        self._reset_buffers()

    # -- geometry -------------------------------------------------------------
    @property
    def bins(self) -> int:
        """Number of rfft bins per frame."""
        return self.frame_length // 2 + 1

    @property
    def bin_hz(self) -> float:
        """Frequency spacing of the bins in Hz."""
        return self.sample_rate / self.frame_length

    # -- state ------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all state: buffers, then the subclass's frame state."""
        self._reset_buffers()
        self.reset_spectral_state()

    def _reset_buffers(self) -> None:
        c, n = self.channels, self.frame_length
        self._history = np.zeros((self.analysis_channels, n), dtype=self._dtype)  # input [count - n, count)
        self._accumulator = np.zeros((c, n), dtype=self._dtype)  # OLA sums of the next frame span
        self._pending = np.zeros((c, self.latency), dtype=self._dtype)  # final, not yet returned
        self._dry = np.zeros((c, self.latency), dtype=np.float32)  # delayed input (add_to_dry)
        self._count = 0  # input samples received

    def reset_spectral_state(self) -> None:
        """Subclass hook: forget the spectral processing state."""

    # -- subclass hooks -----------------------------------------------------------
    def analysis_input(self, block: np.ndarray) -> np.ndarray:
        """Hook: the ``(analysis_channels, n)`` signal the STFT sees (default: the block)."""
        return block

    def process_frames(self, spectra: np.ndarray, frame_ends: np.ndarray) -> np.ndarray:
        """Hook: ``(frames, analysis_channels, bins)`` spectra in time order ->
        ``(frames, channels, bins)`` (default: identity)."""
        return spectra

    # -- streaming ----------------------------------------------------------------
    def _process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float32)
        wet = self._transform(self.analysis_input(x))
        if not self.add_to_dry:
            return wet.astype(np.float32)
        return (self._delayed_dry(x) + wet).astype(np.float32)

    def _delayed_dry(self, x: np.ndarray) -> np.ndarray:
        """The block's input delayed by ``latency`` samples (float32)."""
        n = x.shape[1]
        joined = np.concatenate([self._dry, x], axis=1)
        self._dry = joined[:, n:]
        return joined[:, :n]

    def _transform(self, signal: np.ndarray) -> np.ndarray:
        """STFT -> :meth:`process_frames` -> OLA of ``(analysis_channels, n)``;
        returns the ``(channels, n)`` output (``fft_dtype``), delayed by ``latency``."""
        n = signal.shape[1]
        joined = np.concatenate([self._history, signal.astype(self._dtype, copy=False)], axis=1)  # [count - N, count + n)
        first = self._count // self.hop + 1
        last = (self._count + n) // self.hop
        finished = [self._pending]
        for start in range(first, last + 1, MAX_BATCH_FRAMES):
            ends = np.arange(start, min(start + MAX_BATCH_FRAMES, last + 1), dtype=np.int64) * self.hop
            finished.extend(self._frames(joined, ends))
        self._history = joined[:, -self.frame_length:]
        self._count += n
        pending = np.concatenate(finished, axis=1) if len(finished) > 1 else self._pending
        self._pending = pending[:, n:]
        return pending[:, :n]

    def _frames(self, joined: np.ndarray, ends: np.ndarray) -> list[np.ndarray]:
        """Analyse, process and overlap-add the frames ending at ``ends`` (consecutive hops).

        Vectorised overlap-add: frame ``i`` lands at ``i * hop`` of one span
        buffer; its ``frame_length / hop`` hop-long pieces are added piece by
        piece, latest piece first, so every output sample sums its frames in
        time order, as a frame-by-frame accumulation would (bit-identical,
        whatever the batching).
        """
        n, h = self.frame_length, self.hop
        f = len(ends)
        o0 = int(ends[0] - self._count)  # frame i is joined[:, o0 + i*h : o0 + i*h + n]
        view = np.lib.stride_tricks.sliding_window_view(joined[:, o0:o0 + (f - 1) * h + n], n, axis=1)[:, ::h]
        frames = np.transpose(view, (1, 0, 2)) * self._win_a  # (F, C, N)
        fft = scipy.fft if self._dtype == np.float32 else np.fft  # scipy's keeps float32 (numpy's is slow there)
        spectra = fft.rfft(frames, axis=-1)
        spectra = self.process_frames(spectra, ends)
        frames = fft.irfft(spectra, n=n, axis=-1)
        frames *= self._win_s
        c = self.channels
        span = np.zeros((c, f * h + n), dtype=self._dtype)
        span[:, :n] = self._accumulator
        pieces = frames.reshape(f, c, n // h, h)
        for j in range(n // h - 1, -1, -1):  # piece j of frame i lands at (i + j) * h
            span[:, j * h:(j + f) * h] += np.transpose(pieces[:, :, j, :], (1, 0, 2)).reshape(c, f * h)
        self._accumulator = span[:, f * h:]
        first_final = int(np.searchsorted(ends, n))  # hops of frames ending before frame_length: pre-stream
        return [span[:, first_final * h:f * h]] if first_final < f else []
