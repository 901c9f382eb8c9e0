"""Decoding backends: native-format blocks from a file, streamed (the
"decoders" behind :class:`engine.io.decode.AudioDecoder`).

Two backends, same interface (``info``, ``blocks(frames)``, ``close()``,
``truncated``):

* :class:`SoundFileDecoder` - libsndfile (WAV, FLAC, Ogg/Vorbis/Opus, MP3,
  AIFF, ...), read ``frames`` at a time with ``SoundFile.read``.
* :class:`PyAVDecoder` - FFmpeg through PyAV for everything else (m4a/AAC,
  video files with an audio track, WMA, ...), decoded packet by packet.

Both yield float32 ``(source_channels, n)`` blocks at the source rate and hold
no more than one block (or one codec frame) at a time.  Truncation they can
see while decoding (a decoder error mid-stream, or fewer frames than a
container that states an exact length) raises :class:`TruncatedAudioError`
at that point, or, with ``allow_truncated``, ends the stream early and sets
``truncated`` / ``truncation_message``.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import soundfile as sf

from engine.errors import TruncatedAudioError, UnsupportedAudioError

from .cstderr import captured_c_stderr
from .headers import mp3_has_length_header
from .info import AudioInfo


class _TruncationPolicy:
    """Shared "raise, or stop and remember" handling of a truncated stream."""

    allow_truncated: bool = False
    truncated: bool = False
    truncation_message: str | None = None

    def _truncated(self, message: str) -> None:
        if not self.allow_truncated:
            raise TruncatedAudioError(message)
        self.truncated = True
        self.truncation_message = message


# --------------------------------------------------------------------------- libsndfile

#: lossy formats whose stated length may differ from the decoded one by up to
#: this many frames (decoder delay / padding) without meaning truncation
_LOSSY_LENGTH_SLACK = 2 * 1152


class SoundFileDecoder(_TruncationPolicy):
    """A file libsndfile can open, read ``frames`` at a time (float32)."""

    def __init__(self, path: str | os.PathLike, handle: sf.SoundFile, allow_truncated: bool = False):
        self.path = str(path)
        self._f = handle
        self.allow_truncated = allow_truncated
        fmt = handle.format.upper()
        frames = int(handle.frames)
        self.info = AudioInfo(
            path=self.path, container="wav" if fmt == "WAVEX" else fmt.lower(), codec=handle.subtype.lower(),
            sample_rate=int(handle.samplerate), channels=int(handle.channels),
            frames=frames, duration_s=frames / handle.samplerate if handle.samplerate else None,
            backend="soundfile")
        # the stated length can be trusted to reveal a cut file only for these
        if fmt == "FLAC" and frames > 0:
            self._check_length_slack: int | None = 0
        elif fmt == "MP3" and mp3_has_length_header(path):
            self._check_length_slack = _LOSSY_LENGTH_SLACK
        else:
            self._check_length_slack = None
        self._quiet = fmt == "MP3"  # libmpg123 prints resync notes to descriptor 2

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Yield ``(channels, <=frames)`` float32 blocks until the end of the file."""
        done = 0
        rate = self.info.sample_rate
        while True:
            try:
                data = self._read(frames)
            except (sf.LibsndfileError, RuntimeError):
                self._truncated(
                    f"{os.path.basename(self.path)}: decoding failed at {done / rate:.2f} s. "
                    "The file is truncated or corrupt; re-copy or re-export it.")
                return
            if data.shape[0] == 0:
                break
            done += data.shape[0]
            yield np.ascontiguousarray(data.T)
        expected = self.info.frames or 0
        if self._check_length_slack is not None and done < expected - self._check_length_slack:
            self._truncated(
                f"{os.path.basename(self.path)} ends after {done / rate:.2f} s but its header "
                f"says {expected / rate:.2f} s: the file is truncated (cut off while copying, "
                "uploading or recording). Re-copy the complete file.")

    def _read(self, frames: int) -> np.ndarray:
        """The next ``frames`` frames as float32 ``(n, channels)``, ``n < frames`` at the end.

        Calls ``sf_readf_float`` directly: ``SoundFile.read`` follows every
        read with an absolute ``sf_seek`` to where it already is, and for MP3
        that restarts libmpg123 without its bit reservoir, so each block
        boundary loses up to several frames of audio (zeros), libsndfile 1.2.2.
        """
        out = np.empty((frames, self.info.channels), dtype=np.float32)
        ptr = sf._ffi.cast("float *", out.__array_interface__["data"][0])
        if self._quiet:
            with captured_c_stderr(os.path.basename(self.path)):
                n = sf._snd.sf_readf_float(self._f._file, ptr, frames)
        else:
            n = sf._snd.sf_readf_float(self._f._file, ptr, frames)
        err = sf._snd.sf_error(self._f._file)
        if err != 0:
            raise sf.LibsndfileError(err)
        return out[:n]

    def close(self) -> None:
        self._f.close()


# --------------------------------------------------------------------------- FFmpeg / PyAV

_SAMPLE_SCALE = {"u8": None, "s16": 1.0 / 32768.0, "s32": 1.0 / 2147483648.0,
                 "s64": 1.0 / 9223372036854775808.0, "flt": None, "dbl": None}

#: FFmpeg demuxers whose stated stream duration is exact (sample-accurate)
_EXACT_LENGTH_DEMUXERS = ("mov", "mp4", "m4a", "ogg", "flac", "wav", "w64", "aiff", "caf")

#: decoded frames may exceed an exact stated length by encoder padding; beyond
#: this many frames the surplus is treated as audio
_PADDING_SLACK = 4096


def frame_to_array(frame: av.AudioFrame, channels: int) -> np.ndarray:
    """A decoded PyAV audio frame as float32 ``(channels, samples)`` in [-1, 1]."""
    name = frame.format.name
    base = name[:-1] if name.endswith("p") else name
    if base not in _SAMPLE_SCALE:
        raise UnsupportedAudioError(f"decoded sample format {name!r} is not supported")
    a = _s64_array(frame, channels) if base == "s64" else frame.to_ndarray()
    if not frame.format.is_planar:
        a = a.reshape(-1, channels).T
    if base == "u8":
        return ((a.astype(np.float32) - 128.0) / 128.0)
    if base in ("flt", "dbl"):
        return np.ascontiguousarray(a, dtype=np.float32)
    return (a.astype(np.float64) * _SAMPLE_SCALE[base]).astype(np.float32)


def _s64_array(frame: av.AudioFrame, channels: int) -> np.ndarray:
    """64-bit integer samples read from the frame's planes (PyAV has no numpy view of s64).

    Planar: ``(channels, samples)``; packed: ``(1, samples * channels)`` interleaved,
    as ``to_ndarray`` gives the other formats.
    """
    n = frame.samples
    if frame.format.is_planar:
        return np.stack([np.frombuffer(bytes(pl), dtype="<i8", count=n) for pl in frame.planes[:channels]])
    return np.frombuffer(bytes(frame.planes[0]), dtype="<i8", count=n * channels)[None, :]


class PyAVDecoder(_TruncationPolicy):
    """The first audio stream of a container FFmpeg can open, decoded frame by frame."""

    def __init__(self, path: str | os.PathLike, container: av.container.InputContainer,
                 allow_truncated: bool = False):
        self.path = str(path)
        self._c = container
        self.allow_truncated = allow_truncated
        self._stream = container.streams.audio[0]
        cc = self._stream.codec_context
        if cc is None:  # FFmpeg has no decoder for this codec (unknown WAV format tag, 0-bit PCM ...)
            raise UnsupportedAudioError(
                f"{os.path.basename(self.path)}: its audio encoding is not one Resonate can decode "
                "(an unknown WAV format tag, 0 bits per sample, or a float tag with 16 bits). "
                "Convert it to WAV, FLAC or MP3 first.")
        rate = int(cc.sample_rate or self._stream.rate or 0)
        layout = cc.layout
        channels = int(layout.nb_channels if layout is not None else cc.channels)
        names = tuple(ch.name for ch in layout.channels) if layout is not None else None
        demuxers = container.format.name.split(",")
        ext = os.path.splitext(self.path)[1].lower().lstrip(".")
        cname = ext if ext in demuxers else demuxers[0]
        frames: int | None = None
        if self._stream.duration and self._stream.time_base and rate:
            frames = int(round(float(self._stream.duration * self._stream.time_base) * rate))
        elif container.duration and rate:
            import av  # loaded already: the container came from av.open

            frames = int(round(container.duration / av.time_base * rate))
        self._exact = frames is not None and bool(self._stream.duration) and any(
            d in _EXACT_LENGTH_DEMUXERS for d in demuxers)
        self.info = AudioInfo(
            path=self.path, container=cname, codec=cc.name, sample_rate=rate, channels=channels,
            frames=frames, duration_s=frames / rate if frames is not None and rate else None,
            backend="pyav", channel_names=names)

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Yield float32 ``(channels, n)`` blocks, one per decoded codec frame.

        ``frames`` is only a hint here (codec frames are ~1024-4096 samples).
        Encoder padding past an exact stated length (AAC) is dropped.
        """
        rate, channels = self.info.sample_rate, self.info.channels
        end = self.info.frames if self._exact else None  # stated length, trusted
        import av  # loaded already: the container came from av.open (PyAV is imported on first use)

        done = 0
        surplus: list[np.ndarray] = []  # decoded past ``end``: padding unless there is a lot
        surplus_n = 0
        try:
            for packet in self._c.demux(self._stream):
                for frame in packet.decode():
                    if frame.sample_rate != rate or frame.layout.nb_channels != channels:
                        raise UnsupportedAudioError(
                            f"{os.path.basename(self.path)} changes sample rate or channel count "
                            f"mid-stream (at {done / rate:.2f} s); convert it to a plain WAV or "
                            "FLAC first.")
                    block = frame_to_array(frame, channels)
                    n = block.shape[1]
                    if end is None:
                        done += n
                        yield block
                        continue
                    keep = min(n, max(0, end - done))
                    done += n
                    if keep:
                        yield np.ascontiguousarray(block[:, :keep])
                    if keep < n:
                        surplus.append(np.ascontiguousarray(block[:, keep:]))
                        surplus_n += n - keep
                        if surplus_n > _PADDING_SLACK:  # the stated length was not exact
                            yield from surplus
                            surplus, end = [], None
        except av.FFmpegError:
            self._truncated(
                f"{os.path.basename(self.path)}: decoding failed at {done / rate:.2f} s. "
                "The file is truncated or corrupt; re-copy or re-export it.")
            return
        if end is not None and done < end - _PADDING_SLACK:
            self._truncated(
                f"{os.path.basename(self.path)} ends after {done / rate:.2f} s but its header says "
                f"{self.info.frames / rate:.2f} s: the file is truncated (cut off while copying, "
                "uploading or recording). Re-copy the complete file.")

    def close(self) -> None:
        self._c.close()
