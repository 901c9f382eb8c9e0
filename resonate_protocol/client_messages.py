"""Client -> server messages (and the nested parts of ``start_job``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, Union

from .errors import ErrorCode
from .fields import Fields, Message, Part
from .limits import (
    MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, OUTPUT_BIT_DEPTHS, OUTPUT_FORMATS, OUTPUT_KIND_RE,
    UPLOAD_FORMATS, UPLOAD_STREAMS, JOB_ID_RE, pcm_sample_format,
)

# ---- nested parts of start_job --------------------------------------------- #


@dataclass(frozen=True)
class PathInput(Part):
    """Input already on the server: ``path`` (absolute, or relative to the first allowed folder)."""

    path: str
    kind: str = "path"

    def to_map(self) -> dict:
        return {"kind": "path", "path": self.path}


@dataclass(frozen=True)
class UploadInput(Part):
    """Input sent by the client in ``upload_chunk`` messages.

    ``format``: ``pcm_f32le`` / ``pcm_s16le`` (raw interleaved little-endian
    samples; ``sample_rate`` in Hz and ``channels`` required) or ``encoded``
    (the bytes of an audio file; the server detects the container).
    ``size``: total bytes if known in advance (checked at ``upload_end``).
    """

    format: str
    sample_rate: Optional[int] = None
    channels: Optional[int] = None
    filename: Optional[str] = None
    size: Optional[int] = None
    kind: str = "upload"

    def to_map(self) -> dict:
        return {
            "kind": "upload",
            "format": self.format,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "filename": self.filename,
            "size": self.size,
        }

    @property
    def is_pcm(self) -> bool:
        return pcm_sample_format(self.format) is not None

    @property
    def pcm_format(self) -> Optional[str]:
        """``"f32le"`` / ``"s16le"`` for PCM uploads, else None."""
        return pcm_sample_format(self.format)


InputSpec = Union[PathInput, UploadInput]


@dataclass(frozen=True)
class OutputOptions(Part):
    """Final file options: ``format`` (wav/flac/mp3), ``bit_depth`` (16/24/32-float),
    ``sample_rate`` in Hz (None: keep the working rate, 44100 Hz)."""

    format: str = "wav"
    bit_depth: int = 24
    sample_rate: Optional[int] = None


@dataclass(frozen=True)
class JobOptions(Part):
    """``send_stems``: also stream the separated stems in every ``audio`` message;
    ``output``: final file options (None: the preset's export settings)."""

    send_stems: bool = False
    output: Optional[OutputOptions] = None


def _input_from(f: Fields, m: Any) -> InputSpec:
    if not isinstance(m, dict):
        raise f.fail("input", "expected a map")
    sf = f.sub("input", m)
    kind = sf.str("kind", choices=("path", "upload"))
    if kind == "path":
        return PathInput(path=sf.str("path", max_len=4096))
    fmt = sf.str("format", choices=UPLOAD_FORMATS)
    pcm = fmt.startswith("pcm_")
    sr = sf.int("sample_rate", required=pcm, lo=MIN_SAMPLE_RATE, hi=MAX_SAMPLE_RATE, nullable=not pcm)
    ch = sf.int("channels", required=pcm, lo=1, hi=MAX_CHANNELS, nullable=not pcm)
    filename = sf.str("filename", required=False, max_len=255, nullable=True)
    size = _declared_size(sf, f.limits.max_upload_bytes, "")
    return UploadInput(format=fmt, sample_rate=sr, channels=ch, filename=filename, size=size)


def _declared_size(sf: Fields, limit: int, what: str) -> Optional[int]:
    """The optional ``size`` field of an upload; over ``limit`` bytes is ``upload_too_large``."""
    size = sf.int("size", required=False, nullable=True)
    if size is not None and size > limit:
        raise sf.fail("size", f"{what}{size} bytes is more than this server accepts ({limit} bytes)",
                      ErrorCode.UPLOAD_TOO_LARGE)
    return size


def _reference_from(f: Fields, m: Any) -> Optional[InputSpec]:
    """``start_job.reference``: nil, a server path, or an ``encoded`` upload (stream ``reference``)
    of at most ``limits.max_reference_bytes``."""
    if m is None:
        return None
    if not isinstance(m, dict):
        raise f.fail("reference", "expected a map")
    sf = f.sub("reference", m)
    kind = sf.str("kind", choices=("path", "upload"))
    if kind == "path":
        return PathInput(path=sf.str("path", max_len=4096))
    fmt = sf.str("format", required=False, default="encoded", choices=("encoded",))
    filename = sf.str("filename", required=False, max_len=255, nullable=True)
    size = _declared_size(sf, f.limits.max_reference_bytes, "a reference of ")
    return UploadInput(format=fmt, filename=filename, size=size)


def _options_from(f: Fields, m: Any) -> JobOptions:
    if m is None:
        return JobOptions()
    if not isinstance(m, dict):
        raise f.fail("options", "expected a map")
    of = f.sub("options", m)
    send_stems = of.bool("send_stems", required=False, default=False)
    out = m.get("output")
    if out is None:
        return JobOptions(send_stems=send_stems)
    if not isinstance(out, dict):
        raise of.fail("output", "expected a map")
    oo = of.sub("output", out)
    output = OutputOptions(
        format=oo.str("format", required=False, default="wav", choices=OUTPUT_FORMATS),
        bit_depth=oo.int("bit_depth", required=False, default=24, lo=16, hi=32),
        sample_rate=oo.int("sample_rate", required=False, lo=8000, hi=384_000, nullable=True),
    )
    if output.bit_depth not in OUTPUT_BIT_DEPTHS:
        raise oo.fail("bit_depth", f"must be one of 16, 24, 32; got {output.bit_depth}")
    return JobOptions(send_stems=send_stems, output=output)


# ---- client -> server -------------------------------------------------------- #


@dataclass(frozen=True)
class Hello(Message):
    """First message of a connection.  ``token`` authenticates (if the server needs one);
    ``ack_window`` > 0 turns on ack flow control (at most that many unacknowledged
    ``audio`` messages per job in flight)."""

    TYPE: ClassVar[str] = "hello"
    client: str = ""
    token: Optional[str] = None
    ack_window: int = 0

    @classmethod
    def _from_fields(cls, f: Fields) -> "Hello":
        return cls(
            client=f.str("client", required=False, default="", max_len=128),
            token=f.str("token", required=False, max_len=1024, nullable=True),
            ack_window=f.int("ack_window", required=False, default=0, hi=f.limits.max_ack_window),
        )


@dataclass(frozen=True)
class StartJob(Message):
    """Start a job.  ``settings``: ``{"preset": str, "overrides": map}`` (plain map);
    ``ref``: client-chosen string echoed in ``job_accepted`` / ``error``;
    ``reference``: a recording to match the mix to (a server path, or an ``encoded``
    :class:`UploadInput` sent in ``upload_chunk`` messages with ``stream`` ``reference``),
    or None."""

    TYPE: ClassVar[str] = "start_job"
    input: InputSpec
    settings: dict = field(default_factory=dict)
    options: JobOptions = field(default_factory=JobOptions)
    ref: Optional[str] = None
    reference: Optional[InputSpec] = None

    @classmethod
    def _from_fields(cls, f: Fields) -> "StartJob":
        ref = f.str("ref", required=False, max_len=64, nullable=True)
        settings = f.map("settings", required=False, default=None, nullable=True) or {}
        if "preset" in settings and not isinstance(settings["preset"], str):
            raise f.fail("settings", "settings.preset must be a string")
        if "overrides" in settings and not isinstance(settings["overrides"], dict):
            raise f.fail("settings", "settings.overrides must be a map")
        inp = f._get("input", True, False, None)
        return cls(
            input=_input_from(f, inp),
            settings=settings,
            options=_options_from(f, f.m.get("options")),
            ref=ref,
            reference=_reference_from(f, f.m.get("reference")),
        )


@dataclass(frozen=True)
class UploadChunk(Message):
    """One piece of an upload: ``index`` counts 0, 1, 2 ... with no gaps (per stream);
    ``data`` raw bytes; ``stream``: ``input`` (the default) or ``reference``."""

    TYPE: ClassVar[str] = "upload_chunk"
    job_id: str
    index: int
    data: bytes
    stream: str = "input"

    @classmethod
    def _from_fields(cls, f: Fields) -> "UploadChunk":
        return cls(
            job_id=f.str("job_id", pattern=JOB_ID_RE),
            index=f.int("index"),
            data=f.bytes("data", max_len=f.limits.max_chunk_bytes, code=ErrorCode.CHUNK_TOO_LARGE),
            stream=_stream(f),
        )


def _stream(f: Fields) -> str:
    return f.str("stream", required=False, default="input", choices=UPLOAD_STREAMS)


@dataclass(frozen=True)
class UploadEnd(Message):
    """The upload of ``stream`` (``input`` / ``reference``) is complete.  ``chunks`` /
    ``size`` (optional) let the server check it."""

    TYPE: ClassVar[str] = "upload_end"
    job_id: str
    chunks: Optional[int] = None
    size: Optional[int] = None
    stream: str = "input"

    @classmethod
    def _from_fields(cls, f: Fields) -> "UploadEnd":
        return cls(
            job_id=f.str("job_id", pattern=JOB_ID_RE),
            chunks=f.int("chunks", required=False, nullable=True),
            size=f.int("size", required=False, nullable=True),
            stream=_stream(f),
        )


@dataclass(frozen=True)
class Cancel(Message):
    TYPE: ClassVar[str] = "cancel"
    job_id: str

    @classmethod
    def _from_fields(cls, f: Fields) -> "Cancel":
        return cls(job_id=f.str("job_id", pattern=JOB_ID_RE))


@dataclass(frozen=True)
class Resume(Message):
    """Attach to an existing job and receive its ``audio`` from ``from_seq`` (the next seq wanted)."""

    TYPE: ClassVar[str] = "resume"
    job_id: str
    from_seq: int = 0

    @classmethod
    def _from_fields(cls, f: Fields) -> "Resume":
        return cls(job_id=f.str("job_id", pattern=JOB_ID_RE), from_seq=f.int("from_seq"))


@dataclass(frozen=True)
class Ack(Message):
    """Flow control: every ``audio`` message of ``job_id`` up to and including ``seq`` arrived."""

    TYPE: ClassVar[str] = "ack"
    job_id: str
    seq: int

    @classmethod
    def _from_fields(cls, f: Fields) -> "Ack":
        return cls(job_id=f.str("job_id", pattern=JOB_ID_RE), seq=f.int("seq"))


@dataclass(frozen=True)
class Ping(Message):
    """Application-level ping; ``data`` (nil, int or short string) is echoed in ``pong``."""

    TYPE: ClassVar[str] = "ping"
    data: Union[int, str, None] = None

    @classmethod
    def _from_fields(cls, f: Fields) -> "Ping":
        return cls(data=ping_data(f))


@dataclass(frozen=True)
class Fetch(Message):
    """Download one output file of a finished job.

    ``kind``: a key of that job's ``job_done.outputs`` (``master``,
    ``stem_vocals``, ``report`` ...); ``offset``: first byte wanted (0 for the
    whole file, the bytes already held to resume).  The server answers with
    ``file_chunk`` messages from ``offset`` to the end of the file, or one
    ``error`` carrying ``ref``.
    """

    TYPE: ClassVar[str] = "fetch"
    job_id: str
    kind: str
    offset: int = 0
    ref: Optional[str] = None

    @classmethod
    def _from_fields(cls, f: Fields) -> "Fetch":
        return cls(
            job_id=f.str("job_id", pattern=JOB_ID_RE),
            kind=f.str("kind", max_len=64, pattern=OUTPUT_KIND_RE),
            offset=f.int("offset", required=False, default=0),
            ref=f.str("ref", required=False, max_len=64, nullable=True),
        )


def ping_data(f: Fields) -> Union[int, str, None]:
    data = f.m.get("data")
    if data is None:
        return None
    if isinstance(data, str):
        return f.str("data", max_len=256)
    return f.int("data", lo=-(2**53), hi=2**53)


CLIENT_MESSAGES: dict[str, type[Message]] = {
    c.TYPE: c for c in (Hello, StartJob, UploadChunk, UploadEnd, Cancel, Resume, Ack, Ping, Fetch)
}
ClientMessage = Union[Hello, StartJob, UploadChunk, UploadEnd, Cancel, Resume, Ack, Ping, Fetch]
