"""Streaming audio I/O: the only part of the engine that touches files.

* :mod:`engine.io.decode` - ``open_audio`` / ``AudioDecoder`` (any file ->
  44.1 kHz stereo float32 blocks), ``probe``, ``PcmPushDecoder`` (raw PCM
  bytes pushed in pieces -> blocks).
* :mod:`engine.io.decoders` - the backends behind ``AudioDecoder``:
  ``SoundFileDecoder`` (libsndfile) and ``PyAVDecoder`` (FFmpeg).
* :mod:`engine.io.encode` - ``AudioWriter`` (blocks -> WAV/FLAC/MP3/Ogg
  Vorbis/Opus, progressive and atomic, TPDF-dithered), ``check_writable``,
  ``export_format_for`` (the format an output name asks for).
* :mod:`engine.io.resample` - ``StreamResampler`` (libsoxr, streaming).
* :mod:`engine.io.channels` - the downmix to stereo.

Nothing here holds a whole recording in memory.
"""
from .decode import AudioDecoder, AudioInfo, PcmPushDecoder, open_audio, probe
from .encode import AudioWriter, check_writable
from .exceptions import (
    AudioFileNotFoundError,
    AudioFileUnreadableError,
    EmptyFileError,
    UnsupportedExportError,
)
from .resample import StreamResampler

__all__ = [
    "AudioDecoder", "AudioInfo", "PcmPushDecoder", "open_audio", "probe",
    "AudioWriter", "check_writable", "StreamResampler",
    "AudioFileNotFoundError", "AudioFileUnreadableError", "EmptyFileError", "UnsupportedExportError",
]
