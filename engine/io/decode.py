"""Streaming decode of audio files to the engine's working format.

``open_audio(path)`` returns an :class:`AudioDecoder`: an iterator of float32
``(2, n)`` blocks at 44100 Hz, about ``block_seconds`` long each (exactly
``round(block_seconds * 44100)`` samples, the last one shorter), whatever the
source's rate, channel count or container.  Memory stays flat however long
the recording: one block of source audio, one of output, and the resampler's
filter state.

Backends (:mod:`engine.io.decoders`): libsndfile for WAV, FLAC, Ogg
(Vorbis/Opus), MP3, AIFF...; FFmpeg via PyAV for m4a/AAC, video files with an
audio track and anything else libsndfile cannot open.  Conversion: channels
per :mod:`engine.io.channels` (mono duplicated; more than two channels
downmixed with -3 dB centre/surrounds, LFE dropped, normalised against
clipping), then libsoxr HQ streaming resampling (:mod:`engine.io.resample`).

Bad input raises typed errors (all :class:`engine.errors.InputError`):

==========================  =====================  ====================================
error                       code                   when
==========================  =====================  ====================================
AudioFileNotFoundError      file_not_found         open: no such path
AudioFileUnreadableError    file_unreadable        open: a folder, or no read permission
EmptyFileError              empty_audio            open: zero-byte file (also a
                                                   TruncatedAudioError)
EmptyAudioError             empty_audio            open (or first block): no samples
NotAudioError               not_audio              open: neither backend recognises it
UnsupportedAudioError       unsupported_audio      open: rate outside 8-384 kHz,
                                                   0 or > 32 channels, an encoding no
                                                   backend decodes (unknown WAV format
                                                   tag, 0-bit samples, 16-bit float),
                                                   not a regular file (FIFO, device)
TruncatedAudioError         truncated_audio        open: WAV data chunk shorter than its
                                                   header, WAV header cut, Ogg without
                                                   end-of-stream page, audio container
                                                   that cannot be opened (m4a without
                                                   its index); at the block where it
                                                   shows: decoder error mid-stream,
                                                   FLAC / MP3 (Xing) / m4a shorter than
                                                   stated
NonFiniteAudioError         non_finite_samples     at the block holding NaN/Inf
UnsupportedAudioError       unsupported_audio      at the block holding samples beyond
                                                   +-1000 (+60 dBFS: a float file with
                                                   a wrong scale)
==========================  =====================  ====================================

Truncation that cannot be seen: a raw MP3 without a Xing/Info header, ADTS
AAC, AIFF/CAF and other headerless-length streams cut between frames decode
as a shorter, valid recording.  With ``allow_truncated=True`` a truncated
file decodes as far as it goes instead of raising (``decoder.truncated`` and
``decoder.truncation_message`` tell), so a user can salvage a cut recording.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from engine.audio import SAMPLE_RATE
from engine.errors import EmptyAudioError, NotAudioError, TruncatedAudioError, UnsupportedAudioError

from .conform import WorkingFormatConverter
from .cstderr import captured_c_stderr
from .exceptions import AudioFileNotFoundError, AudioFileUnreadableError, EmptyFileError
from .headers import ogg_is_complete, read_head, read_wav_header, sniff_container
from .info import AudioInfo
from .pcm import PcmPushDecoder
from .decoders import PyAVDecoder, SoundFileDecoder
from .validation import validate_stream_format

__all__ = ["AudioInfo", "AudioDecoder", "PcmPushDecoder", "probe", "open_audio"]

BackendDecoder = SoundFileDecoder | PyAVDecoder


class AudioDecoder:
    """Iterator of working-format blocks decoded from one file.

    Yields float32 ``(2, n)`` blocks at 44100 Hz, ``n = block_size`` except
    for the last block.  Use as a context manager (or call :meth:`close`) to
    release the file.

    Attributes: ``info`` (:class:`AudioInfo` of the source), ``position``
    (samples yielded so far, at 44100 Hz), ``duration_s`` (source duration
    estimate in seconds, or ``None``), ``block_size`` (samples), ``truncated``.
    """

    def __init__(self, backend: BackendDecoder, block_seconds: float = 1.0):
        if not block_seconds > 0:
            raise ValueError(f"block_seconds must be > 0, got {block_seconds}")
        self._backend = backend
        self.info: AudioInfo = backend.info
        self.block_size = max(1, int(round(block_seconds * SAMPLE_RATE)))
        self._read_frames = max(1, int(round(block_seconds * self.info.sample_rate)))
        self.position = 0
        self._converter = WorkingFormatConverter(
            self.info.sample_rate, self.info.channels, self.info.channel_names,
            block_size=self.block_size, where=os.path.basename(self.info.path))
        self._blocks = self._generate()
        self.closed = False

    @property
    def duration_s(self) -> float | None:
        """Source duration in seconds as the container states it (``None`` if unknown)."""
        return self.info.duration_s

    @property
    def truncated(self) -> bool:
        """True once a truncation was found (only without raising: ``allow_truncated``)."""
        return self._backend.truncated

    @property
    def truncation_message(self) -> str | None:
        return self._backend.truncation_message

    def _generate(self) -> Iterator[np.ndarray]:
        conv = self._converter
        for native in self._backend.blocks(self._read_frames):
            yield from conv.push(native)
        yield from conv.finish()
        if conv.consumed == 0:
            raise EmptyAudioError(
                f"{os.path.basename(self.info.path)} contains no audio samples (zero-length "
                "recording). Check that the right file was chosen.")

    def __iter__(self) -> "AudioDecoder":
        return self

    def __next__(self) -> np.ndarray:
        if self.closed:
            raise StopIteration
        block = next(self._blocks)
        self.position += block.shape[1]
        return block

    def close(self) -> None:
        """Release the file (idempotent)."""
        if not self.closed:
            self.closed = True
            self._blocks.close()
            self._backend.close()

    def __enter__(self) -> "AudioDecoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return (f"AudioDecoder({i.path!r}, {i.container}/{i.codec}, {i.sample_rate} Hz, "
                f"{i.channels} ch, position={self.position})")


def open_audio(path: str | os.PathLike, block_seconds: float = 1.0, *,
               allow_truncated: bool = False) -> AudioDecoder:
    """Open ``path`` for streaming decode to 44.1 kHz stereo float32 blocks.

    ``block_seconds``: length of each yielded block in seconds (at 44100 Hz).
    Raises the typed errors listed in the module docstring; problems visible
    in the headers are raised here, before any audio is decoded.
    """
    return AudioDecoder(_open_backend(path, allow_truncated), block_seconds)


def probe(path: str | os.PathLike, *, allow_truncated: bool = False) -> AudioInfo:
    """Describe ``path`` without decoding its audio.

    Raises like :func:`open_audio` for every problem visible before decoding
    (missing, not audio, empty, unsupported rate/channels, truncation seen in
    the headers), so a job can fail before doing any work.
    """
    backend = _open_backend(path, allow_truncated)
    try:
        return backend.info
    finally:
        backend.close()


# --------------------------------------------------------------------------- opening


def _open_backend(path: str | os.PathLike, allow_truncated: bool) -> BackendDecoder:
    p = Path(path)
    name = p.name or str(p)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise AudioFileNotFoundError(f"{p}: no such file. Check the path and file name.") from None
    except OSError as e:
        raise AudioFileUnreadableError(f"{p}: cannot read it ({e.strerror}).") from None
    if p.is_dir():
        raise AudioFileUnreadableError(f"{p} is a folder, not an audio file.")
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block open() forever; devices never end
        raise UnsupportedAudioError(
            f"{p} is not a regular file (a pipe, socket or device): Resonate reads recordings "
            "from files. Save the stream to a file first.")
    try:
        head = read_head(p)
    except OSError as e:
        raise AudioFileUnreadableError(
            f"{p}: cannot read it ({e.strerror}). Check the file's permissions.") from None
    if st.st_size == 0:
        raise EmptyFileError(
            f"{name} is empty (0 bytes): the copy or upload probably failed. Copy the file again.")

    kind = sniff_container(head)
    cut_message: str | None = None
    if kind == "wav":
        cut_message = _check_wav(p, name)
    elif kind == "ogg" and not ogg_is_complete(p):
        cut_message = (f"{name} ends without the Ogg end-of-stream page: the file is truncated "
                       "(cut off while copying, uploading or recording). Re-copy the complete file.")
    if cut_message and not allow_truncated:
        raise TruncatedAudioError(cut_message)

    backend = _try_soundfile(p, allow_truncated)
    sf_said_empty = backend == "empty"
    if not isinstance(backend, SoundFileDecoder):
        backend = _try_pyav(p, name, kind, sf_said_empty, allow_truncated)
    if cut_message:
        backend.truncated, backend.truncation_message = True, cut_message
    return backend


def _check_wav(p: Path, name: str) -> str | None:
    """Validate a WAV header up front; return a truncation message or ``None``."""
    hdr = read_wav_header(p)
    if not hdr.complete:
        raise TruncatedAudioError(
            f"{name}: the WAV header is cut short (no complete 'fmt ' and 'data' chunks): the "
            "file is truncated or damaged. Re-copy or re-export it.")
    validate_stream_format(hdr.sample_rate, hdr.channels, name)
    if hdr.declared_data_bytes is None and hdr.available_data_bytes == 0:
        raise EmptyAudioError(f"{name} contains no audio samples (its data chunk is empty).")
    if hdr.is_truncated:
        present = hdr.available_data_bytes / max(1, hdr.block_align) / hdr.sample_rate
        return (f"{name} is truncated: its header declares "
                f"{present + (hdr.missing_seconds or 0.0):.2f} s of audio but the file holds "
                f"only {present:.2f} s (cut off while copying, uploading or recording). "
                "Re-copy the complete file.")
    return None


def _try_soundfile(p: Path, allow_truncated: bool) -> SoundFileDecoder | str | None:
    """A libsndfile decoder, ``"empty"`` if it opens with zero frames, ``None`` if it cannot."""
    try:
        with captured_c_stderr(p.name):  # libmpg123 chatter while sniffing a damaged MP3
            handle = sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None
    if handle.frames <= 0:
        # zero frames: truly empty, or a stream libsndfile cannot size; FFmpeg decides
        handle.close()
        return "empty"
    try:
        validate_stream_format(handle.samplerate, handle.channels, p.name)
    except Exception:
        handle.close()
        raise
    return SoundFileDecoder(p, handle, allow_truncated)


def _try_pyav(p: Path, name: str, kind: str | None, sf_said_empty: bool,
              allow_truncated: bool) -> PyAVDecoder:
    import av  # FFmpeg only for what libsndfile cannot read: its import costs ~0.25 s of start-up

    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
        if sf_said_empty:
            raise EmptyAudioError(f"{name} contains no audio samples (zero-length recording).") from None
        if kind is not None:
            raise TruncatedAudioError(  # plain words: the decoder's own error (and path) stay out
                f"{name} looks like {kind} audio but cannot be opened: it is truncated "
                "or corrupt (an m4a/mp4 cut off before its index, a damaged header). "
                "Re-copy or re-export it.") from None
        raise NotAudioError(
            f"{name} is not a recording in a format Resonate can read. "
            "Use WAV, FLAC, MP3, Ogg, M4A/AAC or a video file with sound.") from None
    try:
        if not container.streams.audio:
            raise NotAudioError(
                f"{name} contains no audio stream (format: {container.format.long_name}). "
                "Choose a recording with sound.")
        decoder = PyAVDecoder(p, container, allow_truncated)
        validate_stream_format(decoder.info.sample_rate, decoder.info.channels, name)
        if sf_said_empty and not decoder.info.frames:
            raise EmptyAudioError(f"{name} contains no audio samples (zero-length recording).")
        return decoder
    except BaseException:
        container.close()
        raise
