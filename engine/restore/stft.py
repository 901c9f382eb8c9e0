"""A chunk-size invariant streaming STFT for the restoration stages.

:class:`StreamingSTFT` cuts an input stream into frames of ``n_fft`` samples
every ``hop`` samples (frame ``j`` covers input samples
``[(j + 1) * hop - n_fft, (j + 1) * hop)``; samples before the stream start are
zeros), hands the spectra to a frame callback strictly in stream order, and
overlap-adds the inverse transforms.  Frame-recursive state (noise profiles,
reverb estimates, adaptive filters) therefore carries across blocks and the
result does not depend on how the input was cut into blocks.

Latency is ``n_fft - 1`` samples: the smallest delay at which every output
sample is complete whatever the block size (1-sample blocks included).

:class:`StreamingSTFTStage` is the :class:`~engine.stage.Stage` built on it.
The restoration stages only *add* a correction to the signal: they return the
correction spectrum and set ``add_to_dry = True``, so the output is
``input delayed by latency + istft(correction)``; "amount 0" / "wet 0" is then
bit-exactly transparent.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..audio import CHANNELS
from ..errors import SettingsError
from ..stage import Stage

FrameCallback = Callable[[np.ndarray], np.ndarray]


def sqrt_hann(n_fft: int) -> np.ndarray:
    """Periodic square-root Hann window, shape ``(n_fft,)`` float64."""
    n = np.arange(n_fft)
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft))


def check_stft_params(n_fft: int, hop: int) -> None:
    """Raise :class:`SettingsError` unless ``n_fft`` is even and a multiple (>= 2x) of ``hop``."""
    if n_fft <= 0 or n_fft % 2 or hop <= 0 or n_fft % hop or n_fft // hop < 2:
        raise SettingsError(
            f"STFT needs an even n_fft that is a multiple (>= 2x) of hop; got n_fft={n_fft}, hop={hop}"
        )


class StreamingSTFT:
    """Streaming STFT -> frame callback -> overlap-add ISTFT.

    Parameters
    ----------
    n_fft, hop:
        frame length and advance in samples (``n_fft / hop`` integer >= 2).
    in_channels, out_channels:
        channel counts of the pushed signal and of the callback's result.
    callback:
        ``spec (in_channels, F, T) complex128 -> (out_channels, F, T)`` with
        ``F = n_fft // 2 + 1``; called with consecutive frames in stream order.

    :meth:`push` takes ``(in_channels, n)`` and returns ``(out_channels, n)``
    float64, delayed by :attr:`latency` = ``n_fft - 1`` samples.
    """

    #: frames transformed at once (bounds memory for huge blocks)
    max_batch_frames: int = 128

    def __init__(self, n_fft: int, hop: int, in_channels: int, out_channels: int,
                 callback: FrameCallback):
        check_stft_params(n_fft, hop)
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.callback = callback
        self.latency = self.n_fft - 1
        self.n_bins = self.n_fft // 2 + 1
        w = sqrt_hann(self.n_fft)
        self.window = w
        # synthesis window: w / (sum of w^2 over the overlapping frames)
        overlap_sum = np.zeros(self.hop)
        for k in range(self.n_fft // self.hop):
            overlap_sum += (w * w)[k * self.hop:(k + 1) * self.hop]
        self._syn = w / np.tile(overlap_sum, self.n_fft // self.hop)
        self.frames_done = 0
        self.reset()

    def reset(self) -> None:
        """Forget buffered samples (not the callback's own state)."""
        # the last n_fft - hop input samples plus what arrived since the last frame
        self._in = np.zeros((self.in_channels, self.n_fft - self.hop), dtype=np.float64)
        self._acc = np.zeros((self.out_channels, self.n_fft), dtype=np.float64)
        # finished output samples not yet returned (pre-filled: warm-up silence)
        self._out = np.zeros((self.out_channels, self.hop - 1), dtype=np.float64)
        self.frames_done = 0

    def push(self, x: np.ndarray) -> np.ndarray:
        """Consume ``x`` ``(in_channels, n)``; return ``(out_channels, n)`` float64."""
        n = x.shape[1]
        buf = np.concatenate([self._in, np.asarray(x, dtype=np.float64)], axis=1)
        n_frames = (buf.shape[1] - (self.n_fft - self.hop)) // self.hop
        if n_frames > 0:
            done = np.empty((self.out_channels, n_frames * self.hop), dtype=np.float64)
            acc = self._acc
            h = self.hop
            for start in range(0, n_frames, self.max_batch_frames):
                t = min(self.max_batch_frames, n_frames - start)
                idx = (start + np.arange(t))[:, None] * h + np.arange(self.n_fft)[None, :]
                frames = buf[:, idx] * self.window  # (C, t, n_fft)
                spec = np.fft.rfft(frames, axis=-1).transpose(0, 2, 1)  # (C, F, t)
                out_spec = self.callback(spec)
                self.frames_done += t
                y = np.fft.irfft(np.asarray(out_spec).transpose(0, 2, 1), n=self.n_fft, axis=-1)
                y *= self._syn
                for j in range(t):
                    acc += y[:, j]
                    o = (start + j) * h
                    done[:, o:o + h] = acc[:, :h]
                    acc[:, :-h] = acc[:, h:]
                    acc[:, -h:] = 0.0
            self._out = np.concatenate([self._out, done], axis=1)
            buf = buf[:, n_frames * h:]
        self._in = buf
        out = self._out[:, :n]
        self._out = self._out[:, n:]
        return out


class StreamingSTFTStage(Stage):
    """Stage base: streaming STFT with a per-frame spectral process.

    Parameters
    ----------
    n_fft, hop:
        frame length and advance in samples (``n_fft / hop`` integer >= 2).
    channels:
        channel count of the blocks.

    Subclasses implement :meth:`process_frames` ``(spec (C, F, T) complex128)
    -> (C, F, T)`` and :meth:`reset_state` for their own frame state (call it
    at the end of their ``__init__``; :meth:`reset` calls it too).  With
    ``add_to_dry = True`` the returned spectrum is a correction added to the
    (delayed, untouched) input.  Latency: ``n_fft - 1`` samples.
    """

    add_to_dry: bool = False

    def __init__(self, n_fft: int = 1024, hop: int = 256, channels: int = CHANNELS,
                 extra_in_channels: int = 0):
        self.channels = int(channels)
        self.stft = StreamingSTFT(n_fft, hop, self.channels + extra_in_channels, self.channels,
                                  self.process_frames)
        self.n_fft = self.stft.n_fft
        self.hop = self.stft.hop
        self.n_bins = self.stft.n_bins
        self.latency = self.stft.latency
        self._dry = np.zeros((self.channels, self.latency), dtype=np.float32)

    def reset(self) -> None:
        """Forget all state (buffers and the subclass' frame state)."""
        self.stft.reset()
        self._dry = np.zeros((self.channels, self.latency), dtype=np.float32)
        self.reset_state()

    def reset_state(self) -> None:
        """Subclass hook: forget frame-recursive state."""

    def process_frames(self, spec: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def analysis_input(self, x: np.ndarray) -> np.ndarray:
        """Hook: the signal fed to the STFT (default: the block itself)."""
        return x

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float32)
        wet = self.stft.push(self.analysis_input(x))
        if not self.add_to_dry:
            return wet.astype(np.float32)
        n = x.shape[1]
        joined = np.concatenate([self._dry, x], axis=1)
        self._dry = joined[:, n:]
        return (joined[:, :n] + wet).astype(np.float32)
