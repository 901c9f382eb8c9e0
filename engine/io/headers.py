"""Cheap looks at container headers: what a file claims to be, and whether it is whole.

libsndfile and FFmpeg decode what is there and say little about what is
missing, so the checks that tell a truncated file from a short one live here:

* :func:`sniff_container` - the container a file's first bytes announce.
* :func:`read_wav_header` - RIFF/RIFX/RF64 walk to the ``data`` chunk: format
  fields, and declared vs available data bytes (a cut WAV declares more).
* :func:`ogg_is_complete` - the last Ogg page must be whole and carry the
  end-of-stream flag.
* :func:`mp3_has_length_header` - a Xing/Info/VBRI header gives an exact
  frame count; without one, libmpg123's length is an estimate.

Each reads at most a few hundred kilobytes, whatever the file size.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

_HEAD_BYTES = 64


def read_head(path: str | os.PathLike, n: int = _HEAD_BYTES) -> bytes:
    """The first ``n`` bytes of the file (fewer if it is shorter)."""
    with open(path, "rb") as f:
        return f.read(n)


def sniff_container(head: bytes) -> str | None:
    """Name of the audio container announced by the first bytes, or ``None``.

    Returns one of ``wav``, ``flac``, ``ogg``, ``mp3`` (with an ID3 tag),
    ``mp4`` (also m4a/mov/3gp), ``aiff``, ``caf``, ``matroska`` (also webm),
    ``amr``.  Used to tell a damaged audio file (truncated) from something
    that is not audio at all, so only signatures that random bytes almost
    never match count: a bare MPEG/ADTS frame sync (11-12 set bits) does not.
    """
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "mp4"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"caff":
        return "caf"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:5] == b"#!AMR":
        return "amr"
    return None


@dataclass(frozen=True)
class WavHeader:
    """What a WAV file's header says, and how much data the file really holds.

    ``declared_data_bytes`` is ``None`` when the header leaves it open (0 or
    0xFFFFFFFF, written by streaming recorders that never finalised it).
    ``complete`` is False when the file ends before the ``data`` chunk starts.
    """

    complete: bool
    format_tag: int | None = None
    channels: int | None = None
    sample_rate: int | None = None
    block_align: int | None = None
    bits_per_sample: int | None = None
    declared_data_bytes: int | None = None
    available_data_bytes: int = 0

    @property
    def is_truncated(self) -> bool:
        """True when the header is cut or the data chunk is shorter than declared."""
        if not self.complete:
            return True
        return self.declared_data_bytes is not None and self.available_data_bytes < self.declared_data_bytes

    @property
    def missing_seconds(self) -> float | None:
        """Duration of the data the header declares but the file lacks (seconds)."""
        if not self.complete or self.declared_data_bytes is None or not self.block_align or not self.sample_rate:
            return None
        missing = max(0, self.declared_data_bytes - self.available_data_bytes)
        return missing / self.block_align / self.sample_rate


def read_wav_header(path: str | os.PathLike) -> WavHeader:
    """Walk the RIFF chunks of a WAV file up to its ``data`` chunk (no sample data read)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            return WavHeader(complete=False)
        endian = ">" if head[:4] == b"RIFX" else "<"
        rf64 = head[:4] in (b"RF64", b"BW64")
        ds64_data: int | None = None
        fmt: tuple[int, int, int, int, int] | None = None
        pos = 12
        while True:
            f.seek(pos)
            ch = f.read(8)
            if len(ch) < 8:
                return _wav_header_from(fmt, complete=False)
            cid = ch[:4]
            (csize,) = struct.unpack(endian + "I", ch[4:8])
            body_start = pos + 8
            if cid == b"fmt ":
                body = f.read(min(csize, 40))
                if len(body) < 16:
                    return _wav_header_from(fmt, complete=False)
                fmt = struct.unpack(endian + "HHIIHH", body[:16])
                fmt = (fmt[0], fmt[1], fmt[2], fmt[4], fmt[5])
            elif cid == b"ds64" and rf64:
                body = f.read(16)
                if len(body) < 16:
                    return _wav_header_from(fmt, complete=False)
                ds64_data = struct.unpack("<Q", body[8:16])[0]
            elif cid == b"data":
                declared: int | None = csize
                if rf64 and csize == 0xFFFFFFFF:
                    declared = ds64_data
                if declared in (0, 0xFFFFFFFF):
                    declared = None
                available = max(0, size - body_start)
                if declared is not None:
                    available = min(available, declared)
                return _wav_header_from(fmt, complete=fmt is not None, declared=declared, available=available)
            pos = body_start + csize + (csize & 1)
            if pos > size:
                return _wav_header_from(fmt, complete=False)


def _wav_header_from(fmt, complete: bool, declared: int | None = None, available: int = 0) -> WavHeader:
    if fmt is None:
        return WavHeader(complete=False)
    tag, channels, rate, align, bits = fmt
    return WavHeader(complete=complete, format_tag=tag, channels=channels, sample_rate=rate,
                     block_align=align, bits_per_sample=bits, declared_data_bytes=declared,
                     available_data_bytes=available)


def ogg_is_complete(path: str | os.PathLike, tail_bytes: int = 256 * 1024) -> bool:
    """True when the file's last Ogg page is whole and has the end-of-stream flag.

    Encoders set the flag on the last page of every stream; a file cut during
    upload or recording lacks it (or ends inside a page).
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        start = max(0, size - tail_bytes)
        f.seek(start)
        tail = f.read()
    i = tail.rfind(b"OggS")
    while i >= 0:
        if len(tail) - i >= 27 and tail[i + 4] == 0:
            n_seg = tail[i + 26]
            seg_end = i + 27 + n_seg
            if seg_end > len(tail):
                return False
            page_end = seg_end + sum(tail[i + 27:seg_end])
            if page_end > len(tail):
                return False  # the file ends inside this page
            return bool(tail[i + 5] & 0x04)
        i = tail.rfind(b"OggS", 0, i)
    return False


def mp3_has_length_header(path: str | os.PathLike) -> bool:
    """True when the first MPEG audio frame carries a Xing, Info or VBRI header."""
    with open(path, "rb") as f:
        head = f.read(10)
        offset = 0
        if head[:3] == b"ID3" and len(head) == 10:
            s = head[6:10]
            offset = 10 + ((s[0] & 0x7F) << 21 | (s[1] & 0x7F) << 14 | (s[2] & 0x7F) << 7 | (s[3] & 0x7F))
            if head[5] & 0x10:
                offset += 10
        f.seek(offset)
        data = f.read(64 * 1024)
    i = data.find(b"\xff")
    while 0 <= i < len(data) - 1:
        if (data[i + 1] & 0xE0) == 0xE0:
            frame = data[i:i + 200]
            return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))
        i = data.find(b"\xff", i + 1)
    return False
