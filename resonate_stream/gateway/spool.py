"""Per-job, append-only disk spool of the encoded ``audio`` frames a job produced.

The gateway never keeps a job's output in memory: each ``audio`` frame is
appended here (by the job's worker thread) and read back by seq when a
connection is ready to send it, so a slow or disconnected client costs disk,
not RAM, and ``resume`` can replay any seq exactly once.

Layout of the spool folder:

* ``audio.bin``: frames one after another, each as ``uint32 LE length`` then
  the frame bytes (exactly what goes on the wire);
* ``audio.idx``: one ``uint64 LE`` byte offset into ``audio.bin`` per seq.

One writer thread, any number of readers; a reader may only read seqs below
the count the writer has published (``append`` returns the new count).
Once the job has ended, :meth:`AudioSpool.seal` closes the two descriptors
the writer held: a finished job that stays available for ``resume`` for an
hour costs no open file (reads then open the files for each frame).
"""
from __future__ import annotations

import os
import shutil
import struct
import threading
from pathlib import Path

from engine.errors import ResonateError

from resonate_protocol import ErrorCode

_LEN = struct.Struct("<I")
_OFF = struct.Struct("<Q")


class AudioSpool:
    """Append-only store of frames addressed by seq (0, 1, 2, ...)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
        self._data_fd = os.open(self.directory / "audio.bin", flags, 0o600)
        self._idx_fd = os.open(self.directory / "audio.idx", flags, 0o600)
        self._lock = threading.Lock()
        self._count = 0
        self._end = 0  # bytes in audio.bin
        self._closed = False

    @property
    def count(self) -> int:
        """Frames written so far."""
        with self._lock:
            return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of ``audio.bin``."""
        with self._lock:
            return self._end

    def append(self, frame: bytes) -> int:
        """Append one frame (writer thread); returns the new count (= its seq + 1)."""
        with self._lock:
            if self._closed or self._data_fd < 0:
                raise ResonateError("the job's output spool was closed", code=ErrorCode.CANCELLED)
            off = self._end
            _pwrite_all(self._data_fd, _LEN.pack(len(frame)) + frame, off)
            _pwrite_all(self._idx_fd, _OFF.pack(off), self._count * _OFF.size)
            self._end = off + _LEN.size + len(frame)
            self._count += 1
            return self._count

    @property
    def sealed(self) -> bool:
        """True once :meth:`seal` closed the writer's descriptors (no more appends)."""
        with self._lock:
            return self._data_fd < 0

    def seal(self) -> None:
        """No more frames: close the descriptors (reads go on, opening the files as needed)."""
        with self._lock:
            if self._data_fd >= 0:
                os.close(self._data_fd)
                os.close(self._idx_fd)
                self._data_fd = self._idx_fd = -1

    def read(self, seq: int) -> bytes:
        """The frame stored for ``seq`` (any thread; ``seq`` must be below ``count``)."""
        with self._lock:
            if not 0 <= seq < self._count:
                raise IndexError(f"seq {seq} not in spool (0..{self._count - 1})")
            if self._closed:
                raise ResonateError("the job's output spool was deleted", code=ErrorCode.UNKNOWN_JOB)
            if self._data_fd >= 0:
                return self._read(self._data_fd, self._idx_fd, seq)
        try:
            data_fd = os.open(self.directory / "audio.bin", os.O_RDONLY)
        except FileNotFoundError:
            raise ResonateError("the job's output spool was deleted", code=ErrorCode.UNKNOWN_JOB) from None
        try:
            idx_fd = os.open(self.directory / "audio.idx", os.O_RDONLY)
            try:
                return self._read(data_fd, idx_fd, seq)
            finally:
                os.close(idx_fd)
        finally:
            os.close(data_fd)

    @staticmethod
    def _read(data_fd: int, idx_fd: int, seq: int) -> bytes:
        (off,) = _OFF.unpack(os.pread(idx_fd, _OFF.size, seq * _OFF.size))
        (n,) = _LEN.unpack(os.pread(data_fd, _LEN.size, off))
        frame = os.pread(data_fd, n, off + _LEN.size)
        if len(frame) != n:  # pragma: no cover - disk trouble
            raise ResonateError(f"spool frame {seq} is truncated", code=ErrorCode.INTERNAL_ERROR)
        return frame

    def delete(self) -> None:
        """Close and remove the spool folder."""
        self.seal()
        with self._lock:
            self._closed = True
        shutil.rmtree(self.directory, ignore_errors=True)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n
