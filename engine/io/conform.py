"""Conform decoded audio to the engine's working format, block by block."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from engine.audio import CHANNELS, SAMPLE_RATE, check_finite
from engine.errors import UnsupportedAudioError

from .channels import StereoDownmixer, upmix_mono
from .reblock import FixedBlocker
from .resample import StreamResampler
from .validation import validate_stream_format

#: largest accepted sample magnitude (+60 dBFS): float files beyond it are not
#: recordings (a float export scaled by 1e6, 1e30 garbage) and would overflow the DSP
MAX_SAMPLE_MAGNITUDE = 1000.0


class WorkingFormatConverter:
    """Source-format blocks in, fixed-size 44.1 kHz stereo float32 blocks out.

    ``push(block)`` takes ``(channels, n)`` samples at ``sample_rate`` Hz (any
    float or already-scaled data) and returns a list of ``(2, block_size)``
    float32 blocks at :data:`engine.audio.SAMPLE_RATE`; ``finish()`` returns
    the rest (the last block may be shorter).  Steps: NaN/Inf check
    (:class:`NonFiniteAudioError` naming the time in the source), level check
    (samples beyond :data:`MAX_SAMPLE_MAGNITUDE`, +60 dBFS:
    :class:`UnsupportedAudioError`), downmix
    (:mod:`engine.io.channels`; mono stays mono until after resampling),
    streaming resampling (libsoxr HQ), re-blocking.  State is O(block_size).
    """

    def __init__(self, sample_rate: int, channels: int, channel_names: Sequence[str] | None = None,
                 block_size: int = SAMPLE_RATE, where: str = "input"):
        validate_stream_format(sample_rate, channels, where)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.where = where
        self._mix = StereoDownmixer(self.channels, channel_names, keep_mono=True)
        self._resampler = StreamResampler(self.sample_rate, SAMPLE_RATE, self._mix.out_channels)
        self._blocker = FixedBlocker(block_size, CHANNELS)
        self.consumed = 0  # source frames taken in
        self.position = 0  # working-rate samples handed out

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        """Add ``(channels, n)`` source samples; return finished working blocks."""
        if block.shape[1] == 0:
            return []
        check_finite(block, where=f"{self.where} (near {self.consumed / self.sample_rate:.2f} s)")
        peak = float(np.max(np.abs(block)))
        if peak > MAX_SAMPLE_MAGNITUDE:
            raise UnsupportedAudioError(
                f"{self.where} holds samples up to {peak:.3g} (+{20 * np.log10(peak):.0f} dBFS) near "
                f"{self.consumed / self.sample_rate:.2f} s; audio is expected within about +-1 (0 dBFS). "
                "It is probably a float file exported with a wrong scale: re-export it normalised.")
        self.consumed += block.shape[1]
        return self._emit(self._blocker.push(self._to_stereo(self._resampler.process(self._mix.process(block)))))

    def finish(self) -> list[np.ndarray]:
        """End of stream: the resampler's tail and the last (short) block."""
        out = self._blocker.push(self._to_stereo(self._resampler.flush()))
        return self._emit(out + self._blocker.finish())

    def _to_stereo(self, block: np.ndarray) -> np.ndarray:
        return upmix_mono(block) if block.shape[0] == 1 else block

    def _emit(self, blocks: list[np.ndarray]) -> list[np.ndarray]:
        for b in blocks:
            self.position += b.shape[1]
        return blocks
