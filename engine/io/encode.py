"""Progressive, atomic export of working audio to WAV, FLAC, MP3, Ogg Vorbis or Opus.

:class:`AudioWriter` takes the engine's float32 ``(2, n)`` 44.1 kHz blocks
and writes them as they come (memory flat), optionally resampled (libsoxr
VHQ) to another output rate, quantised with seeded TPDF dither for integer
formats, into a temporary file beside the destination that replaces it only
when :meth:`AudioWriter.close` succeeds.

==========  ===========  ==========================================
format      bit_depth    written as
==========  ===========  ==========================================
wav         16 / 24      PCM_16 / PCM_24, TPDF dither, clipped to [-1, 1)
wav         32           FLOAT (IEEE 32-bit), no dither, not clipped
flac        16 / 24      PCM_16 / PCM_24, TPDF dither, clipped
flac        32           :class:`UnsupportedExportError` (FLAC is integer)
mp3         ignored      MPEG-1 Layer III via LAME, VBR quality V0 (about
                         250 kbps) or constant ``mp3_bitrate`` kbit/s,
                         clipped to [-1, 1]; rates 8-48 kHz
ogg         ignored      Ogg Vorbis, quality 0.7 (about 200 kbps),
                         clipped to [-1, 1]
opus        ignored      Ogg Opus (libsndfile's default bitrate), clipped;
                         rates 8, 12, 16, 24 or 48 kHz only
==========  ===========  ==========================================

WAV, FLAC and MP3 output is deterministic: the same audio and ``dither_seed``
give the same bytes, however the stream was cut into blocks (Ogg files carry
a random stream serial number, so their bytes differ; the audio does not).
The timestamp of the float
WAV ``PEAK`` chunk is zeroed).  WAV is written as RF64 that downgrades itself
to a plain RIFF WAV (``WAVE_FORMAT_EXTENSIBLE``) when it ends under 4 GiB, so
a long concert at high rates or in float never overflows the RIFF size
fields.

``tags`` (e.g. :meth:`engine.provenance.Provenance.tags`) are written through
libsndfile's string fields before the first frame: a WAV ``LIST/INFO`` chunk,
FLAC / Ogg Vorbis / Opus comments, MP3 ID3v2 frames.  Each format keeps the
names it has (:data:`TAG_FIELDS`; MP3 has ``title``, ``artist``, ``album``,
``comment``, ``date``, ``genre``, WAV no ``license``); the others are dropped,
so put what must survive everywhere in ``comment``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.audio import CHANNELS, SAMPLE_RATE, check_finite
from engine.errors import OutputError

from .atomic import AtomicOutput
from .dither import TpdfQuantizer
from .exceptions import UnsupportedExportError
from .resample import StreamResampler
from .validation import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

__all__ = ["AudioWriter", "TAG_FIELDS", "check_writable", "export_format_for", "EXPORT_FORMATS", "LOSSY_FORMATS",
           "MP3_BITRATES", "UnsupportedExportError"]

#: export format (also the file extension) -> libsndfile major format
EXPORT_FORMATS: dict[str, str] = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3", "ogg": "OGG", "opus": "OGG"}
#: formats without a bit depth (lossy codecs)
LOSSY_FORMATS = ("mp3", "ogg", "opus")
#: file extensions that name an export format besides the format names themselves
_EXTENSION_ALIASES = {"wave": "wav", "oga": "ogg"}
_SUBTYPES: dict[tuple[str, int], str] = {
    ("wav", 16): "PCM_16", ("wav", 24): "PCM_24", ("wav", 32): "FLOAT",
    ("flac", 16): "PCM_16", ("flac", 24): "PCM_24",
}
_LOSSY_SUBTYPES = {"mp3": "MPEG_LAYER_III", "ogg": "VORBIS", "opus": "OPUS"}
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
OPUS_SAMPLE_RATES = (8000, 12000, 16000, 24000, 48000)
#: constant MP3 bitrates, kbit/s (MPEG-1 Layer III: output rates 32-48 kHz)
MP3_BITRATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MP3_VBR_QUALITY = 0.0  # libsndfile compression level 0..1 -> LAME V0..V10
_VORBIS_COMPRESSION = 0.3  # libsndfile compression level 0..1 -> Vorbis quality 1..0
#: tag names (libsndfile's string fields) each export format stores
TAG_FIELDS: dict[str, tuple[str, ...]] = {
    "wav": ("title", "copyright", "software", "artist", "comment", "date", "album", "tracknumber", "genre"),
    "mp3": ("title", "artist", "comment", "date", "album", "genre"),
}
for _fmt in ("flac", "ogg", "opus"):
    TAG_FIELDS[_fmt] = TAG_FIELDS["wav"] + ("license",)
# sndfile.h commands python-soundfile does not export
_SFC_SET_ADD_PEAK_CHUNK = 0x1050
_SFC_RF64_AUTO_DOWNGRADE = 0x1210


def check_writable(path: str | os.PathLike) -> Path:
    """Raise :class:`OutputError` (``output_unwritable``) unless ``path`` can be written.

    Checks, before any work is done: the path is not a folder, its folder
    exists, is a folder and accepts a new file (tested by creating and
    deleting a tiny temporary file, which also catches read-only disks).
    Returns ``path`` as a :class:`Path`.
    """
    if str(path) == "":
        raise OutputError("no output path given.")
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p} is a folder; give a file name to write to, e.g. {p / 'restored.wav'}.")
    folder = p.parent
    if not folder.exists():
        raise OutputError(f"cannot write {p}: the folder {folder} does not exist. Create it first.")
    if not folder.is_dir():
        raise OutputError(f"cannot write {p}: {folder} is not a folder.")
    try:
        probe = AtomicOutput(p)
    except OSError as e:
        raise OutputError(
            f"cannot write {p}: the folder {folder} is not writable ({e.strerror}). "
            "Choose another output folder or fix its permissions.") from None
    probe.discard()
    return p


def zero_peak_timestamp(path: str | os.PathLike) -> bool:
    """Set the wall-clock timestamp of a WAV/RF64 ``PEAK`` chunk to 0, in place.

    libsndfile adds a ``PEAK`` chunk (per-channel peak values and the time of
    writing) to float files and, for RF64, ignores the request to leave it
    out; zeroing its timestamp keeps the peaks and makes the bytes depend only
    on the audio.  Only the header (first 64 KiB) is searched.  Returns True
    when a chunk was patched.
    """
    with open(path, "r+b") as f:
        head = f.read(65536)
        pos = 12
        while pos + 8 <= len(head):
            cid, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
            if cid == b"data":
                return False
            if cid == b"PEAK" and size >= 8:
                f.seek(pos + 12)  # chunk id, size, dwVersion, then dwTimeStamp
                f.write(b"\x00\x00\x00\x00")
                return True
            pos += 8 + size + (size & 1)
    return False


def export_format_for(path: str | os.PathLike, format: str | None = None) -> str:
    """The export format of ``path``: ``format`` if given, else the one its extension names.

    Raises :class:`UnsupportedExportError` (``unsupported_export``) when the
    extension names no export format (or there is none) and ``format`` is not
    given, when ``format`` is unknown, or when both are given and disagree
    (``-o x.flac --format mp3``), listing the formats that can be written.
    """
    p = Path(path)
    ext = p.suffix.lower().lstrip(".")
    ext_fmt = _EXTENSION_ALIASES.get(ext, ext) if ext else None
    choices = ", ".join(EXPORT_FORMATS)
    if format is not None:
        fmt = format.lower()
        if fmt not in EXPORT_FORMATS:
            raise UnsupportedExportError(f"cannot export as {format!r}: choose one of {choices}.")
        if ext_fmt in EXPORT_FORMATS and ext_fmt != fmt:
            raise UnsupportedExportError(
                f"the output name {p.name!r} says {ext_fmt} but the format option says {fmt}: "
                f"name the file .{fmt}, or drop the format option.")
        return fmt
    if ext_fmt not in EXPORT_FORMATS:
        what = f"its extension .{ext} is not one" if ext else "it has no extension"
        raise UnsupportedExportError(
            f"cannot tell which format to write {p.name!r} in ({what}): name it with one of "
            f".{', .'.join(EXPORT_FORMATS)}, or give the format option ({choices}).")
    return ext_fmt


class AudioWriter:
    """Write working-format blocks progressively and atomically to ``path``.

    ``path``: destination (its folder must exist and be writable; checked at
    construction by :func:`check_writable`).  ``format``: ``"wav"``,
    ``"flac"``, ``"mp3"``, ``"ogg"`` or ``"opus"``; ``None`` takes it from the
    extension (:func:`export_format_for`; a disagreeing pair is refused).
    ``sample_rate``: output rate in Hz.  ``input_rate``: rate of the blocks
    given to ``write`` (default 44100); resampled when the two differ.
    ``bit_depth``: 16, 24 or 32 (float WAV only); ignored for the lossy
    formats.  ``mp3_bitrate``: constant MP3 bitrate in kbit/s (one of
    :data:`MP3_BITRATES`, output rates 32-48 kHz), ``None`` for VBR V0.
    ``dither_seed``: seeds the TPDF dither (same seed -> same bytes).
    ``channels``: 2, or 1 for a mono file (mean of left and right).
    ``tags``: ``{name: text}`` written into the file (see the module docstring).

    ``write(block)`` takes float32 ``(2, n)`` (or ``(channels, n)``) blocks
    at ``input_rate``.  ``close()`` finishes the file and moves it into place;
    ``abort()`` deletes the partial file.  As a context manager, an exception
    aborts.  Attributes: ``path``, ``temp_path``, ``format``, ``subtype``,
    ``sample_rate``, ``bit_depth``, ``channels``, ``frames_written``
    (output frames, at ``sample_rate``), ``closed``.
    """

    def __init__(self, path: str | os.PathLike, format: str | None = None, sample_rate: int = SAMPLE_RATE,
                 bit_depth: int = 16, dither_seed: int = 0, channels: int = CHANNELS,
                 input_rate: int = SAMPLE_RATE, mp3_bitrate: int | None = None, tags: dict | None = None):
        self.path = check_writable(path)
        self.input_rate = int(input_rate)
        self.format = export_format_for(self.path, format)
        self.mp3_bitrate = None if mp3_bitrate is None else int(mp3_bitrate)
        self.sample_rate = int(sample_rate)
        self.bit_depth = int(bit_depth)
        self.channels = int(channels)
        self.dither_seed = int(dither_seed)
        self.tags = {k: str(v) for k, v in (tags or {}).items() if k in TAG_FIELDS[self.format] and v}
        self._validate()
        self.subtype = _LOSSY_SUBTYPES.get(self.format) or _SUBTYPES[(self.format, self.bit_depth)]
        self.frames_written = 0
        self.closed = False
        self._atomic = AtomicOutput(self.path)
        self.temp_path = self._atomic.temp_path
        try:
            self._file = self._open_soundfile()
        except Exception as e:
            self._atomic.discard()
            raise OutputError(f"cannot start writing {self.path}: {e}") from e
        self._resampler = None if self.sample_rate == self.input_rate else StreamResampler(
            self.input_rate, self.sample_rate, self.channels, quality="VHQ")
        self._quantizer = TpdfQuantizer(self.bit_depth, self.dither_seed) if self.subtype.startswith("PCM") else None

    # ------------------------------------------------------------------ setup

    def _validate(self) -> None:
        if self.channels not in (1, 2):
            raise UnsupportedExportError(f"exports are mono or stereo; channels={self.channels} is not supported.")
        if self.bit_depth not in (16, 24, 32) and self.format not in LOSSY_FORMATS:
            raise UnsupportedExportError(f"bit depth must be 16, 24 or 32, got {self.bit_depth}.")
        if self.format == "flac" and self.bit_depth == 32:
            raise UnsupportedExportError(
                "FLAC stores integers of at most 24 bits; export 32-bit float as WAV, or choose "
                "bit depth 24 for FLAC.")
        if self.format == "mp3":
            if self.sample_rate not in MP3_SAMPLE_RATES:
                raise UnsupportedExportError(
                    f"MP3 cannot store {self.sample_rate} Hz; use one of "
                    f"{', '.join(map(str, MP3_SAMPLE_RATES))} Hz (44100 recommended), or WAV/FLAC.")
        elif self.format == "opus":
            if self.sample_rate not in OPUS_SAMPLE_RATES:
                raise UnsupportedExportError(
                    f"Opus cannot store {self.sample_rate} Hz; use 48000 Hz (or "
                    f"{', '.join(map(str, OPUS_SAMPLE_RATES[:-1]))}), or Ogg Vorbis (.ogg) for 44100 Hz.")
        elif not (MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE):
            raise UnsupportedExportError(
                f"output sample rate {self.sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz.")
        if self.mp3_bitrate is not None:
            if self.format != "mp3":
                raise UnsupportedExportError(f"an MP3 bitrate was given but the output is {self.format}, not mp3.")
            if self.mp3_bitrate not in MP3_BITRATES:
                raise UnsupportedExportError(
                    f"MP3 bitrate {self.mp3_bitrate} kbit/s is not one MP3 has; use one of "
                    f"{', '.join(map(str, MP3_BITRATES))}.")
            if self.sample_rate < 32000:
                raise UnsupportedExportError(
                    f"a constant MP3 bitrate needs an output rate of 32000-48000 Hz, not {self.sample_rate} Hz.")

    def _open_soundfile(self) -> sf.SoundFile:
        kwargs = {}
        if self.format == "mp3" and self.mp3_bitrate is None:
            kwargs = dict(compression_level=_MP3_VBR_QUALITY, bitrate_mode="VARIABLE")
        elif self.format == "mp3":
            # libsndfile maps compression 0..1 linearly onto 320..32 kbit/s (CBR); 1.0 itself is refused
            level = min(0.9999, (320 - self.mp3_bitrate) / (320 - 32))
            kwargs = dict(compression_level=level, bitrate_mode="CONSTANT")
        elif self.format == "ogg":
            kwargs = dict(compression_level=_VORBIS_COMPRESSION)
        major = EXPORT_FORMATS[self.format]
        if self.format == "wav":
            # RF64 that downgrades itself to a plain WAV (WAVE_FORMAT_EXTENSIBLE) when the
            # file ends under 4 GiB: a long concert at 96 kHz / float cannot overflow RIFF
            major = "RF64"
        f = sf.SoundFile(str(self.temp_path), "w", samplerate=self.sample_rate, channels=self.channels,
                         subtype=self.subtype, format=major, **kwargs)
        if self.format == "wav":
            sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
            if sf._snd.sf_command(f._file, _SFC_RF64_AUTO_DOWNGRADE, sf._ffi.NULL, 1) != 1:
                f.close()
                f = sf.SoundFile(str(self.temp_path), "w", samplerate=self.sample_rate,
                                 channels=self.channels, subtype=self.subtype, format="WAV")
                sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
        try:
            for name, text in self.tags.items():  # before the first frame (FLAC, MP3 write them first)
                setattr(f, name, text)
        except Exception:
            f.close()
            raise
        return f

    # ------------------------------------------------------------------ writing

    def write(self, block: np.ndarray) -> None:
        """Append a float32 ``(2, n)`` (or ``(channels, n)``) block of 44.1 kHz audio."""
        if self.closed:
            raise RuntimeError(f"write() on a closed AudioWriter for {self.path}")
        x = np.asarray(block, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] not in (CHANNELS, self.channels):
            raise ValueError(f"expected a ({CHANNELS}, samples) block, got shape {x.shape}")
        if x.shape[1] == 0:
            return
        check_finite(x, where=f"audio being written to {self.path.name}")
        if self.channels == 1 and x.shape[0] == 2:
            x = 0.5 * (x[0:1] + x[1:2])
        if self._resampler is not None:
            x = self._resampler.process(x)
        self._write_out(x)

    def _write_out(self, x: np.ndarray) -> None:
        if x.shape[1] == 0:
            return
        if self._quantizer is not None:
            data = self._quantizer.quantize(x)
        elif self.format in LOSSY_FORMATS:
            data = np.ascontiguousarray(np.clip(x, -1.0, 1.0).T)
        else:
            data = np.ascontiguousarray(x.T)
        try:
            self._file.write(data)
        except Exception as e:
            self.abort()
            raise OutputError(f"writing {self.path} failed: {e}. Check free disk space.",
                              code="output_write_failed") from e
        self.frames_written += x.shape[1]

    # ------------------------------------------------------------------ finishing

    def close(self) -> Path:
        """Finish the file and move it into place at ``path`` (idempotent); return ``path``."""
        if self.closed:
            return self.path
        try:
            if self._resampler is not None:
                self._write_out(self._resampler.flush())
            self._file.close()
            if self.format == "wav":
                zero_peak_timestamp(self.temp_path)
            self._atomic.commit()
        except OutputError:
            raise
        except Exception as e:
            self.abort()
            raise OutputError(f"finishing {self.path} failed: {e}", code="output_write_failed") from e
        self.closed = True
        return self.path

    def abort(self) -> None:
        """Stop and delete the partial file; ``path`` keeps whatever it held before."""
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()
        except Exception:
            pass
        self._atomic.discard()

    def __enter__(self) -> "AudioWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # an abandoned writer must not leave its temp file behind
        try:
            if not self.closed:
                self.abort()
        except Exception:
            pass

    def __repr__(self) -> str:
        return (f"AudioWriter({str(self.path)!r}, {self.format}/{self.subtype}, {self.sample_rate} Hz, "
                f"frames_written={self.frames_written})")
