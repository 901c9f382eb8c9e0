"""The gateway's server: listens, keeps the jobs, and hands each websocket to a
:class:`~.connection.Connection` (websockets >= 13 asyncio API).

One port serves the websocket protocol on ``/ws`` (the sans-I/O rules are in
:mod:`resonate_protocol`; see ``docs/protocol.md``) and plain HTTP
(:mod:`.http_routes`: ``/health``, ``/presets``, ``/jobs/<job_id>/<kind>``,
static files).

Design points:

* Jobs run in worker threads through a pluggable :class:`~.jobs.JobBackend`.
  Their ``audio`` output is encoded once and appended to a per-job disk spool
  (:class:`~.spool.AudioSpool`, through :class:`~.live_job.LiveJob`); each
  connection that follows a job reads the spool by seq, so a slow or absent
  client costs disk, not memory, and ``resume`` replays any seq exactly once,
  then continues live.
* Outgoing frames go through a per-connection outbox whose audio part is
  bounded (``data_slots`` frames); the websocket's write buffer pushes back
  on it, so the server never buffers a whole concert for a slow client.
* Uploads are spooled to disk too (:class:`~.jobs.UploadInput`); their order
  and sizes are checked by :class:`resonate_protocol.UploadState`.
* ``fetch`` streams a finished job's file in ``file_chunk`` messages read
  from disk one at a time through the same bounded outbox.
* A bad frame or upload fails only that request or job; other jobs and
  connections carry on.  Jobs outlive their connection (for ``job_ttl_s``
  seconds after they end) so a client can come back and resume.
* At most ``limits.max_jobs`` jobs run; further ones wait in a bounded queue
  (``limits.max_queued``) that takes one job per client connection in turn,
  and learn their place from ``queued`` messages.  Only a full queue refuses
  (``too_many_jobs``).
* Bounded resources: a finished job holds no open file (its spool is
  sealed), at most ``max_known_jobs`` jobs are remembered (the oldest
  finished ones are forgotten first), and running out of file descriptors
  costs one log line and a refused request, not the server (asyncio's
  accept backs off and retries).
"""
from __future__ import annotations

import asyncio
import collections
import errno
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Optional

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import resonate_protocol as P
from engine.errors import ResonateError, SettingsError
from resonate_stream.events import Finished

from .connection import SERVER_NAME, Connection
from .http_routes import WS_PATH, process_request
from .jobs import JobBackend, JobCancelled, JobSpec, FileJobInput, RunnerBackend, UploadJobInput
from .live_job import LiveJob, jsonable
from .outputs import OutputFile, resolve_output
from .spool import AudioSpool

log = logging.getLogger("resonate.gateway")


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
    max_known_jobs:
        Jobs remembered at once (running, queued and finished); when a new job
        would exceed it, the oldest finished jobs are forgotten (their spool
        deleted) before their ``job_ttl_s`` ran out.
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
        max_known_jobs: int = 256,
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
        self.presets_body = json.dumps(jsonable(dict(presets))).encode() if presets is not None else None
        self.jobs: dict[str, LiveJob] = {}
        self.max_known_jobs = max(1, int(max_known_jobs))
        #: queued jobs per client, in the order the clients get their next turn
        self._queue: "collections.OrderedDict[Any, collections.deque[LiveJob]]" = collections.OrderedDict()
        self._fd_warned = 0.0
        self._connections: set[Connection] = set()
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
        self._loop.set_exception_handler(self._loop_exception)
        log.info("gateway listening on %s", self.url)
        return self

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """Out of file descriptors in ``accept``: one line (at most every 10 s) instead of a
        traceback per attempt; asyncio itself stops accepting for a second, then retries."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            now = time.monotonic()
            if now - self._fd_warned > 10.0:
                self._fd_warned = now
                log.warning("out of file descriptors (%s): new connections wait; %d jobs known, %d connections",
                            exc.strerror or exc, len(self.jobs), len(self._connections))
            return
        loop.default_exception_handler(context)

    async def close(self) -> None:
        """Stop: cancel jobs, close connections, wait for workers, remove own spool."""
        self._closing = True
        for job in list(self.jobs.values()):
            job.cancel.set()
            for up in job.uploads:
                up.abort(JobCancelled("the server is shutting down"))
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
        """Jobs whose worker runs (queued ones not counted)."""
        return sum(1 for j in self.jobs.values() if j.thread is not None and not j.worker_done)

    def queued_jobs(self) -> int:
        """Jobs waiting in the queue."""
        return sum(len(q) for q in self._queue.values())

    # ---- websocket side ---------------------------------------------------------------
    async def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        return await process_request(self, connection, request)

    async def _handle(self, ws: ServerConnection) -> None:
        conn = Connection(self, ws)
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
    def get_job(self, job_id: str) -> LiveJob:
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

    def resolve_input_path(self, raw: str, what: str = "input") -> Path:
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
                f"{what} path {raw!r} is outside the folders this server may read", code=E.PATH_NOT_ALLOWED
            )
        if not real.is_file():
            raise P.ProtocolError(f"{what} file {raw!r} does not exist", code=E.INPUT_NOT_FOUND)
        return real

    def create_job(self, msg: P.StartJob, client: Any = None) -> LiveJob:
        """Validate a ``start_job``; start its worker thread, or queue it behind the running
        jobs (``client``: who asked, for the queue's turns)."""
        E = P.ErrorCode
        try:
            if self._closing:
                raise P.ProtocolError("the server is shutting down", code=E.SHUTTING_DOWN)
            must_wait = self.running_jobs() >= self.limits.max_jobs or self.queued_jobs() > 0
            if must_wait and self.queued_jobs() >= self.limits.max_queued:
                raise P.ProtocolError(
                    f"the server runs {self.limits.max_jobs} jobs and {self.queued_jobs()} more wait (the queue "
                    "is full); try again when one ends",
                    code=E.TOO_MANY_JOBS,
                )
            path = self.resolve_input_path(msg.input.path) if isinstance(msg.input, P.PathInput) else None
            ref_path = (self.resolve_input_path(msg.reference.path, what="reference")
                        if isinstance(msg.reference, P.PathInput) else None)
            self._forget_finished()
            job = self._new_job(msg, path, ref_path)
        except P.ProtocolError as exc:
            exc.ref = msg.ref
            raise
        job.client = client
        self.jobs[job.id] = job
        what = ("path" if path else msg.input.format) + (", with a reference" if msg.reference is not None else "")
        preset = msg.settings.get("preset") if isinstance(msg.settings, dict) else None
        if must_wait:
            self._queue.setdefault(client, collections.deque()).append(job)
            self._update_queue()
            log.info("job %s accepted (%s, preset %s): queued at position %s of %d", job.id, what,
                     preset or "default", job.queue_position, self.queued_jobs())
        else:
            log.info("job %s accepted (%s, preset %s)", job.id, what, preset or "default")
            self._start_worker(job)
        return job

    def _new_job(self, msg: P.StartJob, path: Optional[Path], ref_path: Optional[Path] = None) -> LiveJob:
        """The job's folders, input and spool (``server_busy`` when the server is out of files)."""
        assert self.spool_dir is not None and self.output_dir is not None
        job_id = secrets.token_hex(16)
        job_dir = self.spool_dir / "jobs" / job_id
        out_dir = self.output_dir / job_id
        try:
            return self._make_job(msg, path, job_id, job_dir, out_dir, ref_path)
        except OSError as exc:
            shutil.rmtree(job_dir, ignore_errors=True)
            shutil.rmtree(out_dir, ignore_errors=True)
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOSPC, errno.ENOMEM):
                log.warning("job refused: %s", exc.strerror or exc)
                raise P.ProtocolError(
                    f"the server is out of resources ({exc.strerror or exc}); try again in a moment",
                    code=P.ErrorCode.SERVER_BUSY) from None
            raise

    def _make_job(self, msg: P.StartJob, path: Optional[Path], job_id: str, job_dir: Path, out_dir: Path,
                  ref_path: Optional[Path] = None) -> LiveJob:
        job_dir.mkdir(parents=True)
        out_dir.mkdir(parents=True)
        cancel = threading.Event()
        reference: FileJobInput | UploadJobInput | None = None
        if ref_path is not None:
            reference = FileJobInput(ref_path)
        elif isinstance(msg.reference, P.UploadInput):
            # spooled under the client's file name (sanitised): the job's infos and report name it,
            # and its extension helps format detection
            name = re.sub(r"[^A-Za-z0-9._ -]", "_", Path(msg.reference.filename or "").name)[:100].strip(" .")
            (job_dir / "reference").mkdir()
            reference = UploadJobInput(
                job_dir / "reference" / (name or "reference.bin"),
                format="encoded",
                filename=msg.reference.filename,
                size=msg.reference.size,
                cancel=cancel,
                idle_timeout_s=self.upload_idle_timeout_s,
            )
        job_input: FileJobInput | UploadJobInput
        if path is not None:
            job_input = FileJobInput(path)
        else:
            up = msg.input
            assert isinstance(up, P.UploadInput)
            suffix = Path(up.filename or "").suffix
            if not re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix):
                suffix = ".bin"
            job_input = UploadJobInput(
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
            reference=reference,
        )
        try:
            spool = AudioSpool(job_dir / "audio")
        except OSError:
            for up in (job_input, reference):
                if isinstance(up, UploadJobInput):
                    up.abort(JobCancelled("the job could not start"))
            raise
        return LiveJob(self, job_id, spec, job_input, spool, cancel)

    def _start_worker(self, job: LiveJob) -> None:
        if job.queue_frame is not None:  # it waited: tell its followers it leaves the queue
            job.set_queue(0, self.queued_jobs())
        job.started_at = time.monotonic()
        job.thread = threading.Thread(target=self._run_worker, args=(job,), name=f"job-{job.id[:8]}", daemon=True)
        job.thread.start()
        waited = job.started_at - job.accepted_at
        log.info("job %s started%s", job.id, f" after {waited:.1f} s in the queue" if waited >= 0.05 else "")

    # ---- the queue ----------------------------------------------------------------
    def _update_queue(self) -> None:
        """Give every queued job its position: one job per client in turn, clients in the
        order of their next turn."""
        lanes = [list(q) for q in self._queue.values()]
        order: list[LiveJob] = []
        depth = 0
        while True:
            row = [lane[depth] for lane in lanes if len(lane) > depth]
            if not row:
                break
            order += row
            depth += 1
        for pos, job in enumerate(order, 1):
            if job.queue_position != pos or job.queue_waiting != len(order):
                job.set_queue(pos, len(order))

    def _start_queued(self) -> None:
        """Start queued jobs while slots are free (the next client in turn first)."""
        started = False
        while self._queue and not self._closing and self.running_jobs() < self.limits.max_jobs:
            client, lane = next(iter(self._queue.items()))
            job = lane.popleft()
            del self._queue[client]
            if lane:
                self._queue[client] = lane  # its next job waits for the other clients' turns
            if job.terminal_frame is None:
                self._start_worker(job)
                started = True
        if started:
            self._update_queue()

    def _unqueue(self, job: LiveJob) -> bool:
        """Take ``job`` out of the queue; True if it was there."""
        lane = self._queue.get(job.client)
        if lane is None or job not in lane:
            return False
        lane.remove(job)
        if not lane:
            del self._queue[job.client]
        return True

    def _forget_finished(self) -> None:
        """Keep at most ``max_known_jobs - 1`` jobs before a new one: forget the oldest finished."""
        excess = len(self.jobs) - (self.max_known_jobs - 1)
        if excess <= 0:
            return
        finished = sorted((j for j in self.jobs.values() if j.terminal_frame is not None and
                           (j.worker_done or j.thread is None)), key=lambda j: j.created)
        for job in finished[:excess]:
            log.info("job %s forgotten early: more than %d jobs known", job.id, self.max_known_jobs)
            self._drop_job(job)

    def _run_worker(self, job: LiveJob) -> None:
        error: Optional[ResonateError] = None
        try:
            self.backend.start(job.id, job.spec, job.job_input, job.emit, job.cancel)
        except (ResonateError, P.ProtocolError) as exc:
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

    def _on_worker_exit(self, job: LiveJob, error: Optional[ResonateError]) -> None:
        job.worker_done = True
        if error is not None:
            state = "cancelled" if error.code == P.ErrorCode.CANCELLED else "failed"
            job.end(P.Error.from_exception(error, job_id=job.id), state)
        else:
            fin = job.finished or Finished(report={}, outputs={})
            job.end(P.JobDone(job_id=job.id, report=fin.report, outputs=fin.outputs,
                              provenance=fin.report.get("made_by") or {}), "done")
        ran = time.monotonic() - (job.started_at or job.accepted_at)
        audio_s = job.frames_out / job.t_sample_rate if job.t_sample_rate else 0.0
        if error is None:
            log.info("job %s done in %.1f s: %.1f s of audio (%d audio messages)", job.id, ran, audio_s,
                     job.n_blocks)
        else:
            log.info("job %s %s after %.1f s (%s): %s", job.id, job.state, ran, error.code, error.message[:200])
        for up in job.uploads:
            up.discard()
        if self._loop is not None and not self._closing:
            self._loop.call_later(self.job_ttl_s, self._expire, job.id)
        self._start_queued()

    def _expire(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            self._drop_job(job)

    def _drop_job(self, job: LiveJob) -> None:
        if self._unqueue(job):
            self._update_queue()
        self.jobs.pop(job.id, None)
        job.spool.delete()
        for up in job.uploads:
            up.discard()
        shutil.rmtree(job.spool.directory.parent, ignore_errors=True)

    def fail_job(self, job: LiveJob, error: ResonateError, state: str = "failed") -> None:
        """End ``job`` now with ``error`` (bad upload, cancel); its worker is told to stop."""
        if job.terminal_frame is not None:
            return
        job.cancel.set()
        for up in job.uploads:
            up.abort(error if isinstance(error, JobCancelled) else JobCancelled(error.message))
        job.end(P.Error.from_exception(error, job_id=job.id), state)
        log.info("job %s ended early: %s (%s)", job.id, error.code, error.message)
        if self._unqueue(job):  # it never started: nothing else will clean up after it
            job.worker_done = True
            for up in job.uploads:
                up.discard()
            if self._loop is not None and not self._closing:
                self._loop.call_later(self.job_ttl_s, self._expire, job.id)
            self._update_queue()

    def _upload_stream(self, job: LiveJob, stream: str) -> tuple[UploadJobInput, P.UploadState]:
        upload, rules = job.upload_stream(stream)
        if upload is None or rules is None:
            why = ("it has no reference upload (start_job.reference)" if stream == "reference"
                   else "it reads a server path; it takes no upload")
            raise P.ProtocolError(f"job {job.id}: {why}", code=P.ErrorCode.BAD_UPLOAD)
        return upload, rules

    def upload_chunk(self, job: LiveJob, msg: P.UploadChunk) -> None:
        """Spool one ``upload_chunk`` of the job's input or reference (its order and size checked
        by that stream's ``UploadState``)."""
        upload, rules = self._upload_stream(job, msg.stream)
        if job.terminal_frame is not None:
            return  # chunks still in flight after a cancel or failure: ignore
        try:
            data = rules.chunk(msg)
        except P.ProtocolError as exc:
            return self.fail_job(job, exc)
        upload.append(data)
        for other in job.uploads:  # the client is busy with this stream: the other one is not idle
            if other is not upload:
                other.touch()

    def upload_end(self, job: LiveJob, msg: P.UploadEnd) -> None:
        upload, rules = self._upload_stream(job, msg.stream)
        if job.terminal_frame is not None:
            return
        try:
            complete = rules.end(msg)
        except P.ProtocolError as exc:
            return self.fail_job(job, exc)
        if complete:
            upload.end()


def run_gateway(**kwargs: Any) -> None:
    """Blocking entry point: ``run_gateway(host=..., port=..., token=..., backend=...)``."""
    server = GatewayServer(**kwargs)

    async def main() -> None:
        await server.serve_forever()

    asyncio.run(main())
