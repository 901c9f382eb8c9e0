"""Server -> client messages."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, Union

from .client_messages import ping_data
from .errors import ProtocolError
from .fields import Fields, Message
from .limits import (
    AUDIO_FORMAT, FILENAME_RE, JOB_ID_RE, MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, OUTPUT_KIND_RE,
    STEM_NAME_RE,
)


@dataclass(frozen=True)
class Welcome(Message):
    """Answer to ``hello``: ``server`` (name/version), ``limits`` (see :class:`Limits`)."""

    TYPE: ClassVar[str] = "welcome"
    server: str
    limits: dict = field(default_factory=dict)
    features: tuple = ()

    def to_map(self) -> dict:
        m = super().to_map()
        m["features"] = list(self.features)
        return m

    @classmethod
    def _from_fields(cls, f: Fields) -> "Welcome":
        limits = f.map("limits", required=False, default=None, nullable=True) or {}
        feats = f.m.get("features") or []
        if not isinstance(feats, list) or not all(isinstance(x, str) and len(x) <= 64 for x in feats):
            raise f.fail("features", "expected a list of short strings")
        return cls(server=f.str("server", max_len=256), limits=limits, features=tuple(feats))


@dataclass(frozen=True)
class JobAccepted(Message):
    """The job exists: after ``start_job`` (``ref`` echoed) or ``resume`` (``resumed_from`` set)."""

    TYPE: ClassVar[str] = "job_accepted"
    job_id: str
    ref: Optional[str] = None
    resumed_from: Optional[int] = None

    @classmethod
    def _from_fields(cls, f: Fields) -> "JobAccepted":
        return cls(
            job_id=f.str("job_id", pattern=JOB_ID_RE),
            ref=f.str("ref", required=False, max_len=64, nullable=True),
            resumed_from=f.int("resumed_from", required=False, nullable=True),
        )


@dataclass(frozen=True)
class Queued(Message):
    """The job waits for a free slot: ``position`` 1 starts next (``waiting`` jobs wait in all).

    Sent after ``job_accepted`` when the server already runs ``limits.max_jobs``
    jobs, again whenever the position changes (it may also grow: the queue
    takes one job per client in turn, so a client that joins later goes ahead
    of another client's second job), and once with ``position`` 0 when the
    job leaves the queue and starts.  A job that starts at once gets none.
    """

    TYPE: ClassVar[str] = "queued"
    job_id: str
    position: int
    waiting: int = 0

    @classmethod
    def _from_fields(cls, f: Fields) -> "Queued":
        return cls(job_id=f.str("job_id", pattern=JOB_ID_RE), position=f.int("position"),
                   waiting=f.int("waiting", required=False, default=0))


@dataclass(frozen=True)
class Progress(Message):
    """``done`` out of ``total`` in ``unit`` (always ``"s"``: seconds of audio); ``total`` nil if unknown."""

    TYPE: ClassVar[str] = "progress"
    job_id: str
    stage: str
    done: float
    total: Optional[float] = None
    unit: str = "s"

    @classmethod
    def _from_fields(cls, f: Fields) -> "Progress":
        return cls(
            job_id=f.str("job_id", pattern=JOB_ID_RE),
            stage=f.str("stage", max_len=64),
            done=f.float("done"),
            total=f.float("total", required=False, nullable=True),
            unit=f.str("unit", required=False, default="s", choices=("s",)),
        )


@dataclass(frozen=True)
class Info(Message):
    """Informational note (which separator ran, a fallback...); ``job_id`` nil for server notes."""

    TYPE: ClassVar[str] = "info"
    job_id: Optional[str]
    message: str
    data: dict = field(default_factory=dict)

    @classmethod
    def _from_fields(cls, f: Fields) -> "Info":
        return cls(
            job_id=f.str("job_id", required=False, pattern=JOB_ID_RE, nullable=True),
            message=f.str("message", max_len=4096),
            data=f.map("data", required=False, default=None, nullable=True) or {},
        )


@dataclass(frozen=True)
class Audio(Message):
    """One block of processed audio.

    ``seq`` counts this job's ``audio`` messages from 0 with no gaps; ``offset``
    is the index (in frames, at ``sample_rate`` Hz) of the block's first frame
    in the output stream; ``offset[k+1] == offset[k] + frames[k]``.  ``data``
    holds ``frames * channels`` interleaved little-endian float32 samples
    (``format`` ``"f32le"``); each ``stems`` value has the same layout.
    """

    TYPE: ClassVar[str] = "audio"
    job_id: str
    seq: int
    offset: int
    sample_rate: int
    channels: int
    frames: int
    data: bytes
    format: str = AUDIO_FORMAT
    stems: Optional[dict] = None

    @classmethod
    def _from_fields(cls, f: Fields) -> "Audio":
        job_id = f.str("job_id", pattern=JOB_ID_RE)
        seq = f.int("seq")
        offset = f.int("offset")
        sr = f.int("sample_rate", lo=MIN_SAMPLE_RATE, hi=MAX_SAMPLE_RATE)
        ch = f.int("channels", lo=1, hi=MAX_CHANNELS)
        frames = f.int("frames")
        fmt = f.str("format", required=False, default=AUDIO_FORMAT, choices=(AUDIO_FORMAT,))
        expect = frames * ch * 4
        data = f.bytes("data", max_len=f.limits.max_frame_bytes)
        if len(data) != expect:
            raise f.fail("data", f"holds {len(data)} bytes; {frames} frames x {ch} channels x 4 bytes = {expect}")
        stems = None
        raw = f.raw_map("stems", required=False)
        if raw is not None:
            stems = {}
            for name, value in raw.items():
                if not STEM_NAME_RE.match(name):
                    raise f.fail("stems", f"invalid stem name {name[:64]!r}")
                if not isinstance(value, (bytes, bytearray)) or len(value) != expect:
                    raise f.fail("stems", f"stem {name!r} must be {expect} bytes of f32le audio")
                stems[name] = bytes(value)
        return cls(
            job_id=job_id, seq=seq, offset=offset, sample_rate=sr, channels=ch,
            frames=frames, data=data, format=fmt, stems=stems,
        )


@dataclass(frozen=True)
class JobDone(Message):
    """The job ended well (sent after its last ``audio``): ``report`` (plain map),
    ``outputs`` (kind -> server path or URL), ``provenance`` (what made the
    master: ``{kind: "restored" | "restored+polished" | "AI-generated" |
    "restored+AI-generated", label, summary, generative, mode, models: [...]}``;
    empty from servers that predate it)."""

    TYPE: ClassVar[str] = "job_done"
    job_id: str
    report: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @property
    def generated(self) -> bool:
        """True when the master is (partly) AI-generated: never a restoration."""
        return "AI-generated" in str(self.provenance.get("kind", ""))

    @classmethod
    def _from_fields(cls, f: Fields) -> "JobDone":
        outputs = f.map("outputs", required=False, default=None, nullable=True) or {}
        if not all(isinstance(v, str) for v in outputs.values()):
            raise f.fail("outputs", "values must be strings (paths or URLs)")
        return cls(
            job_id=f.str("job_id", pattern=JOB_ID_RE),
            report=f.map("report", required=False, default=None, nullable=True) or {},
            outputs=outputs,
            provenance=f.map("provenance", required=False, default=None, nullable=True) or {},
        )


@dataclass(frozen=True)
class FileChunk(Message):
    """A piece of an output file, answering ``fetch``.

    ``data`` holds the bytes ``[offset, offset + len(data))`` of the file
    (``size`` bytes in total); ``eof`` is true exactly when this piece ends
    the file (``offset + len(data) == size``).  ``filename`` is a bare file
    name (no folders) and ``mime`` its media type, both for saving it.
    ``ref`` echoes the ``fetch``'s ``ref``.
    """

    TYPE: ClassVar[str] = "file_chunk"
    job_id: str
    kind: str
    offset: int
    data: bytes
    size: int
    eof: bool
    filename: str
    mime: str
    ref: Optional[str] = None

    @classmethod
    def _from_fields(cls, f: Fields) -> "FileChunk":
        offset = f.int("offset")
        size = f.int("size")
        data = f.bytes("data", max_len=f.limits.max_frame_bytes)
        eof = f.bool("eof")
        end = offset + len(data)
        if end > size:
            raise f.fail("data", f"bytes {offset}..{end} run past the file's size of {size} bytes")
        if eof != (end == size):
            raise f.fail("eof", f"is {eof} but the piece ends at byte {end} of {size}")
        return cls(
            job_id=f.str("job_id", pattern=JOB_ID_RE),
            kind=f.str("kind", max_len=64, pattern=OUTPUT_KIND_RE),
            offset=offset,
            data=data,
            size=size,
            eof=eof,
            filename=f.str("filename", max_len=255, pattern=FILENAME_RE),
            mime=f.str("mime", max_len=128),
            ref=f.str("ref", required=False, max_len=64, nullable=True),
        )


@dataclass(frozen=True)
class Error(Message):
    """Something failed.  With ``job_id`` set the job has ended (failed or cancelled);
    ``fatal`` true means the server closes the connection after this message."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    job_id: Optional[str] = None
    fatal: bool = False
    ref: Optional[str] = None

    @classmethod
    def _from_fields(cls, f: Fields) -> "Error":
        return cls(
            code=f.str("code", max_len=64),
            message=f.str("message", max_len=4096),
            job_id=f.str("job_id", required=False, pattern=JOB_ID_RE, nullable=True),
            fatal=f.bool("fatal", required=False, default=False),
            ref=f.str("ref", required=False, max_len=64, nullable=True),
        )

    @classmethod
    def from_exception(
        cls, exc: Any, *, job_id: str | None = None, fatal: bool = False, ref: str | None = None
    ) -> "Error":
        """An ``error`` message from a typed error: anything with a ``code`` and a ``message``
        (a :class:`~.errors.ProtocolError`, the engine's errors); message cut to 4096 characters."""
        return cls(code=exc.code[:64], message=exc.message[:4096], job_id=job_id, fatal=fatal, ref=ref)

    def to_exception(self) -> ProtocolError:
        return ProtocolError(self.message, code=self.code, job_id=self.job_id, ref=self.ref)


@dataclass(frozen=True)
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    data: Union[int, str, None] = None

    @classmethod
    def _from_fields(cls, f: Fields) -> "Pong":
        return cls(data=ping_data(f))


SERVER_MESSAGES: dict[str, type[Message]] = {
    c.TYPE: c for c in (Welcome, JobAccepted, Queued, Progress, Info, Audio, JobDone, FileChunk, Error, Pong)
}
ServerMessage = Union[Welcome, JobAccepted, Queued, Progress, Info, Audio, JobDone, FileChunk, Error, Pong]
