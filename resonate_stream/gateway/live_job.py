"""Server-side state of one job: what its worker thread produced, for every connection
that follows it.

The worker thread calls :meth:`LiveJob.emit` with the backend's events; audio
is encoded once and appended to the job's disk spool, progress and infos are
kept as encoded frames (latest progress; the last 256 infos), and the
event-loop side is told through ``call_soon_threadsafe``.  Connections read
the spool by seq (see :mod:`.connection`).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

import resonate_protocol as P
from engine.errors import NonFiniteAudioError, ResonateError
from resonate_stream.events import AudioChunk, Finished, InfoEvent, ProgressEvent

from .jobs import JobCancelled, JobSpec, FileJobInput, UploadJobInput
from .spool import AudioSpool

if TYPE_CHECKING:  # pragma: no cover
    from .server import GatewayServer

log = logging.getLogger("resonate.gateway")


def jsonable(value: Any, depth: int = 0) -> Any:
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
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, np.ndarray) and value.size <= 1024:
        return jsonable(value.tolist(), depth + 1)
    return str(value)


# --------------------------------------------------------------------------- #
# Jobs
# --------------------------------------------------------------------------- #

class LiveJob:
    """Server-side state of one job.

    Fields without a leading ``t_`` are touched only on the event-loop thread;
    the worker thread talks to the loop through :meth:`_post`.
    """

    def __init__(
        self,
        server: "GatewayServer",
        job_id: str,
        spec: JobSpec,
        job_input: FileJobInput | UploadJobInput,
        spool: AudioSpool,
        cancel: threading.Event,
    ):
        self.server = server
        self.loop = server._loop
        self.id = job_id
        self.spec = spec
        self.job_input = job_input
        self.upload: Optional[UploadJobInput] = job_input if isinstance(job_input, UploadJobInput) else None
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
        self.upload_rules: Optional[P.UploadState] = (
            P.UploadState(server.limits, job_input.size) if self.upload is not None else None
        )
        #: the reference recording's upload (``stream`` ``reference``), if the client sends one
        ref = spec.reference
        self.reference_upload: Optional[UploadJobInput] = ref if isinstance(ref, UploadJobInput) else None
        self.reference_rules: Optional[P.UploadState] = (
            P.UploadState(server.limits, ref.size, stream="reference") if self.reference_upload is not None else None
        )
        self.thread: Optional[threading.Thread] = None
        # the queue (loop side): position 1 starts next; None once started (or never queued)
        self.client: Any = None  # who asked for it (the connection): the queue takes one job per client in turn
        self.queue_position: Optional[int] = None
        self.queue_waiting = 0
        self.queue_frame: Optional[bytes] = None
        self.queue_version = 0
        self.started_at: Optional[float] = None  # time.monotonic() when its worker started
        self.accepted_at = time.monotonic()
        # worker-thread state (emit)
        self.t_next_event_seq = 0
        self.t_next_offset = 0
        self.t_sample_rate: Optional[int] = None
        self.t_channels: Optional[int] = None

    # ---- loop side --------------------------------------------------------
    @property
    def uploads(self) -> list[UploadJobInput]:
        """The job's upload streams (input and/or reference)."""
        return [u for u in (self.upload, self.reference_upload) if u is not None]

    def upload_stream(self, stream: str) -> tuple[Optional[UploadJobInput], Optional[P.UploadState]]:
        """The spool and rules of upload ``stream`` (``input`` / ``reference``); (None, None) if
        the job takes no such upload."""
        if stream == "reference":
            return self.reference_upload, self.reference_rules
        return self.upload, self.upload_rules

    @property
    def info_first(self) -> int:
        return self.info_total - len(self.infos)

    def info_frame(self, i: int) -> bytes:
        return self.infos[i - self.info_first]

    def notify(self) -> None:
        for ev in self.subscribers:
            ev.set()

    def set_queue(self, position: int, waiting: int) -> None:
        """The job's place in the queue changed (0: it leaves the queue and starts)."""
        self.queue_position = position if position > 0 else None
        self.queue_waiting = waiting
        if self.terminal_frame is None:
            self.queue_frame = P.encode(P.Queued(job_id=self.id, position=position, waiting=waiting))
            self.queue_version += 1
            self.notify()

    def end(self, terminal: P.Message, state: str) -> None:
        """Record the job's last message (``job_done`` or ``error``) once; the spool's
        writer descriptors are closed (no audio comes after the last message)."""
        if self.terminal_frame is not None:
            return
        self.terminal_frame = P.encode(terminal)
        self.state = state
        self.queue_position = None
        self.spool.seal()
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
        elif isinstance(event, ProgressEvent):
            total = event.total
            msg = P.Progress(
                job_id=self.id,
                stage=str(event.stage)[:64],
                done=max(0.0, float(event.done)) if math.isfinite(float(event.done)) else 0.0,
                total=float(total) if total is not None and math.isfinite(float(total)) and total >= 0 else None,
            )
            self._post(self._on_progress, P.encode(msg))
        elif isinstance(event, InfoEvent):
            msg = P.Info(job_id=self.id, message=str(event.message)[:4096], data=jsonable(dict(event.data or {})))
            self._post(self._on_info, P.encode(msg))
        elif isinstance(event, Finished):
            fin = Finished(
                report=jsonable(dict(event.report or {})),
                outputs={str(k): str(v) for k, v in dict(event.outputs or {}).items()},
            )
            self._post(self._on_finished, fin)
        else:
            raise ResonateError(
                f"the backend emitted a {type(event).__name__}; expected ProgressEvent, InfoEvent, AudioChunk or Finished",
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
        if self.t_next_event_seq == 0 and self.started_at is not None:
            log.info("job %s: first audio after %.2f s", self.id, time.monotonic() - self.started_at)
        self.t_next_event_seq += 1
        self.t_next_offset += n


# --------------------------------------------------------------------------- #
# Connections
# --------------------------------------------------------------------------- #
