"""One websocket connection of the gateway: pumps frames through a
:class:`resonate_protocol.ServerSession` and carries out what it asks.

The session holds the protocol's rules (hello first, auth, ack window,
errors); this module only moves bytes: frames in from the socket, the
session's replies and the followed jobs' output out through a bounded
:class:`Outbox`, and ``fetch`` downloads read from disk one piece at a time.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
from typing import TYPE_CHECKING, Any, Optional

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

import resonate_protocol as P
from engine.errors import ResonateError

from .jobs import JobCancelled
from .live_job import LiveJob
from .outputs import OutputFile

if TYPE_CHECKING:  # pragma: no cover
    from .server import GatewayServer

log = logging.getLogger("resonate.gateway")

SERVER_NAME = "resonate-gateway/0.1"
FEATURES = ("resume", "ack", "stems", "upload", "path_input", "fetch", "http_download", "reference")
#: ``fetch`` downloads one connection may run at once
MAX_FETCHES_PER_CONNECTION = 8
#: audio frames one job's pump sends before it lets the others run
PUMP_BURST = 8
#: frames larger than this (bytes) are decoded in a worker thread, off the event loop
OFF_LOOP_DECODE_BYTES = 64 * 1024
#: seconds the receive loop waits for the writer to send pending replies before it
#: decides the client does not read them (the writer is blocked by a full TCP window)
REPLY_DRAIN_S = 30.0


class Gone(Exception):
    """The connection's writer stopped, or the client does not read."""


class Outbox:
    """Outgoing frames of one connection, sent in FIFO order by one writer task.

    Job output (audio, progress, info, the job's last message, file pieces)
    waits for one of ``data_slots`` slots, so a slow reader stalls the job's
    pump, not memory.  Replies to requests are queued at once, and before the
    receive loop reads the next request it waits (:meth:`control_room`) while
    ``control_cap`` replies are pending: a client that sends requests faster
    than the writer sends the replies is paced by TCP, and only a client that
    does not read its replies for ``REPLY_DRAIN_S`` seconds is dropped.
    """

    def __init__(self, data_slots: int = 8, control_cap: int = 256):
        self._q: asyncio.Queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(data_slots)
        self._control = 0
        self._control_cap = control_cap
        self._room = asyncio.Event()
        self.closed = False

    def put_control(self, frame: bytes) -> None:
        if self.closed:
            return
        if self._control >= 2 * self._control_cap:  # cannot happen with control_room(): a safety net
            raise Gone("client does not read its replies")
        self._control += 1
        self._q.put_nowait((False, frame))

    async def control_room(self, timeout: float) -> None:
        """Return once fewer than ``control_cap`` replies wait; :class:`Gone` if the writer
        could not send them within ``timeout`` seconds (the client does not read)."""
        try:
            async with asyncio.timeout(timeout):
                while self._control >= self._control_cap and not self.closed:
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            raise Gone("client does not read its replies") from None

    async def put_data(self, frame: bytes) -> None:
        await self._slots.acquire()
        if self.closed:
            self._slots.release()
            raise Gone()
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
                        self._room.set()
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


class Connection:
    """The I/O pump of one websocket connection."""

    def __init__(self, server: "GatewayServer", ws: ServerConnection):
        self.server = server
        self.ws = ws
        self.outbox = Outbox(data_slots=server.data_slots)
        self.http_authorized = bool(getattr(ws, "resonate_http_authorized", False))
        self.session = P.ServerSession(server.limits, server_name=SERVER_NAME, features=FEATURES,
                                       authorize=self._authorized, max_errors=server.max_protocol_errors)
        self.pumps: dict[str, asyncio.Task] = {}
        self.wakes: dict[str, asyncio.Event] = {}
        self.fetches: dict[tuple[str, str], asyncio.Task] = {}

    def _authorized(self, hello: P.Hello) -> bool:
        token = self.server.token
        if token is None:
            return True
        if hello.token is not None:
            return hmac.compare_digest(hello.token.encode(), token.encode())
        return self.http_authorized

    def flush(self) -> None:
        """Hand the session's replies to the writer."""
        for frame in self.session.data_to_send():
            self.outbox.put_control(frame)

    async def _close(self) -> None:
        """The session ended: send its last frames (the fatal error), then close."""
        close = self.session.close
        assert close is not None
        try:
            self.flush()
        except Gone:
            pass
        await self.outbox.drain(timeout=2.0)
        await self.ws.close(close.code, close.reason)

    # ---- main loop ------------------------------------------------------------
    async def serve(self) -> None:
        srv = self.server
        try:
            first = await asyncio.wait_for(self.ws.recv(), srv.hello_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            self.session.hello_timeout(srv.hello_timeout_s)
            await self._close()
            return
        except ConnectionClosed:
            return
        self.session.receive_frame(first, await self._decode(first))
        if self.session.close is not None:
            await self._close()
            return
        self.flush()
        async for frame in self.ws:
            try:
                await self.outbox.control_room(REPLY_DRAIN_S)
                for event in self.session.receive_frame(frame, await self._decode(frame)):
                    await self._on_event(event)
                if self.session.close is not None:
                    await self._close()
                    return
                self.flush()
            except Gone:
                await self.ws.close(1008, "client does not read")
                return

    async def _decode(self, frame: Any) -> Any:
        """Frames above ``OFF_LOOP_DECODE_BYTES`` are decoded in a worker thread, so a big
        frame never stalls the other connections (None: let the session decode it here)."""
        if len(frame) <= OFF_LOOP_DECODE_BYTES:
            return None
        return await asyncio.to_thread(self.session.decode, frame)

    async def _on_event(self, event: Any) -> None:
        srv = self.server
        if isinstance(event, P.WindowOpened):
            wake = self.wakes.get(event.job_id)
            if wake is not None:
                wake.set()
        elif isinstance(event, P.UploadBroken):
            job = srv.jobs.get(event.job_id)
            if job is not None and job.uploads:
                srv.fail_job(job, event.error)  # the upload stream is broken: the job cannot go on
            else:
                self.session.send_error(event.error, ref=event.error.ref)
        elif isinstance(event, P.Message):  # a request: start_job, resume, cancel, upload, fetch
            try:
                self._request(event)
            except (P.ProtocolError, ResonateError) as exc:
                self.session.request_failed(event, exc)
            except (Gone, asyncio.CancelledError):
                raise
            except Exception as exc:  # a bug: keep the connection, report without details
                log.exception("error handling %s", event.TYPE)
                self.session.request_failed(event, ResonateError(
                    f"internal error handling {event.TYPE} ({type(exc).__name__})",
                    code=P.ErrorCode.INTERNAL_ERROR))

    def _request(self, msg: P.ClientMessage) -> None:
        srv = self.server
        if isinstance(msg, P.StartJob):
            job = srv.create_job(msg, client=self)  # raises ProtocolError / ResonateError with ref
            self.session.accept_job(job.id, msg.ref)
            self._subscribe(job)
        elif isinstance(msg, P.Resume):
            job = srv.get_job(msg.job_id)
            self.session.accept_resume(msg)
            self._subscribe(job)
        elif isinstance(msg, P.Cancel):
            job = srv.get_job(msg.job_id)
            if job.terminal_frame is not None:
                raise P.ProtocolError(f"job {job.id} already ended ({job.state}); there is nothing to cancel",
                                      code=P.ErrorCode.JOB_ENDED)
            srv.fail_job(job, JobCancelled("the job was cancelled by the client"), state="cancelled")
        elif isinstance(msg, P.UploadChunk):
            srv.upload_chunk(srv.get_job(msg.job_id), msg)
        elif isinstance(msg, P.UploadEnd):
            srv.upload_end(srv.get_job(msg.job_id), msg)
        elif isinstance(msg, P.Fetch):
            self._start_fetch(msg)

    # ---- downloads ----------------------------------------------------------------
    def _start_fetch(self, msg: P.Fetch) -> None:
        """Check a ``fetch`` and start sending the file; errors carry the fetch's ``ref``."""
        try:
            out = self.server.output_file(msg.job_id, msg.kind, ref=msg.ref)
        except P.ProtocolError as exc:
            exc.ref = msg.ref
            raise
        P.check_range(msg.offset, out.size, out.filename, ref=msg.ref)
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

    def _reply_error(self, exc: P.ProtocolError, ref: Optional[str]) -> None:
        """An error from a background task (not answering a frame just received)."""
        self.session.send_error(exc, ref=ref)
        try:
            self.flush()
        except Gone:
            pass

    async def _send_file(self, out: OutputFile, offset: int, ref: Optional[str]) -> None:
        """Send ``out`` from byte ``offset`` in ``file_chunk`` messages (one chunk in memory at a time
        per waiting slot); stop with ``output_unavailable`` if the file changes underneath."""
        step = self.server.file_chunk_bytes
        pos = offset
        try:
            fd = os.open(out.path, os.O_RDONLY)
        except OSError:
            self._reply_error(P.ProtocolError(f"cannot open {out.filename}", code=P.ErrorCode.OUTPUT_UNAVAILABLE),
                              ref)
            return
        try:
            while True:
                n = min(step, out.size - pos)
                data = await asyncio.to_thread(os.pread, fd, n, pos) if n else b""
                if len(data) != n or os.fstat(fd).st_size != out.size:
                    self._reply_error(
                        P.ProtocolError(f"{out.filename} changed on the server while it was sent; fetch it again",
                                        code=P.ErrorCode.OUTPUT_UNAVAILABLE),
                        ref,
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
        except Gone:
            pass
        finally:
            os.close(fd)

    # ---- following jobs ----------------------------------------------------------
    def _subscribe(self, job: LiveJob) -> None:
        """Start (or restart) the pump of ``job``; the session already follows it."""
        old = self.pumps.pop(job.id, None)
        if old is not None:
            old.cancel()
        wake = self.wakes[job.id] = asyncio.Event()
        self.pumps[job.id] = asyncio.create_task(self._pump(job, wake), name=f"pump-{job.id}")

    async def _pump(self, job: LiveJob, wake: asyncio.Event) -> None:
        """Send one job's output to this connection: infos, latest progress, audio from
        the spool in seq order (as the session's ack window allows), then the job's last message."""
        session = self.session
        info_next = 0
        progress_seen = 0
        queue_seen = 0
        job.subscribers.add(wake)
        me = asyncio.current_task()
        try:
            while True:
                wake.clear()
                if job.queue_version != queue_seen and job.queue_frame is not None:
                    queue_seen = job.queue_version
                    await self.outbox.put_data(job.queue_frame)
                while info_next < job.info_total:
                    i = max(info_next, job.info_first)
                    info_next = i + 1
                    await self.outbox.put_data(job.info_frame(i))
                if job.progress_version != progress_seen and job.progress_frame is not None:
                    progress_seen = job.progress_version
                    await self.outbox.put_data(job.progress_frame)
                sent = 0
                while sent < PUMP_BURST:
                    seq = session.next_audio_seq(job.id, job.n_blocks)
                    if seq is None:
                        break
                    sent += 1
                    await self.outbox.put_data(job.spool.read(seq))
                if sent == PUMP_BURST:
                    continue
                if job.terminal_frame is not None and session.sent_all(job.id, job.n_blocks):
                    await self.outbox.put_data(job.terminal_frame)
                    return
                await wake.wait()
        except Gone:
            pass
        except ResonateError as exc:  # spool deleted (job expired) while sending
            log.info("job %s: stopped following: %s", job.id, exc)
        finally:
            job.subscribers.discard(wake)
            if self.pumps.get(job.id) is me:
                del self.pumps[job.id]
                self.wakes.pop(job.id, None)
                session.unfollow(job.id)

    async def shutdown(self) -> None:
        tasks = list(self.pumps.values()) + list(self.fetches.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
