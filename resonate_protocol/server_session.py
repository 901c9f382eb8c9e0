"""The server side of one connection, sans-I/O: the rules of the conversation.

:class:`ServerSession` is fed the frames a client sends
(:meth:`ServerSession.receive_frame`) and answers with

* the frames to send back (:meth:`ServerSession.data_to_send`): ``welcome``,
  ``pong``, ``error`` and whatever the application queues with
  :meth:`ServerSession.send`;
* events for the application (the returned list): :class:`Opened`, the
  requests it must carry out (the decoded ``start_job``, ``resume``,
  ``cancel``, ``fetch``, ``upload_chunk``, ``upload_end`` messages),
  :class:`UploadBroken` and :class:`WindowOpened`;
* :attr:`ServerSession.close` once the conversation is over: send the
  pending frames, then close the websocket with that code and reason.

Rules held here: ``hello`` first (a bad or missing one is fatal), the
authentication hook, a second ``hello`` is ``unexpected_message``, too many
bad frames end the connection (``too_many_errors``), the ack window of every
job the connection follows, and the ``error`` fields (``job_id``, ``ref``) of
a failed request.  :class:`UploadState` holds the rules of one upload
(chunk order, sizes, ``upload_end``); it belongs to the job, since any
connection that knows a job's id may continue its upload.
:func:`check_fetch_target` and :func:`check_range` check a download request.

No sockets, no event loop, no threads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from .client_messages import Ack, Cancel, Fetch, Hello, Ping, Resume, StartJob, UploadChunk, UploadEnd
from .codec import decode_client_message, encode
from .errors import ErrorCode, ProtocolError
from .fields import Fields, Message
from .limits import Limits
from .server_messages import Error, JobAccepted, Pong, Welcome

#: websocket close codes
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008


@dataclass(frozen=True)
class Close:
    """The session is over: send what is pending, then close with ``code`` / ``reason``."""

    code: int
    reason: str


@dataclass(frozen=True)
class Opened:
    """The client said a valid, authorized ``hello``; ``welcome`` is queued."""

    hello: Hello


@dataclass(frozen=True)
class UploadBroken:
    """A malformed ``upload_chunk`` / ``upload_end`` named ``job_id``: if that job takes an
    upload, its upload stream is broken and the job must fail with ``error``; otherwise
    answer it with :meth:`ServerSession.send_error` (``ref`` only)."""

    job_id: str
    error: ProtocolError


@dataclass(frozen=True)
class WindowOpened:
    """An ``ack`` opened the ack window of ``job_id``: more ``audio`` may be sent."""

    job_id: str


#: client messages the application carries out (returned as events, unchanged)
REQUESTS = (StartJob, Resume, Cancel, Fetch, UploadChunk, UploadEnd)


class _Follow:
    """A job this connection follows: ``next_seq`` to send, ``acked`` the last seq acknowledged."""

    __slots__ = ("next_seq", "acked")

    def __init__(self, from_seq: int):
        self.next_seq = from_seq
        self.acked = from_seq - 1


class ServerSession:
    """Protocol state of one client connection.

    ``authorize(hello) -> bool``: the token check (None: everyone is let in);
    ``max_errors``: bad frames tolerated before the connection is dropped.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        server_name: str,
        features: tuple[str, ...] = (),
        authorize: Optional[Callable[[Hello], bool]] = None,
        max_errors: int = 32,
    ):
        self.limits = limits
        self.server_name = server_name
        self.features = tuple(features)
        self.authorize = authorize
        self.max_errors = int(max_errors)
        self.hello: Optional[Hello] = None
        self.errors = 0
        self.close: Optional[Close] = None
        self._out: list[bytes] = []
        self._follows: dict[str, _Follow] = {}

    # ---- output -------------------------------------------------------------
    def data_to_send(self) -> list[bytes]:
        """The frames queued since the last call, in order (replies; never job output)."""
        out, self._out = self._out, []
        return out

    def send(self, msg: Message) -> None:
        """Queue ``msg`` (e.g. ``job_accepted`` after the application created a job)."""
        if self.close is None:
            self._out.append(encode(msg))

    def send_error(self, exc: Any, *, job_id: Optional[str] = None, ref: Optional[str] = None,
                   fatal: bool = False) -> None:
        """Queue an ``error`` for ``exc`` (anything with ``code`` and ``message``)."""
        self.send(Error.from_exception(exc, job_id=job_id, ref=ref, fatal=fatal))

    def request_failed(self, msg: Message, exc: Any) -> None:
        """Answer a request the application could not carry out.

        A :class:`ProtocolError` keeps its own ``job_id`` (``unknown_job`` names
        the job) and ``ref``; otherwise the request's ``ref`` is echoed.
        """
        job_id = exc.job_id if isinstance(exc, ProtocolError) else None
        ref = getattr(exc, "ref", None) or getattr(msg, "ref", None)
        self.send_error(exc, job_id=job_id, ref=ref)

    def fail(self, exc: Any, close_code: int = CLOSE_POLICY) -> None:
        """End the session: a fatal ``error``, then :attr:`close`."""
        if self.close is None:
            self.send_error(exc, fatal=True)
            self.close = Close(close_code, str(getattr(exc, "code", "error")))

    def hello_timeout(self, seconds: float) -> None:
        """No ``hello`` arrived in time."""
        self.fail(ProtocolError(f"no hello within {seconds:g} s", code=ErrorCode.HANDSHAKE_REQUIRED))

    # ---- input --------------------------------------------------------------
    def decode(self, frame: Any) -> Any:
        """The decoded message of ``frame``, or the :class:`ProtocolError` that refuses it.

        Pure (it reads only :attr:`limits`): an application may run it in a worker
        thread for large frames and pass the result to :meth:`receive_frame`
        (``decoded=``), so decoding never stalls its event loop."""
        try:
            return decode_client_message(frame, self.limits)
        except ProtocolError as exc:
            return exc

    def receive_frame(self, frame: Any, decoded: Any = None) -> list:
        """Feed one frame the client sent (``decoded``: what :meth:`decode` returned for it,
        if the application decoded it already); returns the events for the application."""
        if self.close is not None:
            return []
        result = decoded if decoded is not None else self.decode(frame)
        if self.hello is None:
            return self._receive_hello(result)
        events = self._receive(result)
        if self.errors > self.max_errors:
            self.fail(ProtocolError(f"more than {self.max_errors} protocol errors on this connection",
                                    code=ErrorCode.TOO_MANY_ERRORS), CLOSE_PROTOCOL_ERROR)
        return events

    def _receive(self, msg: Any) -> list:
        if isinstance(msg, ProtocolError):
            exc = msg
            self.errors += 1
            if exc.job_id and exc.msg_type in (UploadChunk.TYPE, UploadEnd.TYPE):
                return [UploadBroken(exc.job_id, exc)]
            self.send_error(exc, ref=exc.ref)
            return []
        if isinstance(msg, Ping):
            self.send(Pong(data=msg.data))
            return []
        if isinstance(msg, Hello):
            self.errors += 1
            self.send_error(ProtocolError("hello was already received on this connection",
                                          code=ErrorCode.UNEXPECTED_MESSAGE))
            return []
        if isinstance(msg, Ack):
            return self._ack(msg)
        return [msg]

    def _receive_hello(self, msg: Any) -> list:
        if isinstance(msg, ProtocolError):  # e.g. hello.ack_window above limits.max_ack_window: bad_field
            self.fail(msg, CLOSE_PROTOCOL_ERROR)
            return []
        if not isinstance(msg, Hello):
            self.fail(ProtocolError(f"the first message must be hello, got {msg.TYPE}",
                                    code=ErrorCode.HANDSHAKE_REQUIRED))
            return []
        if self.authorize is not None and not self.authorize(msg):
            self.fail(ProtocolError(
                "missing or wrong token: pass the server's token in hello.token, an "
                "'Authorization: Bearer' header or the ?token= query",
                code=ErrorCode.UNAUTHORIZED,
            ))
            return []
        self.hello = msg
        self.send(Welcome(server=self.server_name, limits=self.limits.to_dict(), features=self.features))
        return [Opened(msg)]

    # ---- following jobs and the ack window ----------------------------------
    @property
    def ack_window(self) -> int:
        """``hello.ack_window``: 0 = no ack flow control."""
        return self.hello.ack_window if self.hello is not None else 0

    def accept_job(self, job_id: str, ref: Optional[str]) -> None:
        """The application created the job of a ``start_job``: ``job_accepted``, follow from seq 0."""
        self.send(JobAccepted(job_id=job_id, ref=ref))
        self.follow(job_id, 0)

    def accept_resume(self, msg: Resume) -> None:
        """The job of a ``resume`` exists: ``job_accepted`` (``resumed_from``), follow from ``from_seq``."""
        self.send(JobAccepted(job_id=msg.job_id, resumed_from=msg.from_seq))
        self.follow(msg.job_id, msg.from_seq)

    def follow(self, job_id: str, from_seq: int) -> None:
        """(Re)start following ``job_id`` at audio seq ``from_seq``; before any ack,
        ``last_acked = from_seq - 1``."""
        self._follows[job_id] = _Follow(from_seq)

    def unfollow(self, job_id: str) -> None:
        self._follows.pop(job_id, None)

    def following(self, job_id: str) -> bool:
        return job_id in self._follows

    def next_audio_seq(self, job_id: str, available: int) -> Optional[int]:
        """The seq of the next ``audio`` to send for ``job_id`` if one of the ``available``
        (seqs ``0 .. available-1`` exist) may go now (ack window open), else None.
        Counts it as sent."""
        f = self._follows.get(job_id)
        if f is None or f.next_seq >= available:
            return None
        window = self.ack_window
        if window > 0 and f.next_seq > f.acked + window:
            return None
        seq = f.next_seq
        f.next_seq += 1
        return seq

    def sent_all(self, job_id: str, available: int) -> bool:
        """True when every one of the ``available`` audio messages of ``job_id`` was sent."""
        f = self._follows.get(job_id)
        return f is not None and f.next_seq >= available

    def _ack(self, msg: Ack) -> list:
        f = self._follows.get(msg.job_id)
        if f is None or msg.seq <= f.acked:
            return []
        f.acked = min(msg.seq, f.next_seq - 1)  # acks of seqs not sent yet count up to the last sent
        return [WindowOpened(msg.job_id)]


class UploadState:
    """The rules of one upload stream of a job (its ``input``, or its ``reference``): chunk
    ``index`` 0, 1, 2 ... with no gaps, at most ``limits.max_upload_bytes``
    (``max_reference_bytes`` for a reference) and the declared ``size`` in total, nothing after
    ``upload_end``, and ``upload_end``'s counts must match what arrived.

    :meth:`chunk` / :meth:`end` raise :class:`ProtocolError` (``bad_upload``,
    ``upload_too_large``) when the upload is broken: the job must then fail.
    """

    def __init__(self, limits: Limits, declared_size: Optional[int] = None, *, stream: str = "input"):
        self.limits = limits
        self.declared_size = declared_size
        #: ``input`` (at most ``max_upload_bytes``) or ``reference`` (at most ``max_reference_bytes``)
        self.stream = stream
        self.max_bytes = limits.max_reference_bytes if stream == "reference" else limits.max_upload_bytes
        self.next_index = 0
        self.received = 0  # bytes
        self.ended = False

    def chunk(self, msg: UploadChunk) -> bytes:
        """Check one ``upload_chunk``; returns its data to append."""
        E = ErrorCode
        if self.ended:
            raise ProtocolError("upload_chunk after upload_end", code=E.BAD_UPLOAD, job_id=msg.job_id)
        if msg.index != self.next_index:
            raise ProtocolError(f"upload chunk index {msg.index} out of order; expected {self.next_index}",
                                code=E.BAD_UPLOAD, job_id=msg.job_id)
        total = self.received + len(msg.data)
        if total > self.max_bytes:
            what = "the reference upload" if self.stream == "reference" else "upload"
            raise ProtocolError(f"{what} exceeds the limit of {self.max_bytes} bytes",
                                code=E.UPLOAD_TOO_LARGE, job_id=msg.job_id)
        if self.declared_size is not None and total > self.declared_size:
            raise ProtocolError(f"upload exceeds its declared size of {self.declared_size} bytes",
                                code=E.BAD_UPLOAD, job_id=msg.job_id)
        self.received = total
        self.next_index += 1
        return msg.data

    def end(self, msg: UploadEnd) -> bool:
        """Check ``upload_end``; True when it completes the upload (False: a repeat, ignore it)."""
        if self.ended:
            return False
        problems = []
        if msg.chunks is not None and msg.chunks != self.next_index:
            problems.append(f"{self.next_index} chunks arrived, upload_end says {msg.chunks}")
        for declared in (msg.size, self.declared_size):
            if declared is not None and declared != self.received:
                problems.append(f"{self.received} bytes arrived, {declared} were announced")
        if problems:
            raise ProtocolError("; ".join(problems), code=ErrorCode.BAD_UPLOAD, job_id=msg.job_id)
        self.ended = True
        return True


def check_fetch_target(job_id: str, kind: str, limits: Limits) -> Fetch:
    """The checks of a ``fetch``'s ``job_id`` and ``kind`` for a download asked another way
    (the HTTP route ``GET /jobs/<job_id>/<kind>``); raises ``bad_field``."""
    return Fetch._from_fields(Fields({"job_id": job_id, "kind": kind}, Fetch.TYPE, limits))


def check_range(offset: int, size: int, filename: str, ref: Optional[str] = None) -> None:
    """A ``fetch.offset`` must lie within the file: ``0 <= offset <= size`` bytes (``bad_range``)."""
    if offset > size:
        raise ProtocolError(f"offset {offset} is past the end of {filename} ({size} bytes)",
                            code=ErrorCode.BAD_RANGE, ref=ref)
