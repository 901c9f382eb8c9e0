"""Push-based decoding of raw interleaved PCM bytes (websocket uploads)."""
from __future__ import annotations

import numpy as np

from engine.audio import SAMPLE_RATE
from engine.errors import EmptyAudioError, SettingsError, TruncatedAudioError

from .conform import WorkingFormatConverter
from .validation import validate_stream_format

#: supported raw sample formats: numpy dtype and the scale to [-1, 1)
PCM_FORMATS: dict[str, tuple[str, float]] = {
    "f32le": ("<f4", 1.0),
    "s16le": ("<i2", 1.0 / 32768.0),
}


class PcmPushDecoder:
    """Raw interleaved PCM bytes in (any split), 44.1 kHz stereo float32 blocks out.

    ``sample_rate`` in Hz and ``channels`` describe the incoming stream
    (validated like files: 8-384 kHz, 1-32 channels, else
    :class:`UnsupportedAudioError`); ``sample_format`` is ``"f32le"``
    (little-endian float32) or ``"s16le"`` (little-endian int16, scaled by
    1/32768).  Pieces may split a sample or a frame anywhere; the partial
    bytes wait for the next ``push``.

    ``push(data)`` returns a list of ``(2, block_size)`` float32 blocks at
    44100 Hz (``block_size = round(block_seconds * 44100)``), so the blocks
    depend only on the audio, never on how the bytes were cut.  ``finish()``
    returns the rest; it raises :class:`EmptyAudioError` if no audio came and
    :class:`TruncatedAudioError` if the stream stops inside a frame.  NaN/Inf
    float samples raise :class:`NonFiniteAudioError`.
    """

    def __init__(self, sample_rate: int, channels: int, sample_format: str = "f32le",
                 block_seconds: float = 1.0):
        if sample_format not in PCM_FORMATS:
            raise SettingsError(
                f"unknown PCM sample format {sample_format!r}; use one of {sorted(PCM_FORMATS)}",
                code="bad_pcm_format")
        if not block_seconds > 0:
            raise SettingsError(f"block_seconds must be > 0, got {block_seconds}")
        validate_stream_format(sample_rate, channels, "the uploaded stream")
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.sample_format = sample_format
        dtype, self._scale = PCM_FORMATS[sample_format]
        self._dtype = np.dtype(dtype)
        self.frame_bytes = self._dtype.itemsize * self.channels
        self.block_size = max(1, int(round(block_seconds * SAMPLE_RATE)))
        self._conv = WorkingFormatConverter(self.sample_rate, self.channels,
                                            block_size=self.block_size, where="the uploaded stream")
        self._rest = b""
        self.bytes_received = 0
        self.finished = False

    @property
    def frames_received(self) -> int:
        """Whole source frames received so far (per channel)."""
        return self.bytes_received // self.frame_bytes

    @property
    def position(self) -> int:
        """Samples handed out so far, at 44100 Hz."""
        return self._conv.position

    def push(self, data: bytes | bytearray | memoryview) -> list[np.ndarray]:
        """Add a piece of the byte stream; return the 44.1 kHz stereo blocks now complete."""
        if self.finished:
            raise RuntimeError("push() after finish()")
        data = bytes(data)
        if not data:
            return []
        self.bytes_received += len(data)
        buf = self._rest + data if self._rest else data
        whole = len(buf) - len(buf) % self.frame_bytes
        self._rest = buf[whole:]
        if not whole:
            return []
        x = np.frombuffer(buf, dtype=self._dtype, count=whole // self._dtype.itemsize)
        x = x.reshape(-1, self.channels).T.astype(np.float32)
        if self._scale != 1.0:
            x *= np.float32(self._scale)
        return self._conv.push(x)

    def finish(self) -> list[np.ndarray]:
        """End of stream: the resampler tail and the last, shorter block."""
        if self.finished:
            return []
        self.finished = True
        if self._rest:
            raise TruncatedAudioError(
                f"the uploaded stream ended inside a sample frame ({len(self._rest)} stray "
                f"byte(s); frames are {self.frame_bytes} bytes for {self.channels} channel(s) "
                f"of {self.sample_format}). Check the declared format and resend.")
        if self._conv.consumed == 0:
            raise EmptyAudioError("the uploaded stream contained no audio samples.")
        return self._conv.finish()
