"""The gateway's I/O layer: an asyncio websocket server (websockets >= 13 asyncio API).

One port serves:

* ``ws://HOST:PORT/ws``: the msgpack protocol of :mod:`.protocol` (see
  ``docs/protocol.md``);
* ``GET /health``: a small JSON status document;
* ``GET /presets``: the processing presets (JSON), when the server was given them;
* ``GET /jobs/<job_id>/<kind>``: a finished job's output file (up to
  ``http_download_max_bytes``; larger files through the websocket ``fetch``);
* ``GET /`` and other paths: static files from ``web_root`` (the browser page).

Design points:

* Jobs run in worker threads through a pluggable :class:`~.jobs.JobBackend`.
  Their ``audio`` output is encoded once and appended to a per-job disk spool
  (:class:`~.spool.AudioSpool`); each connection that follows a job reads the
  spool by seq, so a slow or absent client costs disk, not memory, and
  ``resume`` replays any seq exactly once, then continues live.
* Outgoing frames go through a per-connection outbox whose audio part is
  bounded (``data_slots`` frames); the websocket's write buffer pushes back
  on it, so the server never buffers a whole concert for a slow client.
* Uploads are spooled to disk too (:class:`~.jobs.UploadSource`).
* ``fetch`` streams a finished job's file in ``file_chunk`` messages read
  from disk one at a time through the same bounded outbox, so a 1.5 GB master
  costs a few chunks of memory however slowly the client reads.
* A bad frame or upload fails only that request or job; other jobs and
  connections carry on.  Jobs outlive their connection (for ``job_ttl_s``
  seconds after they end) so a client can come back and resume.
"""
from __future__ import annotations

import asyncio
import collections
import email.utils
import hmac
import ipaddress
import json
import logging
import math
import mimetypes
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Optional

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from engine.errors import NonFiniteAudioError, ResonateError, SettingsError
from resonate_stream.events import AudioChunk, Finished, Info, Progress

from . import protocol as P
from .jobs import JobBackend, JobCancelled, JobSpec, PathSource, RunnerBackend, UploadSource
from .outputs import OutputFile, check_range, resolve_output
from .spool import AudioSpool

log = logging.getLogger("resonate.gateway")

SERVER_NAME = "resonate-gateway/0.1"
WS_PATH = "/ws"
FEATURES = ("resume", "ack", "stems", "upload", "path_input", "fetch", "http_download")
#: ``fetch`` downloads one connection may run at once
MAX_FETCHES_PER_CONNECTION = 8


def is_loopback_host(host: Optional[str]) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if not host:
        return False  # "" / None bind every interface
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` made JSON-like for the wire (numpy scalars, Paths, tuples; NaN -> None)."""
    if depth > 12:
        return str(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, np.ndarray) and value.size <= 1024:
        return _jsonable(value.tolist(), depth + 1)
    return str(value)


# --------------------------------------------------------------------------- #
# Jobs
# --------------------------------------------------------------------------- #


class _Job:
    """Server-side state of one job.

    Fields without a leading ``t_`` are touched only on the event-loop thread;
    the worker thread talks to the loop through :meth:`_post`.
    """

    def __init__(
        self,
        server: "GatewayServer",
        job_id: str,
        spec: JobSpec,
        source: PathSource | UploadSource,
        spool: AudioSpool,
        cancel: threading.Event,
    ):
        self.server = server
        self.loop = server._loop
        self.id = job_id
        self.spec = spec
        self.source = source
        self.upload: Optional[UploadSource] = source if isinstance(source, UploadSource) else None
        self.spool = spool
        self.cancel = cancel
        self.created = time.time()
        # loop-confined state
        self.n_blocks = 0  # audio frames readable from the spool
        self.frames_out = 0  # audio frames (samples per channel) produced
        self.progress_frame: Optional[bytes] = None
        self.progress_version = 0
        self.infos: collections.deque[bytes] = collections.deque(maxlen=256)
        self.info_total = 0
        self.finished: Optional[Finished] = None
        self.terminal_frame: Optional[bytes] = None
        self.state = "running"  # running | done | failed | cancelled
        self.worker_done = False
        self.subscribers: set[asyncio.Event] = set()
        self.upload_next_index = 0
        self.upload_bytes = 0
        self.upload_ended = False
        self.thread: Optional[threading.Thread] = None
        # worker-thread state (emit)
        self.t_next_event_seq = 0
        self.t_next_offset = 0
        self.t_sample_rate: Optional[int] = None
        self.t_channels: Optional[int] = None

    # ---- loop side --------------------------------------------------------
    @property
    def info_first(self) -> int:
        return self.info_total - len(self.infos)

    def info_frame(self, i: int) -> bytes:
        return self.infos[i - self.info_first]

    def notify(self) -> None:
        for ev in self.subscribers:
            ev.set()

    def end(self, terminal: P.Message, state: str) -> None:
        """Record the job's last message (``job_done`` or ``error``) once."""
        if self.terminal_frame is not None:
            return
        self.terminal_frame = P.encode(terminal)
        self.state = state
        self.notify()

    def _on_blocks(self, count: int, frames: int) -> None:
        if self.terminal_frame is None:
            self.n_blocks = max(self.n_blocks, count)
            self.frames_out = max(self.frames_out, frames)
            self.notify()

    def _on_progress(self, frame: bytes) -> None:
        if self.terminal_frame is None:
            self.progress_frame = frame
            self.progress_version += 1
            self.notify()

    def _on_info(self, frame: bytes) -> None:
        if self.terminal_frame is None:
            self.infos.append(frame)
            self.info_total += 1
            self.notify()

    def _on_finished(self, event: Finished) -> None:
        self.finished = event

    # ---- worker side --------------------------------------------------------
    def _post(self, fn, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is gone: the server stopped
            raise JobCancelled("the server is shutting down") from None

    def emit(self, event: Any) -> None:
        """Event sink handed to the backend (called on the worker thread)."""
        if self.cancel.is_set():
            raise JobCancelled("the job was cancelled")
        if isinstance(event, AudioChunk):
            self._emit_audio(event)
        elif isinstance(event, Progress):
            total = event.total
            msg = P.Progress(
                job_id=self.id,
                stage=str(event.stage)[:64],
                done=max(0.0, float(event.done)) if math.isfinite(float(event.done)) else 0.0,
                total=float(total) if total is not None and math.isfinite(float(total)) and total >= 0 else None,
            )
            self._post(self._on_progress, P.encode(msg))
        elif isinstance(event, Info):
            msg = P.Info(job_id=self.id, message=str(event.message)[:4096], data=_jsonable(dict(event.data or {})))
            self._post(self._on_info, P.encode(msg))
        elif isinstance(event, Finished):
            fin = Finished(
                report=_jsonable(dict(event.report or {})),
                outputs={str(k): str(v) for k, v in dict(event.outputs or {}).items()},
            )
            self._post(self._on_finished, fin)
        else:
            raise ResonateError(
                f"the backend emitted a {type(event).__name__}; expected Progress, Info, AudioChunk or Finished",
                code=P.ErrorCode.BACKEND_ERROR,
            )

    def _emit_audio(self, chunk: AudioChunk) -> None:
        bad = P.ErrorCode.BACKEND_ERROR
        a = np.asarray(chunk.audio, dtype=np.float32)
        if a.ndim != 2 or a.shape[0] < 1:
            raise ResonateError(f"AudioChunk.audio must be (channels, samples); got shape {a.shape}", code=bad)
        if chunk.seq != self.t_next_event_seq:
            raise ResonateError(f"AudioChunk.seq {chunk.seq} breaks the sequence; expected {self.t_next_event_seq}", code=bad)
        if chunk.offset != self.t_next_offset:
            raise ResonateError(
                f"AudioChunk.offset {chunk.offset} is not contiguous; expected {self.t_next_offset}", code=bad
            )
        sr = int(chunk.sample_rate)
        if self.t_sample_rate is None:
            if not P.MIN_SAMPLE_RATE <= sr <= P.MAX_SAMPLE_RATE:
                raise ResonateError(f"AudioChunk.sample_rate {sr} Hz is out of range", code=bad)
            self.t_sample_rate, self.t_channels = sr, a.shape[0]
        if sr != self.t_sample_rate or a.shape[0] != self.t_channels:
            raise ResonateError("sample rate and channel count must not change during a job", code=bad)
        if not np.all(np.isfinite(a)):
            raise NonFiniteAudioError("the processed audio contains NaN/Inf samples")
        stems = None
        if self.spec.send_stems and chunk.stems:
            stems = {str(k): np.asarray(v, dtype=np.float32) for k, v in chunk.stems.items()}
            for k, v in stems.items():
                if v.shape != a.shape:
                    raise ResonateError(f"stem {k!r} has shape {v.shape}, the mix {a.shape}", code=bad)
        n = a.shape[1]
        bytes_per_frame = a.shape[0] * 4 * (1 + len(stems or ()))
        budget = self.server.limits.max_frame_bytes - P.audio_frame_overhead(self.id, len(stems or ()))
        step = max(1, budget // bytes_per_frame)
        for start in range(0, n, step):
            end = min(n, start + step)
            frame = P.encode_audio(
                self.id, self.spool.count, self.t_next_offset + start, sr, a[:, start:end],
                {k: v[:, start:end] for k, v in stems.items()} if stems else None,
            )
            count = self.spool.append(frame)
            self._post(self._on_blocks, count, self.t_next_offset + end)
        self.t_next_event_seq += 1
        self.t_next_offset += n


# --------------------------------------------------------------------------- #
# Connections
# --------------------------------------------------------------------------- #


class _Gone(Exception):
    """The connection's writer stopped."""


class _Outbox:
    """Outgoing frames of one connection, sent in FIFO order by one writer task.

    Job output (audio, progress, info, the job's last message) waits for one of
    ``data_slots`` slots, so a slow reader stalls the job's pump, not memory.
    Replies to requests never wait (the receive loop must not block) but are
    capped at ``control_cap`` pending frames; beyond that the client is not
    reading and the connection is dropped.
    """

    def __init__(self, data_slots: int = 8, control_cap: int = 256):
        self._q: asyncio.Queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(data_slots)
        self._control = 0
        self._control_cap = control_cap
        self.closed = False

    def put_control(self, frame: bytes) -> None:
        if self.closed:
            return
        if self._control >= self._control_cap:
            raise _Gone("client does not read its replies")
        self._control += 1
        self._q.put_nowait((False, frame))

    async def put_data(self, frame: bytes) -> None:
        await self._slots.acquire()
        if self.closed:
            self._slots.release()
            raise _Gone()
        self._q.put_nowait((True, frame))

    async def run(self, ws: ServerConnection) -> None:
        try:
            while True:
                is_data, frame = await self._q.get()
                try:
                    await ws.send(frame)
                finally:
                    if is_data:
                        self._slots.release()
                    else:
                        self._control -= 1
                    self._q.task_done()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True

    async def drain(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._q.join(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            pass


class _Subscription:
    """One connection following one job from ``next_seq``."""

    def __init__(self, job: _Job, from_seq: int, ack_window: int):
        self.job = job
        self.next_seq = from_seq
        self.acked = from_seq - 1
        self.ack_window = ack_window
        self.info_next = 0
        self.progress_seen = 0
        self.wake = asyncio.Event()
        self.task: Optional[asyncio.Task] = None

    def window_open(self) -> bool:
        return self.ack_window <= 0 or self.next_seq <= self.acked + self.ack_window


class _Connection:
    """Protocol state of one websocket connection."""

    def __init__(self, server: "GatewayServer", ws: ServerConnection):
        self.server = server
        self.ws = ws
        self.outbox = _Outbox(data_slots=server.data_slots)
        self.subs: dict[str, _Subscription] = {}
        self.hello: Optional[P.Hello] = None
        self.errors = 0
        self.http_authorized = bool(getattr(ws, "resonate_http_authorized", False))
        self.fetches: dict[tuple[str, str], asyncio.Task] = {}

    # ---- sending ------------------------------------------------------------
    def send(self, msg: P.Message) -> None:
        self.outbox.put_control(P.encode(msg))

    def send_error(self, exc: ResonateError, *, job_id: str | None = None, ref: str | None = None,
                   fatal: bool = False) -> None:
        self.send(P.Error.from_exception(exc, job_id=job_id, ref=ref, fatal=fatal))

    async def fail_connection(self, exc: ResonateError, close_code: int = 1008) -> None:
        """Send a fatal ``error`` then close the connection."""
        try:
            self.send_error(exc, fatal=True)
        except _Gone:
            pass
        await self.outbox.drain(timeout=2.0)
        await self.ws.close(close_code, exc.code)

    # ---- main loop ------------------------------------------------------------
    async def serve(self) -> None:
        srv = self.server
        try:
            first = await asyncio.wait_for(self.ws.recv(), srv.hello_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            await self.fail_connection(
                P.ProtocolError(f"no hello within {srv.hello_timeout_s:g} s", code=P.ErrorCode.HANDSHAKE_REQUIRED)
            )
            return
        except ConnectionClosed:
            return
        try:
            msg = P.decode_client_message(first, srv.limits)
        except P.ProtocolError as exc:
            await self.fail_connection(exc, 1002)
            return
        if not isinstance(msg, P.Hello):
            await self.fail_connection(
                P.ProtocolError(
                    f"the first message must be hello, got {msg.TYPE}", code=P.ErrorCode.HANDSHAKE_REQUIRED
                )
            )
            return
        if not self._authorized(msg):
            await self.fail_connection(
                P.ProtocolError(
                    "missing or wrong token: pass the server's token in hello.token, an "
                    "'Authorization: Bearer' header or the ?token= query",
                    code=P.ErrorCode.UNAUTHORIZED,
                )
            )
            return
        self.hello = msg
        self.send(P.Welcome(server=SERVER_NAME, limits=srv.limits.to_dict(), features=FEATURES))
        async for frame in self.ws:
            try:
                await self._on_frame(frame)
            except _Gone:
                await self.ws.close(1008, "client does not read")
                return
            if self.errors > srv.max_protocol_errors:
                await self.fail_connection(
                    P.ProtocolError(
                        f"more than {srv.max_protocol_errors} protocol errors on this connection",
                        code=P.ErrorCode.TOO_MANY_ERRORS,
                    ),
                    1002,
                )
                return

    def _authorized(self, hello: P.Hello) -> bool:
        token = self.server.token
        if token is None:
            return True
        if hello.token is not None:
            return hmac.compare_digest(hello.token.encode(), token.encode())
        return self.http_authorized

    async def _on_frame(self, frame: Any) -> None:
        srv = self.server
        try:
            msg = P.decode_client_message(frame, srv.limits)
        except P.ProtocolError as exc:
            self.errors += 1
            job = srv.jobs.get(exc.job_id) if exc.job_id else None
            if job is not None and getattr(exc, "msg_type", None) in ("upload_chunk", "upload_end") and job.upload:
                srv.fail_job(job, exc)  # the upload stream is broken: the job cannot go on
            else:
                self.send_error(exc, ref=exc.ref)
            return
        try:
            await self._dispatch(msg)
        except P.ProtocolError as exc:
            if exc.code == P.ErrorCode.UNEXPECTED_MESSAGE:
                self.errors += 1
            self.send_error(exc, job_id=exc.job_id, ref=exc.ref)
        except ResonateError as exc:
            self.send_error(exc, ref=getattr(msg, "ref", None))
        except (_Gone, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug: keep the connection, report without details
            log.exception("error handling %s", msg.TYPE)
            self.send_error(
                ResonateError(f"internal error handling {msg.TYPE} ({type(exc).__name__})", code=P.ErrorCode.INTERNAL_ERROR),
                ref=getattr(msg, "ref", None),
            )

    async def _dispatch(self, msg: P.ClientMessage) -> None:
        srv = self.server
        E = P.ErrorCode
        if isinstance(msg, P.Ping):
            self.send(P.Pong(data=msg.data))
        elif isinstance(msg, P.Hello):
            raise P.ProtocolError("hello was already received on this connection", code=E.UNEXPECTED_MESSAGE)
        elif isinstance(msg, P.StartJob):
            job = srv.create_job(msg)  # raises ProtocolError / ResonateError with ref
            self.send(P.JobAccepted(job_id=job.id, ref=msg.ref))
            self._subscribe(job, 0)
        elif isinstance(msg, P.Resume):
            job = srv.get_job(msg.job_id)
            self.send(P.JobAccepted(job_id=job.id, resumed_from=msg.from_seq))
            self._subscribe(job, msg.from_seq)
        elif isinstance(msg, P.Cancel):
            job = srv.get_job(msg.job_id)
            srv.fail_job(job, JobCancelled("the job was cancelled by the client"), state="cancelled")
        elif isinstance(msg, P.Ack):
            sub = self.subs.get(msg.job_id)
            if sub is not None and msg.seq > sub.acked:
                sub.acked = min(msg.seq, sub.next_seq - 1)
                sub.wake.set()
        elif isinstance(msg, P.UploadChunk):
            srv.upload_chunk(srv.get_job(msg.job_id), msg)
        elif isinstance(msg, P.UploadEnd):
            srv.upload_end(srv.get_job(msg.job_id), msg)
        elif isinstance(msg, P.Fetch):
            self._start_fetch(msg)

    # ---- downloads ----------------------------------------------------------------
    def _start_fetch(self, msg: P.Fetch) -> None:
        """Check a ``fetch`` and start sending the file; errors carry the fetch's ``ref``."""
        srv = self.server
        try:
            out = srv.output_file(msg.job_id, msg.kind, ref=msg.ref)
        except P.ProtocolError as exc:
            exc.ref = msg.ref
            raise
        check_range(out, msg.offset, ref=msg.ref)
        key = (msg.job_id, msg.kind)
        old = self.fetches.pop(key, None)
        if old is not None:  # a new fetch of the same file replaces the old one (resume)
            old.cancel()
        self.fetches = {k: t for k, t in self.fetches.items() if not t.done()}
        if len(self.fetches) >= MAX_FETCHES_PER_CONNECTION:
            raise P.ProtocolError(
                f"at most {MAX_FETCHES_PER_CONNECTION} downloads at once per connection; wait for one to end",
                code=P.ErrorCode.TOO_MANY_FETCHES, ref=msg.ref,
            )
        task = asyncio.create_task(self._send_file(out, msg.offset, msg.ref), name=f"fetch-{msg.job_id[:8]}")
        self.fetches[key] = task

    async def _send_file(self, out: OutputFile, offset: int, ref: Optional[str]) -> None:
        """Send ``out`` from byte ``offset`` in ``file_chunk`` messages (one chunk in memory at a time
        per waiting slot); stop with ``output_unavailable`` if the file changes underneath."""
        step = self.server.file_chunk_bytes
        pos = offset
        try:
            fd = os.open(out.path, os.O_RDONLY)
        except OSError:
            self.send_error(P.ProtocolError(f"cannot open {out.filename}", code=P.ErrorCode.OUTPUT_UNAVAILABLE),
                            ref=ref)
            return
        try:
            while True:
                n = min(step, out.size - pos)
                data = await asyncio.to_thread(os.pread, fd, n, pos) if n else b""
                if len(data) != n or os.fstat(fd).st_size != out.size:
                    self.send_error(
                        P.ProtocolError(f"{out.filename} changed on the server while it was sent; fetch it again",
                                        code=P.ErrorCode.OUTPUT_UNAVAILABLE),
                        ref=ref,
                    )
                    return
                end = pos + n
                await self.outbox.put_data(P.encode(P.FileChunk(
                    job_id=out.job_id, kind=out.kind, offset=pos, data=data, size=out.size,
                    eof=end == out.size, filename=out.filename, mime=out.mime, ref=ref,
                )))
                pos = end
                if pos >= out.size:
                    return
        except _Gone:
            pass
        finally:
            os.close(fd)

    # ---- following jobs ----------------------------------------------------------
    def _subscribe(self, job: _Job, from_seq: int) -> None:
        old = self.subs.pop(job.id, None)
        if old is not None and old.task is not None:
            old.task.cancel()
        assert self.hello is not None
        sub = _Subscription(job, from_seq, self.hello.ack_window)
        self.subs[job.id] = sub
        sub.task = asyncio.create_task(self._pump(sub), name=f"pump-{job.id}")

    async def _pump(self, sub: _Subscription) -> None:
        """Send one job's output to this connection: infos, latest progress, audio from
        the spool in seq order, then the job's last message."""
        job = sub.job
        job.subscribers.add(sub.wake)
        try:
            while True:
                sub.wake.clear()
                while sub.info_next < job.info_total:
                    i = max(sub.info_next, job.info_first)
                    sub.info_next = i + 1
                    await self.outbox.put_data(job.info_frame(i))
                if job.progress_version != sub.progress_seen and job.progress_frame is not None:
                    sub.progress_seen = job.progress_version
                    await self.outbox.put_data(job.progress_frame)
                sent = 0
                while sub.next_seq < job.n_blocks and sub.window_open() and sent < 8:
                    frame = job.spool.read(sub.next_seq)
                    sub.next_seq += 1
                    sent += 1
                    await self.outbox.put_data(frame)
                if sent == 8:
                    continue
                if job.terminal_frame is not None and sub.next_seq >= job.n_blocks:
                    await self.outbox.put_data(job.terminal_frame)
                    return
                await sub.wake.wait()
        except _Gone:
            pass
        except ResonateError as exc:  # spool deleted (job expired) while sending
            log.info("job %s: stopped following: %s", job.id, exc)
        finally:
            job.subscribers.discard(sub.wake)
            if self.subs.get(job.id) is sub:
                del self.subs[job.id]

    async def shutdown(self) -> None:
        tasks = [s.task for s in self.subs.values() if s.task is not None] + list(self.fetches.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --------------------------------------------------------------------------- #
# The server
# --------------------------------------------------------------------------- #


class GatewayServer:
    """Websocket gateway: drives jobs through a backend and streams their output.

    Parameters
    ----------
    host, port:
        Where to listen; ``port=0`` picks a free port (read :attr:`port` after
        :meth:`start`).  A host other than loopback requires ``token``.
    token:
        Shared secret clients must present (``hello.token``, ``Authorization:
        Bearer``, or ``?token=``).  None: no authentication (loopback only).
    backend:
        A :class:`~.jobs.JobBackend`; default :class:`~.jobs.RunnerBackend`.
    limits:
        :class:`~.protocol.Limits` (frame/chunk/upload bytes, concurrent jobs).
    allowed_roots:
        Folders whose files may be named by ``{"kind": "path"}`` inputs
        (symlinks resolved; nothing outside them is readable).  Empty: uploads only.
    web_root:
        Folder served over plain HTTP GET (``/`` -> ``index.html``), or None.
    spool_dir:
        Where job spools (output frames, uploads) live; default a temp folder
        removed on :meth:`close`.
    output_dir:
        Where jobs write final files (``output_dir/<job_id>/``); default
        ``spool_dir/outputs``.
    job_ttl_s:
        Seconds a finished job (and its spool) stays available for ``resume``.
    upload_idle_timeout_s:
        Seconds without upload data after which an upload fails.
    hello_timeout_s:
        Seconds a new connection has to send ``hello``.
    allowed_origins:
        Extra browser ``Origin`` values accepted besides same-origin pages.
    data_slots:
        Job-output frames queued per connection before the job's pump waits.
    file_chunk_bytes:
        Largest ``file_chunk.data`` sent for ``fetch`` (bytes; also kept 1 KiB
        under ``limits.max_frame_bytes``).
    http_download_max_bytes:
        Largest file ``GET /jobs/<job_id>/<kind>`` sends (bytes; the whole body
        is read into memory); larger files answer 413 and are fetched over
        the websocket.
    presets:
        JSON-able map served at ``GET /presets`` (the page shows preset values),
        or None (404).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        token: Optional[str] = None,
        backend: Optional[JobBackend] = None,
        limits: Optional[P.Limits] = None,
        allowed_roots: Iterable[os.PathLike | str] = (),
        web_root: Optional[os.PathLike | str] = None,
        spool_dir: Optional[os.PathLike | str] = None,
        output_dir: Optional[os.PathLike | str] = None,
        job_ttl_s: float = 3600.0,
        upload_idle_timeout_s: float = 60.0,
        hello_timeout_s: float = 10.0,
        allowed_origins: Iterable[str] = (),
        max_protocol_errors: int = 32,
        data_slots: int = 8,
        ping_interval_s: Optional[float] = 20.0,
        file_chunk_bytes: int = P.FILE_CHUNK_BYTES,
        http_download_max_bytes: int = 64 * P.MiB,
        presets: Optional[Mapping[str, Any]] = None,
    ):
        if token is not None and (not isinstance(token, str) or len(token) < 8):
            raise SettingsError("the gateway token must be a string of at least 8 characters")
        if token is None and not is_loopback_host(host):
            raise SettingsError(
                f"refusing to listen on {host or 'all interfaces'!r} without a token: anyone on the "
                "network could run jobs and read files. Pass a token (e.g. --token $(openssl rand -hex 16)) "
                "or listen on 127.0.0.1."
            )
        self.host = host
        self.port = int(port)
        self.token = token
        self.backend: JobBackend = backend if backend is not None else RunnerBackend()
        self.limits = limits or P.Limits()
        self.allowed_roots = [Path(os.path.realpath(r)) for r in allowed_roots]
        for r in self.allowed_roots:
            if not r.is_dir():
                raise SettingsError(f"allowed root {str(r)!r} is not a folder")
        self.web_root = Path(os.path.realpath(web_root)) if web_root is not None else None
        self._own_spool = spool_dir is None
        self._spool_arg = spool_dir
        self._output_arg = output_dir
        self.job_ttl_s = float(job_ttl_s)
        self.upload_idle_timeout_s = float(upload_idle_timeout_s)
        self.hello_timeout_s = float(hello_timeout_s)
        self.allowed_origins = set(allowed_origins)
        self.max_protocol_errors = int(max_protocol_errors)
        self.data_slots = int(data_slots)
        self.ping_interval_s = ping_interval_s
        self.file_chunk_bytes = max(1, min(int(file_chunk_bytes), self.limits.max_frame_bytes - 1024))
        self.http_download_max_bytes = int(http_download_max_bytes)
        self._presets_body = json.dumps(_jsonable(dict(presets))).encode() if presets is not None else None
        self.jobs: dict[str, _Job] = {}
        self._connections: set[_Connection] = set()
        self._server = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._closing = False
        self.spool_dir: Optional[Path] = None
        self.output_dir: Optional[Path] = None

    # ---- lifecycle ------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The websocket URL clients connect to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{WS_PATH}"

    @property
    def http_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> "GatewayServer":
        """Bind and start serving (returns once listening)."""
        self._loop = asyncio.get_running_loop()
        if self._own_spool:
            self.spool_dir = Path(tempfile.mkdtemp(prefix="resonate-gateway-"))
        else:
            self.spool_dir = Path(self._spool_arg)
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir = Path(self._output_arg) if self._output_arg else self.spool_dir / "outputs"
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,  # float audio does not deflate; save the CPU
            max_size=2 * self.limits.max_frame_bytes,  # hard cap; protocol answers frame_too_large below it
            max_queue=16,
            write_limit=256 * 1024,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_interval_s,
            close_timeout=3,
            server_header=SERVER_NAME,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("gateway listening on %s", self.url)
        return self

    async def close(self) -> None:
        """Stop: cancel jobs, close connections, wait for workers, remove own spool."""
        self._closing = True
        for job in list(self.jobs.values()):
            job.cancel.set()
            if job.upload is not None:
                job.upload.abort(JobCancelled("the server is shutting down"))
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._server.wait_closed()), 3)
            except (asyncio.TimeoutError, TimeoutError):
                # a client that reads nothing blocks the close handshake: drop it
                for conn in list(self._connections):
                    conn.ws.transport.abort()
                try:
                    await asyncio.wait_for(self._server.wait_closed(), 5)
                except (asyncio.TimeoutError, TimeoutError):
                    log.warning("connections did not close in time")
        threads = [j.thread for j in self.jobs.values() if j.thread is not None]
        deadline = time.monotonic() + 10
        for t in threads:
            await asyncio.to_thread(t.join, max(0.0, deadline - time.monotonic()))
        for job in list(self.jobs.values()):
            self._drop_job(job)
        if self._own_spool and self.spool_dir is not None:
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled."""
        if self._server is None:
            await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.close()

    async def __aenter__(self) -> "GatewayServer":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def running_jobs(self) -> int:
        return sum(1 for j in self.jobs.values() if not j.worker_done)

    # ---- HTTP side ----------------------------------------------------------------
    async def _process_request(self, connection: ServerConnection, request: Request) -> Optional[Response]:
        path, _, query = request.path.partition("?")
        upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
        if not upgrade:
            if path == "/health":
                return self._health(connection)
            if path == "/presets":
                if self._presets_body is None:
                    return connection.respond(404, "this server has no presets to show\n")
                return _http_response(200, self._presets_body, "application/json")
            if path.startswith("/jobs/"):
                return await self._http_download(connection, request, path, query)
            return self._static(connection, path)
        if path != WS_PATH:
            return connection.respond(404, f"the websocket endpoint is {WS_PATH}\n")
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_ok(origin, request.headers.get("Host", "")):
            return connection.respond(403, "cross-origin websocket connections are not allowed\n")
        supplied = _supplied_token(request, query)
        if supplied is not None and self.token is not None:
            if not hmac.compare_digest(supplied.encode(), self.token.encode()):
                return connection.respond(401, "wrong token\n")
            connection.resonate_http_authorized = True  # type: ignore[attr-defined]
        return None

    async def _http_download(self, connection: ServerConnection, request: Request, path: str,
                             query: str) -> Response:
        """``GET /jobs/<job_id>/<kind>``: a finished job's output file as an attachment."""
        if self.token is not None:
            supplied = _supplied_token(request, query)
            if supplied is None or not hmac.compare_digest(supplied.encode(), self.token.encode()):
                return _http_error(401, P.ErrorCode.UNAUTHORIZED, "this server needs ?token=<token> on downloads")
        parts = path.split("/")
        if len(parts) != 4 or not parts[2] or not parts[3]:
            return _http_error(404, P.ErrorCode.UNKNOWN_OUTPUT, "downloads are at /jobs/<job_id>/<kind>")
        job_id, kind = (urllib.parse.unquote(x) for x in parts[2:4])
        try:
            P.decode_client_message(P.encode(P.Fetch(job_id=job_id, kind=kind)), self.limits)  # same checks as fetch
            out = self.output_file(job_id, kind)
        except P.ProtocolError as exc:
            status = {P.ErrorCode.OUTPUT_NOT_READY: 409, P.ErrorCode.BAD_FIELD: 404}.get(exc.code, 404)
            code = P.ErrorCode.UNKNOWN_OUTPUT if exc.code == P.ErrorCode.BAD_FIELD else exc.code
            return _http_error(status, code, exc.message)
        if out.size > self.http_download_max_bytes:
            return _http_error(
                413, P.ErrorCode.TOO_LARGE_FOR_HTTP,
                f"{out.filename} is {out.size} bytes, more than this route sends "
                f"({self.http_download_max_bytes}); download it with the websocket 'fetch' message "
                "(the web page and the Python client do this)",
            )
        try:
            body = await asyncio.to_thread(out.path.read_bytes)
        except OSError:
            return _http_error(404, P.ErrorCode.OUTPUT_UNAVAILABLE, f"{out.filename} is gone from the server")
        quoted = urllib.parse.quote(out.filename)
        ascii_name = re.sub(r'[^A-Za-z0-9._ ()-]', "_", out.filename)
        return _http_response(200, body, out.mime, extra=[
            ("Content-Disposition", f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"),
        ])

    def _origin_ok(self, origin: str, host: str) -> bool:
        if origin in self.allowed_origins:
            return True
        parsed = urllib.parse.urlsplit(origin)
        return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host.lower()

    def _health(self, connection: ServerConnection) -> Response:
        body = json.dumps(
            {
                "status": "closing" if self._closing else "ok",
                "server": SERVER_NAME,
                "protocol": P.PROTOCOL_VERSION,
                "jobs_running": self.running_jobs(),
                "jobs_known": len(self.jobs),
                "max_jobs": self.limits.max_jobs,
                "connections": len(self._connections),
                "auth": self.token is not None,
            }
        ).encode()
        return _http_response(200, body, "application/json")

    def _static(self, connection: ServerConnection, path: str) -> Response:
        if self.web_root is None:
            if path == "/":
                return connection.respond(200, f"Resonate gateway. Websocket endpoint: {WS_PATH}\n")
            return connection.respond(404, "not found\n")
        rel = urllib.parse.unquote(path).lstrip("/")
        parts = PurePosixPath(rel).parts
        if "\x00" in rel or "\\" in rel or any(p in ("..", ".") for p in parts):
            return connection.respond(404, "not found\n")
        target = Path(os.path.realpath(self.web_root.joinpath(*parts)))
        if target.is_dir():
            target = target / "index.html"
        if not (target == self.web_root or target.is_relative_to(self.web_root)) or not target.is_file():
            return connection.respond(404, "not found\n")
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
            ctype += "; charset=utf-8"
        return _http_response(200, target.read_bytes(), ctype)

    # ---- websocket side ---------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        conn = _Connection(self, ws)
        self._connections.add(conn)
        writer = asyncio.create_task(conn.outbox.run(ws), name="gateway-writer")
        try:
            await conn.serve()
        except ConnectionClosed:
            pass
        finally:
            conn.outbox.closed = True
            await conn.shutdown()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            self._connections.discard(conn)

    # ---- jobs -------------------------------------------------------------------------
    def get_job(self, job_id: str) -> _Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise P.ProtocolError(
                f"no job {job_id!r} on this server (it never existed or expired)",
                code=P.ErrorCode.UNKNOWN_JOB,
                job_id=job_id,
            )
        return job

    def output_file(self, job_id: str, kind: str, ref: Optional[str] = None) -> OutputFile:
        """Output ``kind`` of job ``job_id`` if it may be downloaded (see :mod:`.outputs`).

        Raises ``ProtocolError``: ``unknown_job`` (with the ``job_id``),
        ``output_not_ready``, ``unknown_output`` or ``output_unavailable``.
        """
        job = self.get_job(job_id)
        outputs = job.finished.outputs if job.finished is not None else {}
        return resolve_output(job.id, kind, state=job.state, outputs=outputs, job_dir=job.spec.out_dir, ref=ref)

    def resolve_input_path(self, raw: str) -> Path:
        """Resolve a ``path`` input and confine it to :attr:`allowed_roots`.

        Raises ``ProtocolError`` ``path_not_allowed`` (outside the roots, ``..``,
        no roots configured) or ``input_not_found`` (no such regular file).
        """
        E = P.ErrorCode
        if not self.allowed_roots:
            raise P.ProtocolError(
                "this server accepts uploads only: no folders are open for path inputs",
                code=E.PATH_NOT_ALLOWED,
            )
        pure = PurePosixPath(raw)
        if ".." in pure.parts or "\x00" in raw:
            raise P.ProtocolError("input paths may not contain '..'", code=E.PATH_NOT_ALLOWED)
        p = Path(raw) if pure.is_absolute() else self.allowed_roots[0] / raw
        real = Path(os.path.realpath(p))
        if not any(real == r or real.is_relative_to(r) for r in self.allowed_roots):
            raise P.ProtocolError(
                f"input path {raw!r} is outside the folders this server may read", code=E.PATH_NOT_ALLOWED
            )
        if not real.is_file():
            raise P.ProtocolError(f"input file {raw!r} does not exist", code=E.INPUT_NOT_FOUND)
        return real

    def create_job(self, msg: P.StartJob) -> _Job:
        """Validate a ``start_job`` and start its worker thread."""
        E = P.ErrorCode
        try:
            if self._closing:
                raise P.ProtocolError("the server is shutting down", code=E.SHUTTING_DOWN)
            if self.running_jobs() >= self.limits.max_jobs:
                raise P.ProtocolError(
                    f"the server already runs {self.limits.max_jobs} jobs; try again when one ends",
                    code=E.TOO_MANY_JOBS,
                )
            path = self.resolve_input_path(msg.input.path) if isinstance(msg.input, P.PathInput) else None
        except P.ProtocolError as exc:
            exc.ref = msg.ref
            raise
        assert self.spool_dir is not None and self.output_dir is not None
        job_id = secrets.token_hex(16)
        job_dir = self.spool_dir / "jobs" / job_id
        job_dir.mkdir(parents=True)
        out_dir = self.output_dir / job_id
        out_dir.mkdir(parents=True)
        cancel = threading.Event()
        source: PathSource | UploadSource
        if path is not None:
            source = PathSource(path)
        else:
            up = msg.input
            assert isinstance(up, P.UploadInput)
            suffix = Path(up.filename or "").suffix
            if not re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix):
                suffix = ".bin"
            source = UploadSource(
                job_dir / f"upload{suffix.lower()}",  # keep the extension: it helps format detection
                format=up.format,
                sample_rate=up.sample_rate,
                channels=up.channels,
                filename=up.filename,
                size=up.size,
                cancel=cancel,
                idle_timeout_s=self.upload_idle_timeout_s,
            )
        spec = JobSpec(
            job_id=job_id,
            settings=dict(msg.settings),
            out_dir=out_dir,
            send_stems=msg.options.send_stems,
            output=msg.options.output,
        )
        job = _Job(self, job_id, spec, source, AudioSpool(job_dir / "audio"), cancel)
        self.jobs[job_id] = job
        job.thread = threading.Thread(target=self._run_worker, args=(job,), name=f"job-{job_id[:8]}", daemon=True)
        job.thread.start()
        log.info("job %s started (%s)", job_id, "path" if path else msg.input.format)
        return job

    def _run_worker(self, job: _Job) -> None:
        error: Optional[ResonateError] = None
        try:
            self.backend.start(job.id, job.spec, job.source, job.emit, job.cancel)
        except ResonateError as exc:
            error = exc
        except Exception as exc:  # a bug in the backend: report it without details
            log.exception("job %s: backend crashed", job.id)
            error = ResonateError(
                f"the job failed with an internal error ({type(exc).__name__}); see the server log",
                code=P.ErrorCode.INTERNAL_ERROR,
            )
        if error is None and job.cancel.is_set():
            error = JobCancelled("the job was cancelled")
        try:
            self._loop.call_soon_threadsafe(self._on_worker_exit, job, error)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _on_worker_exit(self, job: _Job, error: Optional[ResonateError]) -> None:
        job.worker_done = True
        if error is not None:
            state = "cancelled" if error.code == P.ErrorCode.CANCELLED else "failed"
            job.end(P.Error.from_exception(error, job_id=job.id), state)
        else:
            fin = job.finished or Finished(report={}, outputs={})
            job.end(P.JobDone(job_id=job.id, report=fin.report, outputs=fin.outputs), "done")
        log.info("job %s ended: %s (%d audio messages)", job.id, job.state, job.n_blocks)
        if job.upload is not None:
            job.upload.discard()
        if self._loop is not None and not self._closing:
            self._loop.call_later(self.job_ttl_s, self._expire, job.id)

    def _expire(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            self._drop_job(job)

    def _drop_job(self, job: _Job) -> None:
        self.jobs.pop(job.id, None)
        job.spool.delete()
        if job.upload is not None:
            job.upload.discard()
        shutil.rmtree(job.spool.directory.parent, ignore_errors=True)

    def fail_job(self, job: _Job, error: ResonateError, state: str = "failed") -> None:
        """End ``job`` now with ``error`` (bad upload, cancel); its worker is told to stop."""
        if job.terminal_frame is not None:
            return
        job.cancel.set()
        if job.upload is not None:
            job.upload.abort(error if isinstance(error, JobCancelled) else JobCancelled(error.message))
        job.end(P.Error.from_exception(error, job_id=job.id), state)
        log.info("job %s ended early: %s (%s)", job.id, error.code, error.message)

    def upload_chunk(self, job: _Job, msg: P.UploadChunk) -> None:
        E = P.ErrorCode
        if job.upload is None:
            raise P.ProtocolError(f"job {job.id} reads a server path; it takes no upload", code=E.BAD_UPLOAD)
        if job.terminal_frame is not None:
            return  # chunks still in flight after a cancel or failure: ignore
        if job.upload_ended:
            return self.fail_job(job, P.ProtocolError("upload_chunk after upload_end", code=E.BAD_UPLOAD))
        if msg.index != job.upload_next_index:
            return self.fail_job(
                job,
                P.ProtocolError(
                    f"upload chunk index {msg.index} out of order; expected {job.upload_next_index}",
                    code=E.BAD_UPLOAD,
                ),
            )
        total = job.upload_bytes + len(msg.data)
        if total > self.limits.max_upload_bytes:
            return self.fail_job(
                job,
                P.ProtocolError(
                    f"upload exceeds the limit of {self.limits.max_upload_bytes} bytes", code=E.UPLOAD_TOO_LARGE
                ),
            )
        if job.upload.size is not None and total > job.upload.size:
            return self.fail_job(
                job,
                P.ProtocolError(f"upload exceeds its declared size of {job.upload.size} bytes", code=E.BAD_UPLOAD),
            )
        job.upload.append(msg.data)
        job.upload_bytes = total
        job.upload_next_index += 1

    def upload_end(self, job: _Job, msg: P.UploadEnd) -> None:
        E = P.ErrorCode
        if job.upload is None:
            raise P.ProtocolError(f"job {job.id} reads a server path; it takes no upload", code=E.BAD_UPLOAD)
        if job.terminal_frame is not None or job.upload_ended:
            return
        problems = []
        if msg.chunks is not None and msg.chunks != job.upload_next_index:
            problems.append(f"{job.upload_next_index} chunks arrived, upload_end says {msg.chunks}")
        for declared in (msg.size, job.upload.size):
            if declared is not None and declared != job.upload_bytes:
                problems.append(f"{job.upload_bytes} bytes arrived, {declared} were announced")
        if problems:
            return self.fail_job(job, P.ProtocolError("; ".join(problems), code=E.BAD_UPLOAD))
        job.upload_ended = True
        job.upload.end()


def _http_response(status: int, body: bytes, content_type: str,
                   extra: Optional[list[tuple[str, str]]] = None) -> Response:
    import http

    st = http.HTTPStatus(status)
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            *(extra or []),
        ]
    )
    return Response(st.value, st.phrase, headers, body)


def _http_error(status: int, code: str, message: str) -> Response:
    """A plain-text HTTP error: ``error [code]: message``."""
    return _http_response(status, f"error [{code}]: {message}\n".encode(), "text/plain; charset=utf-8")


def _supplied_token(request: Request, query: str) -> Optional[str]:
    """The token a request carries: ``Authorization: Bearer`` header, else ``?token=``."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    q = urllib.parse.parse_qs(query).get("token")
    return q[0] if q else None


def run_gateway(**kwargs: Any) -> None:
    """Blocking entry point: ``run_gateway(host=..., port=..., token=..., backend=...)``."""
    server = GatewayServer(**kwargs)

    async def main() -> None:
        await server.serve_forever()

    asyncio.run(main())
