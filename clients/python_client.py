"""Asyncio Python client of the Resonate gateway.

Depends only on the documented protocol (``docs/protocol.md``) through the
sans-I/O package :mod:`resonate_protocol` (whose :class:`~resonate_protocol.ClientSession`
holds the protocol's rules: hello first, audio seq order, resume, ack,
download offsets), plus ``websockets`` and ``numpy``.  This module only pumps frames between
the socket and the session; :mod:`clients.download` fetches files and
:mod:`clients.file_stream` writes a job's stream to a file.

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

    from clients.file_stream import stream_to_file
    result = await stream_to_file(client, job, "gig-restored.wav")

and, once the job is done, to download its exact final master (resumes by
byte offset after a dropped connection)::

    await client.download(job, "master", "gig-restored.wav")
"""
from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import time
import urllib.parse
from pathlib import Path
from dataclasses import dataclass
from typing import Any, AsyncIterator, Optional, Union

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import resonate_protocol as P
from resonate_protocol import ConnectionLost, Error, Info, JobDone, Progress, ProtocolError

from .download import DownloadResult, download
from .inbox import Inbox
from .upload import job_input, pieces

__all__ = ["AudioBlock", "ConnectionLost", "Error", "Info", "JobDone", "Progress", "ProtocolError", "ResonateClient"]

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


Event = Union[AudioBlock, Progress, Info, P.Queued, JobDone, Error]


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
        self._streams: dict[str, Inbox] = {}
        self._fetches: dict[str, Inbox] = {}  # fetch ref -> its file_chunk / error messages
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
    def _stream(self, job_id: str) -> Inbox:
        s = self._streams.get(job_id)
        if s is None:
            s = self._streams[job_id] = Inbox()
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
        elif isinstance(msg, (P.Progress, P.Info, P.Queued)):  # queued: the job waits its turn (position)
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
        reference: Optional[os.PathLike | str] = None,
        reference_input_path: Optional[str] = None,
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

        Reference matching (the server's feature ``reference``): ``reference``, a
        local recording uploaded before the input (``stream`` ``reference``), or
        ``reference_input_path``, a file on the server; the mix's spectrum,
        width and loudness are matched to it.  A reference the server cannot
        use ends the job with ``error`` ``bad_reference``.
        """
        inp, payload = job_input(input_path, upload_path, upload_array, sample_rate, channels, upload_format)
        if reference is not None and reference_input_path is not None:
            raise ValueError("give at most one of reference, reference_input_path")
        ref_inp: Optional[P.InputSpec] = None
        ref_payload = None
        if reference_input_path is not None:
            ref_inp = P.PathInput(path=str(reference_input_path))
        elif reference is not None:
            ref_path = Path(reference)
            ref_inp = P.UploadInput(format="encoded", filename=ref_path.name[:255], size=ref_path.stat().st_size)
            ref_payload = ref_path
        chunk_bytes = max(1, min(int(chunk_bytes), self.limits.max_chunk_bytes))
        opts = P.JobOptions(send_stems=bool(send_stems), output=P.OutputOptions(**output) if output else None)
        ref, frame = self._session.start_job(inp, settings, opts, reference=ref_inp)
        fut = asyncio.get_running_loop().create_future()
        self._pending_refs[ref] = fut
        started = time.monotonic()
        await self._send(frame)
        accepted: P.JobAccepted = await asyncio.wait_for(fut, self.request_timeout)
        job_id = accepted.job_id
        self._session.job_accepted(job_id)
        self._started_at[job_id] = started
        self._stream(job_id)
        if payload is not None or ref_payload is not None:
            task = asyncio.create_task(self._upload(job_id, payload, chunk_bytes, ref_payload),
                                       name=f"upload-{job_id[:8]}")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
            self._uploads[job_id] = task
        return job_id

    async def _upload(self, job_id: str, payload: Any, chunk_bytes: int, reference: Any = None) -> None:
        """Send the reference (if any; the server analyses it before the stream starts), then the input."""
        for stream, data in (("reference", reference), ("input", payload)):
            if data is None:
                continue
            index = size = 0
            async for piece in pieces(data, chunk_bytes):
                await self._send(self._session.upload_chunk(job_id, index, piece, stream=stream))
                index += 1
                size += len(piece)
            await self._send(self._session.upload_end(job_id, index, size, stream=stream))

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

    def open_fetch(self, job_id: str, kind: str, offset: int) -> tuple[str, bytes, Inbox]:
        """``(ref, frame, inbox)`` for a ``fetch`` from byte ``offset``: send ``frame``, then read
        the ``file_chunk`` / ``error`` / ``ProtocolError`` (bad_sequence) items of ``inbox``;
        :meth:`close_fetch` when done.  Used by :func:`clients.download.download`."""
        ref, frame = self._session.fetch(job_id, kind, offset)  # pieces checked contiguous from offset
        inbox = self._fetches[ref] = Inbox(high_water=16)
        return ref, frame, inbox

    def close_fetch(self, ref: str) -> None:
        self._fetches.pop(ref, None)
        self._session.forget_fetch(ref)

    async def send(self, frame: bytes) -> None:
        """Send one frame made by this client's session (raises :class:`ConnectionLost`)."""
        await self._send(frame)

    async def download(self, job_id: str, kind: str, path: os.PathLike | str, **kwargs: Any) -> DownloadResult:
        """Download output ``kind`` of a finished job to ``path``; see :func:`clients.download.download`."""
        return await download(self, job_id, kind, path, **kwargs)

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
