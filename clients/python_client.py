"""Asyncio Python client of the Resonate gateway.

Depends only on the documented protocol (``docs/protocol.md``) through the
sans-I/O package :mod:`resonate_protocol` (whose :class:`~resonate_protocol.ClientSession`
holds the protocol's rules: hello first, audio seq order, resume, ack,
download offsets), plus ``websockets`` and ``numpy`` (``soundfile`` for
:func:`stream_to_file`).  This module only pumps frames between the socket
and the session.

Example::

    async with ResonateClient("ws://127.0.0.1:8765/ws") as client:
        job = await client.start_job({"preset": "balanced"}, upload_path="gig.m4a")
        async for ev in client.events(job):
            if isinstance(ev, AudioBlock):
                play(ev.audio)            # float32 (channels, frames)
            elif isinstance(ev, JobDone):
                print(ev.report)

or, to write the processed stream to a file progressively and survive a
dropped connection::

    result = await stream_to_file(client, job, "gig-restored.wav")

and, once the job is done, to download its exact final master (resumes by
byte offset after a dropped connection)::

    await client.download(job, "master", "gig-restored.wav")
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import inspect
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Optional, Union

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import resonate_protocol as P
from resonate_protocol import ConnectionLost, Error, Info, JobDone, Progress, ProtocolError

__all__ = [
    "AudioBlock",
    "ConnectionLost",
    "DownloadResult",
    "Error",
    "Info",
    "JobDone",
    "Progress",
    "ProtocolError",
    "ResonateClient",
    "StreamResult",
    "partial_path",
    "process_file",
    "stream_to_file",
]

log = logging.getLogger("resonate.client")

DEFAULT_CHUNK_BYTES = 256 * 1024


@dataclass
class AudioBlock:
    """One processed block.

    ``audio``: float32 ``(channels, frames)``; ``offset``: index of its first
    frame in the output stream (frames at ``sample_rate`` Hz); ``seq``: the
    block's number (0, 1, 2 ... no gaps); ``stems``: name -> ``(channels,
    frames)`` when the job asked for stems; ``received_at``: ``time.monotonic()``
    when it arrived.
    """

    job_id: str
    seq: int
    offset: int
    sample_rate: int
    audio: np.ndarray
    stems: Optional[dict]
    received_at: float

    @property
    def frames(self) -> int:
        return int(self.audio.shape[1])

    @property
    def start_s(self) -> float:
        """Start time of the block in the output, seconds."""
        return self.offset / self.sample_rate


Event = Union[AudioBlock, Progress, Info, JobDone, Error]


class _Inbox:
    """Messages received but not yet consumed, at most ``high_water`` of them: when full,
    the connection's reader waits, so TCP pushes back on the server."""

    def __init__(self, high_water: int = 256):
        self.items: collections.deque = collections.deque()
        self.high_water = high_water
        self.changed = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()
        self.lost = False

    async def put(self, item: Any) -> None:
        while len(self.items) >= self.high_water and not self.lost:
            self.space.clear()
            await self.space.wait()
        self.items.append(item)
        self.changed.set()

    def put_nowait(self, item: Any) -> None:
        self.items.append(item)
        self.changed.set()

    def mark_lost(self) -> None:
        self.lost = True
        self.changed.set()
        self.space.set()

    async def get(self) -> Any:
        while not self.items:
            if self.lost:
                raise ConnectionLost("the connection to the server dropped; reconnect and resume")
            self.changed.clear()
            await self.changed.wait()
        item = self.items.popleft()
        if len(self.items) < self.high_water:
            self.space.set()
        return item


@dataclass
class DownloadResult:
    """What :meth:`ResonateClient.download` wrote.

    ``size``: bytes; ``filename`` / ``mime``: as the server named the file;
    ``reconnects``: dropped connections survived; ``resumed_from``: the byte
    offsets the download went on from after each of them.
    """

    path: Path
    size: int
    filename: str
    mime: str
    reconnects: int
    resumed_from: list


class ResonateClient:
    """Client of one gateway; one websocket connection at a time, any number of jobs.

    ``url``: ``ws://host:port/ws``; ``token``: the server's token if it needs
    one (sent as ``Authorization: Bearer`` and in ``hello``); ``ack_window``:
    > 0 turns on ack flow control (the server sends at most that many blocks
    per job ahead of what this client has consumed); ``max_frame_bytes``: the
    largest frame accepted from the server; timeouts in seconds.
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        client_name: str = "resonate-python-client",
        ack_window: int = 0,
        max_frame_bytes: int = 64 * P.MiB,
        open_timeout: float = 10.0,
        request_timeout: float = 30.0,
        proxy: Any = "auto",
    ):
        self.url = url
        self.token = token
        self.client_name = client_name
        self.ack_window = int(ack_window)
        self.max_frame_bytes = int(max_frame_bytes)
        self.open_timeout = open_timeout
        self.request_timeout = request_timeout
        if proxy == "auto":  # never send loopback traffic through a proxy from the environment
            host = urllib.parse.urlsplit(url).hostname or ""
            proxy = None if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.") else True
        self._proxy = proxy
        self._session = P.ClientSession(client_name=client_name, token=token, ack_window=self.ack_window,
                                        max_frame_bytes=self.max_frame_bytes)
        self._ws: Optional[ClientConnection] = None
        self._reader: Optional[asyncio.Task] = None
        self._welcome_fut: Optional[asyncio.Future] = None
        self._pending_refs: dict[str, asyncio.Future] = {}
        self._pending_resumes: dict[str, asyncio.Future] = {}
        self._pongs: dict[Any, asyncio.Future] = {}
        self._streams: dict[str, _Inbox] = {}
        self._fetches: dict[str, _Inbox] = {}  # fetch ref -> its file_chunk / error messages
        self._uploads: dict[str, asyncio.Task] = {}
        self._started_at: dict[str, float] = {}
        self.connection_errors: collections.deque[Error] = collections.deque(maxlen=64)

    # ---- connection --------------------------------------------------------------
    @property
    def welcome(self) -> Optional[P.Welcome]:
        """The server's ``welcome`` of the current connection."""
        return self._session.welcome

    @property
    def limits(self) -> P.Limits:
        """The server's limits (defaults before connecting)."""
        return self._session.limits

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._reader is not None and not self._reader.done()

    async def connect(self) -> P.Welcome:
        """Open the websocket, say ``hello`` and wait for ``welcome`` (no-op when connected)."""
        if self.connected and self._session.welcome is not None:
            return self._session.welcome
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        kwargs: dict[str, Any] = dict(
            additional_headers=headers,
            max_size=self.max_frame_bytes,
            compression=None,
            open_timeout=self.open_timeout,
        )
        if "proxy" in inspect.signature(connect.__init__).parameters:
            kwargs["proxy"] = self._proxy
        try:
            ws = await connect(self.url, **kwargs)
        except InvalidStatus as exc:
            status = exc.response.status_code
            code = P.ErrorCode.UNAUTHORIZED if status in (401, 403) else P.ErrorCode.HANDSHAKE_REQUIRED
            raise ProtocolError(f"the server refused the websocket connection (HTTP {status})", code=code) from None
        except (OSError, asyncio.TimeoutError, TimeoutError) as exc:
            raise ConnectionLost(f"cannot connect to {self.url}: {exc}") from None
        self._ws = ws
        self._session.reconnected()
        self._welcome_fut = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_loop(ws), name="resonate-client-reader")
        await self._send(self._session.hello())
        try:
            return await asyncio.wait_for(self._welcome_fut, self.request_timeout)
        except BaseException:
            await self._close_ws()
            raise

    async def close(self) -> None:
        """Stop uploads and close the connection (jobs keep running on the server)."""
        for t in self._uploads.values():
            t.cancel()
        await asyncio.gather(*self._uploads.values(), return_exceptions=True)
        await self._close_ws()

    async def _close_ws(self) -> None:
        ws, reader = self._ws, self._reader
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), 5)
            except Exception:
                pass
        if reader is not None:
            try:
                await asyncio.wait_for(reader, 5)
            except BaseException:
                reader.cancel()

    async def reconnect(self, attempts: int = 5, delay_s: float = 0.2) -> P.Welcome:
        """Close the current connection (if any) and open a new one, retrying with back-off."""
        await self._close_ws()
        last: Exception | None = None
        for i in range(max(1, attempts)):
            try:
                return await self.connect()
            except ConnectionLost as exc:
                last = exc
                await asyncio.sleep(delay_s * (2**i))
        assert last is not None
        raise last

    async def __aenter__(self) -> "ResonateClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _send(self, frame: bytes) -> None:
        if self._ws is None:
            raise ConnectionLost("not connected")
        try:
            await self._ws.send(frame)
        except ConnectionClosed:
            raise ConnectionLost("the connection to the server dropped") from None

    # ---- receiving ----------------------------------------------------------------
    def _stream(self, job_id: str) -> _Inbox:
        s = self._streams.get(job_id)
        if s is None:
            s = self._streams[job_id] = _Inbox()
        return s

    async def _read_loop(self, ws: ClientConnection) -> None:
        reason: BaseException = ConnectionLost("the connection to the server dropped")
        try:
            async for frame in ws:
                for event in self._session.receive_frame(frame):
                    await self._dispatch(event)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # pragma: no cover - defensive
            log.exception("client reader crashed")
            reason = ConnectionLost(f"client reader failed: {exc}")
        finally:
            if ws is self._ws:
                self._ws = None
                self._session.connection_lost()
            for job_id, s in self._streams.items():
                if not self._session.ended(job_id):
                    s.mark_lost()
            for q in self._fetches.values():
                q.mark_lost()
            futs = [self._welcome_fut, *self._pending_refs.values(), *self._pending_resumes.values(),
                    *self._pongs.values()]
            for fut in futs:
                if fut is not None and not fut.done():
                    fut.set_exception(reason)
            self._pending_refs.clear()
            self._pending_resumes.clear()
            self._pongs.clear()

    async def _dispatch(self, msg: Any) -> None:
        """One event of the session: a server message, ``SequenceBroken`` or ``BadFrame``."""
        if isinstance(msg, P.BadFrame):
            log.warning("ignoring a bad frame from the server: %s", msg.error)
        elif isinstance(msg, P.SequenceBroken):
            q = self._fetches.get(msg.ref) if msg.ref is not None else self._stream(msg.job_id)
            if q is not None:
                q.put_nowait(msg.error)
        elif isinstance(msg, P.Welcome):
            if self._welcome_fut is not None and not self._welcome_fut.done():
                self._welcome_fut.set_result(msg)
        elif isinstance(msg, P.JobAccepted):
            fut = None
            if msg.ref is not None:
                fut = self._pending_refs.pop(msg.ref, None)
            elif msg.resumed_from is not None:
                fut = self._pending_resumes.pop(msg.job_id, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif isinstance(msg, P.FileChunk):
            q = self._fetches.get(msg.ref) if msg.ref is not None else None
            if q is not None:  # else: the rest of a fetch given up on
                await q.put(msg)
        elif isinstance(msg, P.Error) and msg.ref is not None and msg.ref in self._fetches:
            self._fetches[msg.ref].put_nowait(msg)  # a failed fetch (the job itself is not over)
        elif isinstance(msg, P.Error):
            self._on_error(msg)
            if msg.job_id is not None:
                upload = self._uploads.get(msg.job_id)
                if upload is not None and not upload.done():
                    upload.cancel()  # the job is over: stop sending its input
                self._stream(msg.job_id).put_nowait(msg)
        elif isinstance(msg, P.Pong):
            fut = self._pongs.pop(msg.data, None)
            if fut is not None and not fut.done():
                fut.set_result(time.monotonic())
        elif isinstance(msg, P.Audio):
            await self._stream(msg.job_id).put((msg, time.monotonic()))
        elif isinstance(msg, P.JobDone):
            self._stream(msg.job_id).put_nowait(msg)
        elif isinstance(msg, (P.Progress, P.Info)):
            if msg.job_id is not None:
                await self._stream(msg.job_id).put(msg)

    def _on_error(self, msg: P.Error) -> None:
        exc = msg.to_exception()
        handled = False
        if msg.ref is not None and msg.ref in self._pending_refs:
            fut = self._pending_refs.pop(msg.ref)
            if not fut.done():
                fut.set_exception(exc)
            handled = True
        if msg.job_id is not None and msg.job_id in self._pending_resumes:
            fut = self._pending_resumes.pop(msg.job_id)
            if not fut.done():
                fut.set_exception(exc)
            handled = True
        if self._welcome_fut is not None and not self._welcome_fut.done():
            self._welcome_fut.set_exception(exc)
            handled = True
        if not handled and msg.job_id is None:
            log.warning("server error: %s: %s", msg.code, msg.message)
            self.connection_errors.append(msg)

    # ---- jobs ---------------------------------------------------------------------
    async def start_job(
        self,
        settings: Optional[dict] = None,
        *,
        input_path: Optional[str] = None,
        upload_path: Optional[os.PathLike | str] = None,
        upload_array: Optional[np.ndarray] = None,
        sample_rate: Optional[int] = None,
        channels: Optional[int] = None,
        upload_format: Optional[str] = None,
        send_stems: bool = False,
        output: Optional[dict] = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> str:
        """Start a job and return its id once the server accepted it.

        Exactly one input:

        * ``input_path``: a file on the server (inside its allowed folders);
        * ``upload_path``: a local file, sent as ``encoded`` bytes, or as raw
          PCM when ``upload_format`` is ``pcm_f32le``/``pcm_s16le`` (then
          ``sample_rate`` in Hz and ``channels`` are required);
        * ``upload_array``: float32 ``(channels, frames)`` samples at
          ``sample_rate`` Hz, sent as ``pcm_f32le``.

        Uploads run in the background in ``chunk_bytes`` pieces; await
        :meth:`upload_done` to see them finish.  ``settings``: ``{"preset":
        name, "overrides": {...}}``; ``output``: ``{"format", "bit_depth",
        "sample_rate"}`` (None: the preset's export settings).
        """
        if sum(x is not None for x in (input_path, upload_path, upload_array)) != 1:
            raise ValueError("give exactly one of input_path, upload_path, upload_array")
        chunk_bytes = max(1, min(int(chunk_bytes), self.limits.max_chunk_bytes))
        payload: Any = None
        if input_path is not None:
            inp: P.InputSpec = P.PathInput(path=str(input_path))
        elif upload_array is not None:
            a = np.asarray(upload_array, dtype=np.float32)
            if a.ndim != 2 or sample_rate is None:
                raise ValueError("upload_array must be (channels, frames) and sample_rate given")
            payload = P.audio_to_bytes(a)
            inp = P.UploadInput(format="pcm_f32le", sample_rate=int(sample_rate), channels=a.shape[0],
                                size=len(payload))
        else:
            path = Path(upload_path)  # type: ignore[arg-type]
            fmt = upload_format or "encoded"
            if fmt != "encoded" and (sample_rate is None or channels is None):
                raise ValueError(f"{fmt} uploads need sample_rate and channels")
            inp = P.UploadInput(
                format=fmt,
                sample_rate=int(sample_rate) if fmt != "encoded" else None,
                channels=int(channels) if fmt != "encoded" else None,
                filename=path.name[:255],
                size=path.stat().st_size,
            )
            payload = path
        opts = P.JobOptions(send_stems=bool(send_stems), output=P.OutputOptions(**output) if output else None)
        ref, frame = self._session.start_job(inp, settings, opts)
        fut = asyncio.get_running_loop().create_future()
        self._pending_refs[ref] = fut
        started = time.monotonic()
        await self._send(frame)
        accepted: P.JobAccepted = await asyncio.wait_for(fut, self.request_timeout)
        job_id = accepted.job_id
        self._session.job_accepted(job_id)
        self._started_at[job_id] = started
        self._stream(job_id)
        if payload is not None:
            task = asyncio.create_task(self._upload(job_id, payload, chunk_bytes), name=f"upload-{job_id[:8]}")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
            self._uploads[job_id] = task
        return job_id

    async def _upload(self, job_id: str, payload: Union[bytes, Path], chunk_bytes: int) -> None:
        index = 0
        size = 0
        if isinstance(payload, (bytes, bytearray)):
            view = memoryview(payload)
            for start in range(0, len(view), chunk_bytes):
                piece = bytes(view[start : start + chunk_bytes])
                await self._send(self._session.upload_chunk(job_id, index, piece))
                index += 1
                size += len(piece)
        else:
            with open(payload, "rb") as fh:
                while True:
                    piece = await asyncio.to_thread(fh.read, chunk_bytes)
                    if not piece:
                        break
                    await self._send(self._session.upload_chunk(job_id, index, piece))
                    index += 1
                    size += len(piece)
        await self._send(self._session.upload_end(job_id, index, size))

    async def upload_done(self, job_id: str) -> None:
        """Wait until the job's upload was fully sent (raises what the upload raised;
        returns quietly if the upload was stopped because the job ended)."""
        task = self._uploads.get(job_id)
        if task is not None:
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise

    async def cancel(self, job_id: str) -> None:
        """Ask the server to cancel the job; its event stream ends with ``error`` code ``cancelled``."""
        task = self._uploads.get(job_id)
        if task is not None and not task.done():
            task.cancel()
        await self._send(self._session.cancel(job_id))

    def next_seq(self, job_id: str) -> int:
        """Seq of the next audio block this client expects for ``job_id``."""
        return self._session.next_seq(job_id)

    def started_at(self, job_id: str) -> Optional[float]:
        """``time.monotonic()`` when this client sent ``start_job`` for the job."""
        return self._started_at.get(job_id)

    async def resume(self, job_id: str, from_seq: Optional[int] = None) -> int:
        """Follow ``job_id`` on the current connection from ``from_seq``.

        Default ``from_seq``: the next block this client has not received, so
        blocks already received (consumed or still queued) are not sent again
        and none is skipped.  Returns the ``from_seq`` used.
        """
        stream = self._stream(job_id)
        from_seq, frame = self._session.resume(job_id, from_seq)
        # drop queued blocks the server will send again
        stream.items = collections.deque(
            it for it in stream.items if not (isinstance(it, tuple) and it[0].seq >= from_seq)
        )
        stream.lost = False
        fut = asyncio.get_running_loop().create_future()
        self._pending_resumes[job_id] = fut
        await self._send(frame)
        await asyncio.wait_for(fut, self.request_timeout)
        return from_seq

    async def download(
        self,
        job_id: str,
        kind: str,
        path: os.PathLike | str,
        *,
        max_reconnects: int = 5,
        chunk_timeout: Optional[float] = 60.0,
        on_progress: Optional[Any] = None,
    ) -> DownloadResult:
        """Download output ``kind`` (a key of ``job_done.outputs``: ``master``,
        ``stem_vocals``, ``report`` ...) of a finished job to ``path``.

        Sends ``fetch`` and writes the ``file_chunk`` pieces to a hidden temp
        file beside ``path``, renamed to ``path`` once complete (nothing
        half-written under ``path``; an existing file is replaced only then).
        When the connection drops it reconnects (up to ``max_reconnects``
        times) and fetches again from the byte offset it has, so no byte is
        sent twice.  ``on_progress(bytes_done, size)`` is called after each
        piece; ``chunk_timeout``: seconds to wait for any one piece.
        Raises ``ProtocolError`` with the server's code (``unknown_job``,
        ``unknown_output``, ``output_not_ready``, ...).
        """
        path = Path(path)
        tmp = path.with_name(f".{path.name}.part")
        done = 0
        size: Optional[int] = None
        filename = mime = ""
        reconnects = 0
        resumed_from: list[int] = []
        fh = open(tmp, "wb")
        try:
            while True:
                ref = None
                try:
                    await self.connect()
                    ref, frame = self._session.fetch(job_id, kind, done)  # pieces checked contiguous from done
                    inbox = self._fetches[ref] = _Inbox(high_water=16)
                    await self._send(frame)
                    while True:
                        get = inbox.get()
                        item = await (asyncio.wait_for(get, chunk_timeout) if chunk_timeout else get)
                        if isinstance(item, Error):
                            raise item.to_exception()
                        if isinstance(item, ProtocolError):  # bad_sequence
                            raise item
                        if size is not None and item.size != size:  # the file changed between connections
                            raise ProtocolError(f"{item.filename} is now {item.size} bytes, was {size}",
                                                code=P.ErrorCode.BAD_SEQUENCE, job_id=job_id)
                        size, filename, mime = item.size, item.filename, item.mime
                        if item.data:
                            await asyncio.to_thread(fh.write, item.data)
                        done += len(item.data)
                        if on_progress is not None:
                            on_progress(done, size)
                        if item.eof:
                            break
                    break
                except ConnectionLost:
                    if reconnects >= max_reconnects:
                        raise
                    reconnects += 1
                    resumed_from.append(done)
                    log.info("connection lost during download of %s/%s at byte %d; reconnecting (%d)",
                             job_id, kind, done, reconnects)
                    await self.reconnect()
                finally:
                    if ref is not None:
                        self._fetches.pop(ref, None)
                        self._session.forget_fetch(ref)
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            os.replace(tmp, path)
        finally:
            if not fh.closed:
                fh.close()
            if tmp.exists():
                tmp.unlink()
        assert size is not None
        return DownloadResult(path=path, size=size, filename=filename, mime=mime, reconnects=reconnects,
                              resumed_from=resumed_from)

    async def ping(self) -> float:
        """Round-trip time to the server in seconds."""
        token, frame = self._session.ping()
        fut = asyncio.get_running_loop().create_future()
        self._pongs[token] = fut
        t0 = time.monotonic()
        await self._send(frame)
        t1 = await asyncio.wait_for(fut, self.request_timeout)
        return t1 - t0

    async def events(
        self, job_id: str, *, timeout: Optional[float] = None, raise_errors: bool = False
    ) -> AsyncIterator[Event]:
        """Yield the job's events in order: :class:`AudioBlock`, ``Progress``, ``Info``,
        then ``JobDone`` or ``Error`` (which end the iteration).

        Raises :class:`ConnectionLost` when the connection drops (after yielding
        everything already received): :meth:`reconnect`, :meth:`resume`, and
        iterate again.  ``timeout``: seconds to wait for any one event.
        ``raise_errors``: raise the job's ``error`` as ``ProtocolError`` instead
        of yielding it.
        """
        stream = self._stream(job_id)
        while True:
            if self._session.ended(job_id) and not stream.items:
                return  # the job's last event was already consumed
            if timeout is None:
                item = await stream.get()
            else:
                item = await asyncio.wait_for(stream.get(), timeout)
            if isinstance(item, ProtocolError):
                raise item
            if isinstance(item, tuple):
                msg, received_at = item
                block = AudioBlock(
                    job_id=msg.job_id, seq=msg.seq, offset=msg.offset, sample_rate=msg.sample_rate,
                    audio=P.decode_audio(msg), stems=P.decode_stems(msg) or None, received_at=received_at,
                )
                ack = self._session.ack(job_id, msg.seq) if self.connected else None
                if ack is not None:
                    try:
                        await self._send(ack)
                    except ConnectionLost:
                        pass
                yield block
            elif isinstance(item, Error):
                if raise_errors:
                    raise item.to_exception()
                yield item
                return
            elif isinstance(item, JobDone):
                yield item
                return
            else:
                yield item


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


@dataclass
class StreamResult:
    """What :func:`stream_to_file` wrote.

    ``frames``: samples per channel written; ``time_to_first_audio_s``: seconds
    from ``start_job`` (or from the call, when the job was started elsewhere)
    to the first block's arrival; ``reconnects``: dropped connections survived.
    """

    path: Path
    blocks: int
    frames: int
    sample_rate: Optional[int]
    channels: Optional[int]
    time_to_first_audio_s: Optional[float]
    reconnects: int
    done: JobDone


def partial_path(path: os.PathLike | str) -> Path:
    """Where :func:`stream_to_file` writes ``path`` while the job streams: a hidden file
    beside it with the same extension (``gig.wav`` -> ``.gig.part.wav``), growing as blocks
    arrive and renamed to ``path`` when the job is done."""
    path = Path(path)
    return path.with_name(f".{path.stem}.part{path.suffix}")  # same extension: soundfile picks the format


async def stream_to_file(
    client: ResonateClient,
    job_id: str,
    path: os.PathLike | str,
    *,
    subtype: Optional[str] = None,
    reconnect: bool = True,
    max_reconnects: int = 5,
    event_timeout: Optional[float] = None,
    on_event: Optional[Any] = None,
) -> StreamResult:
    """Write the job's audio to ``path`` as it arrives; return when the job is done.

    Writes to a hidden temp file next to ``path`` and renames it on success
    (nothing half-written under ``path``).  The format follows the extension
    (``soundfile``); ``subtype`` defaults to ``FLOAT`` for WAV, ``PCM_24``
    otherwise.  When the connection drops it reconnects (up to
    ``max_reconnects`` times) and resumes from the next block it has not
    received, so every block is written exactly once; offsets are checked
    to be contiguous.  ``on_event(ev)`` (optional) sees every event.
    ``event_timeout``: seconds to wait for any one event (None: rely on the
    websocket keepalive to notice a dead connection).
    Raises ``ProtocolError`` with the server's code if the job fails.
    """
    import soundfile as sf

    path = Path(path)
    tmp = partial_path(path)
    t_ref = client.started_at(job_id) or time.monotonic()
    writer = None
    frames = blocks = reconnects = 0
    sr = ch = None
    ttfa: Optional[float] = None
    done: Optional[JobDone] = None
    try:
        while done is None:
            try:
                async for ev in client.events(job_id, timeout=event_timeout):
                    if on_event is not None:
                        on_event(ev)
                    if isinstance(ev, AudioBlock):
                        if ev.offset != frames:
                            raise ProtocolError(
                                f"block {ev.seq} starts at frame {ev.offset}, expected {frames}",
                                code=P.ErrorCode.BAD_SEQUENCE, job_id=job_id,
                            )
                        if writer is None:
                            ttfa = ev.received_at - t_ref
                            sr, ch = ev.sample_rate, ev.audio.shape[0]
                            st = subtype or ("FLOAT" if path.suffix.lower() in (".wav", ".w64") else "PCM_24")
                            writer = sf.SoundFile(tmp, "w", samplerate=sr, channels=ch, subtype=st)
                        writer.write(ev.audio.T)
                        writer.flush()  # header updated: the growing file is playable as it is
                        frames += ev.frames
                        blocks += 1
                    elif isinstance(ev, JobDone):
                        done = ev
                    elif isinstance(ev, Error):
                        raise ev.to_exception()
                if done is None:  # pragma: no cover - events() always ends with done/error
                    raise ProtocolError("the event stream ended without job_done", code=P.ErrorCode.INTERNAL_ERROR)
            except ConnectionLost:
                if not reconnect or reconnects >= max_reconnects:
                    raise
                reconnects += 1
                log.info("connection lost; reconnecting (%d) and resuming job %s from seq %d",
                         reconnects, job_id, client.next_seq(job_id))
                await client.reconnect()
                await client.resume(job_id)
        if writer is None:  # a job without audio: write an empty file
            sr = sr or 44100
            ch = ch or 2
            writer = sf.SoundFile(tmp, "w", samplerate=sr, channels=ch,
                                  subtype=subtype or ("FLOAT" if path.suffix.lower() == ".wav" else "PCM_24"))
        writer.close()
        writer = None
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        if tmp.exists():
            tmp.unlink()
    return StreamResult(path=path, blocks=blocks, frames=frames, sample_rate=sr, channels=ch,
                        time_to_first_audio_s=ttfa, reconnects=reconnects, done=done)


async def process_file(
    url: str,
    out_path: os.PathLike | str,
    *,
    upload_path: Optional[os.PathLike | str] = None,
    input_path: Optional[str] = None,
    settings: Optional[dict] = None,
    token: Optional[str] = None,
    send_stems: bool = False,
) -> StreamResult:
    """Connect, start a job, stream its output to ``out_path``; one call."""
    async with ResonateClient(url, token) as client:
        job = await client.start_job(settings, upload_path=upload_path, input_path=input_path, send_stems=send_stems)
        return await stream_to_file(client, job, out_path)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m clients.python_client URL OUT (--upload FILE | --path SERVER_FILE) [--preset NAME]``."""
    ap = argparse.ArgumentParser(description="Stream a Resonate job's output to a file.")
    ap.add_argument("url", help="gateway websocket URL, e.g. ws://127.0.0.1:8765/ws")
    ap.add_argument("out", help="output audio file (written progressively, renamed at the end)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--upload", help="local audio file to upload")
    src.add_argument("--path", help="audio file on the server (inside its allowed folders)")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--token", default=os.environ.get("RESONATE_TOKEN"))
    args = ap.parse_args(argv)
    settings = {"preset": args.preset} if args.preset else {}
    try:
        res = asyncio.run(process_file(args.url, args.out, upload_path=args.upload, input_path=args.path,
                                       settings=settings, token=args.token))
    except ProtocolError as exc:
        print(f"error [{exc.code}]: {exc.message}")
        return 1
    ttfa = f"{res.time_to_first_audio_s:.2f} s" if res.time_to_first_audio_s is not None else "n/a"
    print(f"wrote {res.path} ({res.frames} frames, {res.blocks} blocks, first audio after {ttfa})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
