"""The client side of one connection, sans-I/O: the rules a client keeps.

:class:`ClientSession` makes the frames a client sends (:meth:`hello`,
:meth:`start_job`, :meth:`resume`, :meth:`ack`, :meth:`fetch` ...) and is fed
the frames the server sends (:meth:`receive_frame`), which it turns into
events: the decoded server messages, plus :class:`SequenceBroken` (an
``audio`` out of order, or a ``file_chunk`` not where the download stands)
and :class:`BadFrame` (a server frame that does not decode; the session
goes on).

Rules held here: ``hello`` first, then nothing but ``welcome`` or a fatal
``error`` until ``welcome`` arrives (the limits, ``max_ack_window``
included, are learnt from it); the next ``audio`` seq of every job (0, 1,
2 ... no gaps; :meth:`resume` asks for the next one not received); ``ack``
only with ``hello.ack_window > 0``; a download's pieces contiguous from
the offset asked for, with one ``size``; pieces of a download given up on
are dropped.  The session keeps going across jobs; a new connection needs a
new session, except that :meth:`reconnected` carries the jobs' seqs over
so :meth:`resume` continues where the old connection stopped.

No sockets, no event loop, no threads.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Optional

from .client_messages import (
    Ack, Cancel, Fetch, Hello, InputSpec, JobOptions, Ping, Resume, StartJob, UploadChunk, UploadEnd,
)
from .codec import decode_server_message, encode
from .errors import ConnectionLost, ErrorCode, ProtocolError
from .limits import DEFAULT_LIMITS, Limits
from .server_messages import Audio, Error, FileChunk, JobDone, Welcome


@dataclass(frozen=True)
class SequenceBroken:
    """The server broke the order of a job's audio or of a download (``error.code``
    ``bad_sequence``); ``ref`` is the download's, None for audio."""

    job_id: str
    error: ProtocolError
    ref: Optional[str] = None


@dataclass(frozen=True)
class BadFrame:
    """A frame from the server did not decode (``error``); it was skipped."""

    error: ProtocolError


class _Download:
    __slots__ = ("job_id", "kind", "offset", "size")

    def __init__(self, job_id: str, kind: str, offset: int):
        self.job_id, self.kind, self.offset, self.size = job_id, kind, offset, None


class ClientSession:
    """Protocol state of one client connection (and of its jobs across reconnects).

    ``max_frame_bytes``: the largest frame accepted from the server;
    ``ack_window``: > 0 turns on ack flow control (sent in ``hello``; must be
    at most the server's ``max_ack_window``, which the client learns only
    from ``welcome``: a larger one is a fatal ``bad_field``).
    """

    def __init__(self, *, client_name: str = "", token: Optional[str] = None, ack_window: int = 0,
                 max_frame_bytes: int = 64 * 1024 * 1024):
        self.client_name = client_name
        self.token = token
        self.ack_window = int(ack_window)
        self.decode_limits = Limits(max_frame_bytes=max(int(max_frame_bytes), 4096), max_chunk_bytes=1024)
        self.welcome: Optional[Welcome] = None
        self.state = "new"  # new | hello_sent | open | closed
        self._next_seq: dict[str, int] = {}
        self._ended: set[str] = set()
        self._downloads: dict[str, _Download] = {}
        self._refs = itertools.count(1)

    # ---- the connection -------------------------------------------------------
    @property
    def limits(self) -> Limits:
        """The server's limits (the defaults before ``welcome``)."""
        return Limits.from_dict(self.welcome.limits) if self.welcome is not None else DEFAULT_LIMITS

    def hello(self) -> bytes:
        """The first frame of a connection."""
        if self.state != "new":
            raise ProtocolError("hello was already sent on this connection", code=ErrorCode.UNEXPECTED_MESSAGE)
        self.state = "hello_sent"
        return encode(Hello(client=self.client_name, token=self.token, ack_window=self.ack_window))

    def reconnected(self) -> None:
        """A new connection to the same server: say ``hello`` again; the jobs' seqs are kept."""
        self.state = "new"
        self.welcome = None
        self._downloads.clear()

    def connection_lost(self) -> None:
        self.state = "closed"

    def new_ref(self, prefix: str) -> str:
        return f"{prefix}{next(self._refs)}"

    def _check_open(self) -> None:
        if self.state != "open":
            raise ConnectionLost("not connected: send hello and wait for welcome first")

    # ---- requests -------------------------------------------------------------
    def start_job(self, inp: InputSpec, settings: Optional[dict] = None,
                  options: Optional[JobOptions] = None, reference: Optional[InputSpec] = None) -> tuple[str, bytes]:
        """``(ref, frame)`` of a ``start_job``; its answer is ``job_accepted`` or ``error`` with ``ref``.

        ``reference``: a recording to match the mix to; needs the server's feature
        ``reference`` (``unexpected_message`` here otherwise: an older server would ignore it),
        and an upload one fits ``limits.max_reference_bytes``."""
        self._check_open()
        if reference is not None:
            if "reference" not in self.features:
                raise ProtocolError("this server does not do reference matching (no 'reference' feature)",
                                    code=ErrorCode.UNEXPECTED_MESSAGE)
            size = getattr(reference, "size", None)
            if size is not None and size > self.limits.max_reference_bytes:
                raise ProtocolError(f"the reference ({size} bytes) is larger than the server's "
                                    f"max_reference_bytes ({self.limits.max_reference_bytes})",
                                    code=ErrorCode.UPLOAD_TOO_LARGE)
        ref = self.new_ref("r")
        return ref, encode(StartJob(input=inp, settings=dict(settings or {}), options=options or JobOptions(),
                                    ref=ref, reference=reference))

    @property
    def features(self) -> tuple[str, ...]:
        """The server's ``welcome.features`` (empty before ``welcome``)."""
        return tuple(self.welcome.features) if self.welcome is not None else ()

    def job_accepted(self, job_id: str) -> None:
        """A job this client started: its audio starts at seq 0."""
        self._next_seq[job_id] = 0
        self._ended.discard(job_id)

    def upload_chunk(self, job_id: str, index: int, data: bytes, stream: str = "input") -> bytes:
        """An ``upload_chunk`` frame (``data`` at most ``limits.max_chunk_bytes``) of ``stream``
        (``input``, or ``reference`` for the job's reference recording)."""
        if len(data) > self.limits.max_chunk_bytes:
            raise ProtocolError(f"upload chunk of {len(data)} bytes is larger than the server's "
                                f"max_chunk_bytes ({self.limits.max_chunk_bytes})", code=ErrorCode.CHUNK_TOO_LARGE)
        return encode(UploadChunk(job_id=job_id, index=index, data=data, stream=stream))

    def upload_end(self, job_id: str, chunks: int, size: int, stream: str = "input") -> bytes:
        return encode(UploadEnd(job_id=job_id, chunks=chunks, size=size, stream=stream))

    def cancel(self, job_id: str) -> bytes:
        return encode(Cancel(job_id=job_id))

    def next_seq(self, job_id: str) -> int:
        """Seq of the next audio message expected for ``job_id`` (0 for a job not seen)."""
        return self._next_seq.get(job_id, 0)

    def resume(self, job_id: str, from_seq: Optional[int] = None) -> tuple[int, bytes]:
        """``(from_seq, frame)`` of a ``resume``; default ``from_seq``: the next seq not received,
        so nothing is received twice and nothing is skipped."""
        self._check_open()
        if from_seq is None:
            from_seq = self.next_seq(job_id)
        self._next_seq[job_id] = from_seq
        self._ended.discard(job_id)
        return from_seq, encode(Resume(job_id=job_id, from_seq=from_seq))

    def ack(self, job_id: str, seq: int) -> Optional[bytes]:
        """The ``ack`` frame for a consumed ``audio`` (None without ack flow control)."""
        if self.ack_window <= 0 or self.state != "open":
            return None
        return encode(Ack(job_id=job_id, seq=seq))

    def ping(self) -> tuple[int, bytes]:
        """``(data, frame)`` of a ``ping``; the ``pong`` echoes ``data``."""
        token = next(self._refs)
        return token, encode(Ping(data=token))

    def fetch(self, job_id: str, kind: str, offset: int = 0) -> tuple[str, bytes]:
        """``(ref, frame)`` of a ``fetch`` from byte ``offset``; its pieces are checked to be
        contiguous from there."""
        self._check_open()
        ref = self.new_ref("f")
        self._downloads[ref] = _Download(job_id, kind, offset)
        return ref, encode(Fetch(job_id=job_id, kind=kind, offset=offset, ref=ref))

    def forget_fetch(self, ref: str) -> None:
        """The download ``ref`` was given up on (or ended): drop its late pieces."""
        self._downloads.pop(ref, None)

    # ---- input ----------------------------------------------------------------
    def receive_frame(self, frame: Any) -> list:
        """Feed one frame from the server; returns the events for the application."""
        try:
            msg = decode_server_message(frame, self.decode_limits)
        except ProtocolError as exc:
            return [BadFrame(exc)]
        if self.state == "hello_sent":
            if isinstance(msg, Welcome):
                self.welcome = msg
                self.state = "open"
                return [msg]
            if isinstance(msg, Error):
                if msg.fatal:
                    self.state = "closed"
                return [msg]
            return [BadFrame(ProtocolError(f"{msg.TYPE} before welcome", code=ErrorCode.UNEXPECTED_MESSAGE))]
        if isinstance(msg, Audio):
            return [self._audio(msg)]
        if isinstance(msg, FileChunk):
            return self._file_chunk(msg)
        if isinstance(msg, Error):
            if msg.ref is not None and msg.ref in self._downloads:
                del self._downloads[msg.ref]  # a failed download; the job itself is not over
            elif msg.job_id is not None:
                self._ended.add(msg.job_id)
            if msg.fatal:
                self.state = "closed"
        elif isinstance(msg, JobDone):
            self._ended.add(msg.job_id)
        return [msg]

    def ended(self, job_id: str) -> bool:
        """True once the job's last message (``job_done`` or ``error`` with its id) arrived."""
        return job_id in self._ended

    def _audio(self, msg: Audio) -> Any:
        want = self.next_seq(msg.job_id)
        if msg.seq != want:
            return SequenceBroken(msg.job_id, ProtocolError(
                f"audio seq {msg.seq} arrived, expected {want} (gap or duplicate)",
                code=ErrorCode.BAD_SEQUENCE, job_id=msg.job_id))
        self._next_seq[msg.job_id] = want + 1
        return msg

    def _file_chunk(self, msg: FileChunk) -> list:
        d = self._downloads.get(msg.ref) if msg.ref is not None else None
        if d is None:
            return []  # the rest of a download given up on
        if msg.offset != d.offset or (d.size is not None and msg.size != d.size):
            del self._downloads[msg.ref]
            expected = f"byte {d.offset}" + (f" of {d.size}" if d.size is not None else "")
            return [SequenceBroken(d.job_id, ProtocolError(
                f"file_chunk at byte {msg.offset} of {msg.size}, expected {expected}",
                code=ErrorCode.BAD_SEQUENCE, job_id=d.job_id), ref=msg.ref)]
        d.size = msg.size
        d.offset += len(msg.data)
        if msg.eof:
            del self._downloads[msg.ref]
        return [msg]
