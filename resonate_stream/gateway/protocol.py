"""Sans-I/O websocket protocol of the Resonate gateway (protocol version 1).

This module turns the bytes of one binary websocket message (a *frame* here)
into a typed, validated message object and back.  It never touches a socket,
a file or an event loop, so the server, the Python client and the tests all
share exactly the same rules.  ``docs/protocol.md`` is the normative
description; keep the two in step (``tests/test_protocol.py`` decodes the
document's byte-level example).

Every frame is one msgpack map with at least ``"type"`` (str) and ``"v"``
(int, the protocol version, :data:`PROTOCOL_VERSION`).  Decoding is strict:

* msgpack is unpacked with ``raw=False, strict_map_key=True``; extension types
  (timestamps included) are refused; nothing is ever unpickled or evaluated;
* frames above ``Limits.max_frame_bytes`` are refused before unpacking;
* every field is type-checked (``True`` is not an int, an int is accepted
  where a float is expected) and range-checked; unknown *extra* fields are
  ignored so that a newer peer can add optional fields without a version bump.

Any violation raises :class:`ProtocolError` whose ``code`` is one of the
stable codes in :class:`ErrorCode`.

Audio travels as interleaved little-endian float32 bytes (``"f32le"``):
:func:`encode_audio` / :func:`decode_audio` convert between that and the
project's array convention, float32 ``(channels, samples)``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping, Optional, Union

import msgpack
import numpy as np

from engine.errors import ResonateError

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

MiB = 1024 * 1024

#: Formats of an uploaded input.
UPLOAD_FORMATS = ("pcm_f32le", "pcm_s16le", "encoded")


def pcm_sample_format(upload_format: str) -> Optional[str]:
    """``"f32le"`` / ``"s16le"`` (as ``PcmPushDecoder`` wants) for a PCM upload format, else None."""
    return upload_format[4:] if upload_format.startswith("pcm_") else None
#: Output container formats a job can ask for.
OUTPUT_FORMATS = ("wav", "flac", "mp3")
#: Output bit depths (32 means 32-bit float, WAV only).
OUTPUT_BIT_DEPTHS = (16, 24, 32)
#: The one audio sample format on the wire.
AUDIO_FORMAT = "f32le"

MIN_SAMPLE_RATE = 1000  # Hz
MAX_SAMPLE_RATE = 768_000  # Hz
MAX_CHANNELS = 32
MAX_INT = 2**53  # largest counter/size accepted (exact in every language's doubles)

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STEM_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: a key of ``job_done.outputs`` (``master``, ``stem_vocals``, ``report`` ...)
_OUTPUT_KIND_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: a bare file name: no folder separators, no control characters, not "." or ".."
_FILENAME_RE = re.compile(r"^(?!\.{1,2}$)[^/\\\x00-\x1f\x7f]{1,255}$")


def is_bare_filename(name: str) -> bool:
    """True for a file name a client may save under as is (no folders, no control characters)."""
    return isinstance(name, str) and bool(_FILENAME_RE.match(name))


#: default largest ``file_chunk.data`` the server sends (bytes)
FILE_CHUNK_BYTES = 256 * 1024


class ErrorCode:
    """Stable error codes carried by ``error`` messages.  Never renamed; only added."""

    # frame / message level (raised by this module)
    MALFORMED_FRAME = "malformed_frame"
    UNKNOWN_MESSAGE = "unknown_message"
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_FIELD = "bad_field"
    FRAME_TOO_LARGE = "frame_too_large"
    CHUNK_TOO_LARGE = "chunk_too_large"
    UPLOAD_TOO_LARGE = "upload_too_large"
    # session / job level (raised by the server)
    HANDSHAKE_REQUIRED = "handshake_required"
    UNEXPECTED_MESSAGE = "unexpected_message"
    UNAUTHORIZED = "unauthorized"
    UNKNOWN_JOB = "unknown_job"
    TOO_MANY_JOBS = "too_many_jobs"
    BAD_UPLOAD = "bad_upload"
    UPLOAD_TIMEOUT = "upload_timeout"
    PATH_NOT_ALLOWED = "path_not_allowed"
    INPUT_NOT_FOUND = "input_not_found"
    CANCELLED = "cancelled"
    TOO_MANY_ERRORS = "too_many_errors"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL_ERROR = "internal_error"
    BACKEND_ERROR = "backend_error"
    # downloads of a finished job's files (``fetch``)
    UNKNOWN_OUTPUT = "unknown_output"
    OUTPUT_NOT_READY = "output_not_ready"
    OUTPUT_UNAVAILABLE = "output_unavailable"
    BAD_RANGE = "bad_range"
    TOO_MANY_FETCHES = "too_many_fetches"
    TOO_LARGE_FOR_HTTP = "too_large_for_http"  # HTTP download route only
    # client side only (never on the wire)
    BAD_SEQUENCE = "bad_sequence"
    CONNECTION_LOST = "connection_lost"


class ProtocolError(ResonateError):
    """A frame or message breaks the protocol.

    ``code`` is one of :class:`ErrorCode`; ``job_id`` / ``ref`` name the job or
    request the bad message referred to when that could be read from it, so
    the server can fail only that job.
    """

    code = "protocol_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        job_id: str | None = None,
        ref: str | None = None,
    ):
        super().__init__(message, code=code)
        self.job_id = job_id
        self.ref = ref
        self.msg_type: str | None = None  # the message's "type" when it was readable


@dataclass(frozen=True)
class Limits:
    """Size and count limits; the server announces them in ``welcome``.

    * ``max_frame_bytes``: largest frame (bytes) either side may send.
    * ``max_chunk_bytes``: largest ``upload_chunk.data`` (bytes).
    * ``max_upload_bytes``: largest total upload of one job (bytes).
    * ``max_jobs``: jobs the server runs at once (all clients together).
    * ``max_ack_window``: largest ``hello.ack_window`` (audio messages).
    """

    max_frame_bytes: int = 8 * MiB
    max_chunk_bytes: int = 1 * MiB
    max_upload_bytes: int = 4096 * MiB
    max_jobs: int = 4
    max_ack_window: int = 1024

    def __post_init__(self) -> None:
        if self.max_frame_bytes < 4096:
            raise ValueError("max_frame_bytes must be at least 4096 bytes")
        if not 1 <= self.max_chunk_bytes <= self.max_frame_bytes - 1024:
            raise ValueError("max_chunk_bytes must be >= 1 and leave 1 KiB of headroom in max_frame_bytes")
        if self.max_upload_bytes < 1 or self.max_jobs < 1 or self.max_ack_window < 1:
            raise ValueError("max_upload_bytes, max_jobs and max_ack_window must be >= 1")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Limits":
        """Limits from a ``welcome.limits`` map; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in known and isinstance(v, int)})


DEFAULT_LIMITS = Limits()


# --------------------------------------------------------------------------- #
# Field validation helpers
# --------------------------------------------------------------------------- #

_MISSING = object()
_MAX_PLAIN_DEPTH = 16
_MAX_PLAIN_ITEMS = 10_000
_MAX_PLAIN_STR = 64 * 1024


def _plain(value: Any, where: str, *, depth: int = 0, budget: list[int] | None = None) -> Any:
    """Check that ``value`` is JSON-like (nil, bool, int, finite float, str, list, str-keyed map).

    Returns the value unchanged; raises ``ValueError`` with a path on violation.
    Bytes, msgpack timestamps and other extension values are refused.
    """
    if budget is None:
        budget = [_MAX_PLAIN_ITEMS]
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"{where}: more than {_MAX_PLAIN_ITEMS} items")
    if depth > _MAX_PLAIN_DEPTH:
        raise ValueError(f"{where}: nested deeper than {_MAX_PLAIN_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) >= 2**63:
            raise ValueError(f"{where}: integer out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: NaN/Inf is not allowed")
        return value
    if isinstance(value, str):
        if len(value) > _MAX_PLAIN_STR:
            raise ValueError(f"{where}: string longer than {_MAX_PLAIN_STR} characters")
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            _plain(item, f"{where}[{i}]", depth=depth + 1, budget=budget)
        return value
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: map keys must be strings")
            _plain(item, f"{where}.{k}", depth=depth + 1, budget=budget)
        return value
    raise ValueError(f"{where}: values of type {type(value).__name__} are not allowed here")


class _Fields:
    """Reads and checks the fields of one decoded message map."""

    def __init__(self, m: dict, where: str, limits: Limits):
        self.m = m
        self.where = where
        self.limits = limits
        jid = m.get("job_id")
        self.job_id = jid if isinstance(jid, str) and _JOB_ID_RE.match(jid) else None
        ref = m.get("ref")
        self.ref = ref if isinstance(ref, str) and len(ref) <= 64 else None

    def fail(self, name: str, why: str, code: str = ErrorCode.BAD_FIELD) -> ProtocolError:
        return ProtocolError(f"{self.where}.{name}: {why}", code=code, job_id=self.job_id, ref=self.ref)

    def _get(self, name: str, required: bool, nullable: bool, default: Any) -> Any:
        value = self.m.get(name, _MISSING)
        if value is _MISSING or (value is None and not required):
            if required:
                raise self.fail(name, "missing required field")
            return default
        if value is None and not nullable:
            raise self.fail(name, "must not be nil")
        return value

    def str(
        self,
        name: str,
        *,
        required: bool = True,
        default: Any = None,
        max_len: int = 256,
        choices: tuple[str, ...] | None = None,
        pattern: re.Pattern | None = None,
        nullable: bool = False,
    ) -> Any:
        value = self._get(name, required, nullable, default)
        if value is None or value is default and not required:
            return value
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, got {type(value).__name__}")
        if len(value) > max_len:
            raise self.fail(name, f"longer than {max_len} characters")
        if "\x00" in value:
            raise self.fail(name, "contains a NUL character")
        if choices is not None and value not in choices:
            raise self.fail(name, f"must be one of {', '.join(choices)}; got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(name, f"has an invalid form: {value[:80]!r}")
        return value

    def int(
        self,
        name: str,
        *,
        required: bool = True,
        default: Any = None,
        lo: int = 0,
        hi: int = MAX_INT,
        nullable: bool = False,
    ) -> Any:
        value = self._get(name, required, nullable, default)
        if value is None or value is default and not required:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"expected an integer, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise self.fail(name, f"{value} is outside the allowed range {lo}..{hi}")
        return value

    def float(
        self,
        name: str,
        *,
        required: bool = True,
        default: Any = None,
        lo: float = 0.0,
        hi: float = 1e12,
        nullable: bool = False,
    ) -> Any:
        value = self._get(name, required, nullable, default)
        if value is None or value is default and not required:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(name, f"expected a number, got {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value) or not lo <= value <= hi:
            raise self.fail(name, f"{value} is outside the allowed range {lo}..{hi}")
        return value

    def bool(self, name: str, *, required: bool = True, default: Any = None) -> Any:
        value = self._get(name, required, False, default)
        if value is default and not required:
            return value
        if not isinstance(value, bool):
            raise self.fail(name, f"expected a boolean, got {type(value).__name__}")
        return value

    def bytes(self, name: str, *, max_len: int, code: str = ErrorCode.BAD_FIELD) -> bytes:
        value = self._get(name, True, False, None)
        if not isinstance(value, (bytes, bytearray)):
            raise self.fail(name, f"expected binary data (msgpack bin), got {type(value).__name__}")
        if len(value) > max_len:
            raise self.fail(name, f"{len(value)} bytes is more than the limit of {max_len} bytes", code)
        return bytes(value)

    def map(self, name: str, *, required: bool = True, default: Any = None, nullable: bool = False) -> Any:
        """A JSON-like map (str keys; nil/bool/int/float/str/list/map values)."""
        value = self._get(name, required, nullable, default)
        if value is None or value is default and not required:
            return value
        if not isinstance(value, dict):
            raise self.fail(name, f"expected a map, got {type(value).__name__}")
        try:
            _plain(value, name)
        except ValueError as exc:
            raise self.fail(name, str(exc)) from None
        return value

    def raw_map(self, name: str, *, required: bool = True) -> Any:
        """A map with str keys whose values are checked by the caller."""
        value = self._get(name, required, False, None)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise self.fail(name, "expected a map with string keys")
        return value

    def sub(self, name: str, m: dict) -> "_Fields":
        f = _Fields(m, f"{self.where}.{name}", self.limits)
        f.job_id, f.ref = self.job_id, self.ref
        return f


# --------------------------------------------------------------------------- #
# Messages
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Message:
    """Base of every protocol message.  ``TYPE`` is the wire ``"type"``."""

    TYPE: ClassVar[str] = ""

    def to_map(self) -> dict:
        """The msgpack map of this message: ``type``, ``v``, then the fields."""
        out: dict = {"type": self.TYPE, "v": PROTOCOL_VERSION}
        for f in fields(self):
            out[f.name] = _to_wire(getattr(self, f.name))
        return out

    @classmethod
    def _from_fields(cls, f: _Fields) -> "Message":  # pragma: no cover - abstract
        raise NotImplementedError


def _to_wire(value: Any) -> Any:
    if isinstance(value, _Part):
        return value.to_map()
    return value


@dataclass(frozen=True)
class _Part:
    """A nested map inside a message (input, options)."""

    def to_map(self) -> dict:
        return {f.name: _to_wire(getattr(self, f.name)) for f in fields(self)}


# ---- nested parts of start_job --------------------------------------------- #


@dataclass(frozen=True)
class PathInput(_Part):
    """Input already on the server: ``path`` (absolute, or relative to the first allowed folder)."""

    path: str
    kind: str = "path"

    def to_map(self) -> dict:
        return {"kind": "path", "path": self.path}


@dataclass(frozen=True)
class UploadInput(_Part):
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
class OutputOptions(_Part):
    """Final file options: ``format`` (wav/flac/mp3), ``bit_depth`` (16/24/32-float),
    ``sample_rate`` in Hz (None: keep the working rate, 44100 Hz)."""

    format: str = "wav"
    bit_depth: int = 24
    sample_rate: Optional[int] = None


@dataclass(frozen=True)
class JobOptions(_Part):
    """``send_stems``: also stream the separated stems in every ``audio`` message;
    ``output``: final file options (None: the preset's export settings)."""

    send_stems: bool = False
    output: Optional[OutputOptions] = None


def _input_from(f: _Fields, m: Any) -> InputSpec:
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
    size = sf.int("size", required=False, nullable=True)
    if size is not None and size > f.limits.max_upload_bytes:
        raise sf.fail(
            "size",
            f"{size} bytes is more than this server accepts ({f.limits.max_upload_bytes} bytes)",
            ErrorCode.UPLOAD_TOO_LARGE,
        )
    return UploadInput(format=fmt, sample_rate=sr, channels=ch, filename=filename, size=size)


def _options_from(f: _Fields, m: Any) -> JobOptions:
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
    def _from_fields(cls, f: _Fields) -> "Hello":
        return cls(
            client=f.str("client", required=False, default="", max_len=128),
            token=f.str("token", required=False, max_len=1024, nullable=True),
            ack_window=f.int("ack_window", required=False, default=0, hi=f.limits.max_ack_window),
        )


@dataclass(frozen=True)
class StartJob(Message):
    """Start a job.  ``settings``: ``{"preset": str, "overrides": map}`` (plain map);
    ``ref``: client-chosen string echoed in ``job_accepted`` / ``error``."""

    TYPE: ClassVar[str] = "start_job"
    input: InputSpec
    settings: dict = field(default_factory=dict)
    options: JobOptions = field(default_factory=JobOptions)
    ref: Optional[str] = None

    @classmethod
    def _from_fields(cls, f: _Fields) -> "StartJob":
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
        )


@dataclass(frozen=True)
class UploadChunk(Message):
    """One piece of an upload: ``index`` counts 0, 1, 2 ... with no gaps; ``data`` raw bytes."""

    TYPE: ClassVar[str] = "upload_chunk"
    job_id: str
    index: int
    data: bytes

    @classmethod
    def _from_fields(cls, f: _Fields) -> "UploadChunk":
        return cls(
            job_id=f.str("job_id", pattern=_JOB_ID_RE),
            index=f.int("index"),
            data=f.bytes("data", max_len=f.limits.max_chunk_bytes, code=ErrorCode.CHUNK_TOO_LARGE),
        )


@dataclass(frozen=True)
class UploadEnd(Message):
    """The upload is complete.  ``chunks`` / ``size`` (optional) let the server check it."""

    TYPE: ClassVar[str] = "upload_end"
    job_id: str
    chunks: Optional[int] = None
    size: Optional[int] = None

    @classmethod
    def _from_fields(cls, f: _Fields) -> "UploadEnd":
        return cls(
            job_id=f.str("job_id", pattern=_JOB_ID_RE),
            chunks=f.int("chunks", required=False, nullable=True),
            size=f.int("size", required=False, nullable=True),
        )


@dataclass(frozen=True)
class Cancel(Message):
    TYPE: ClassVar[str] = "cancel"
    job_id: str

    @classmethod
    def _from_fields(cls, f: _Fields) -> "Cancel":
        return cls(job_id=f.str("job_id", pattern=_JOB_ID_RE))


@dataclass(frozen=True)
class Resume(Message):
    """Attach to an existing job and receive its ``audio`` from ``from_seq`` (the next seq wanted)."""

    TYPE: ClassVar[str] = "resume"
    job_id: str
    from_seq: int = 0

    @classmethod
    def _from_fields(cls, f: _Fields) -> "Resume":
        return cls(job_id=f.str("job_id", pattern=_JOB_ID_RE), from_seq=f.int("from_seq"))


@dataclass(frozen=True)
class Ack(Message):
    """Flow control: every ``audio`` message of ``job_id`` up to and including ``seq`` arrived."""

    TYPE: ClassVar[str] = "ack"
    job_id: str
    seq: int

    @classmethod
    def _from_fields(cls, f: _Fields) -> "Ack":
        return cls(job_id=f.str("job_id", pattern=_JOB_ID_RE), seq=f.int("seq"))


@dataclass(frozen=True)
class Ping(Message):
    """Application-level ping; ``data`` (nil, int or short string) is echoed in ``pong``."""

    TYPE: ClassVar[str] = "ping"
    data: Union[int, str, None] = None

    @classmethod
    def _from_fields(cls, f: _Fields) -> "Ping":
        return cls(data=_ping_data(f))


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
    def _from_fields(cls, f: _Fields) -> "Fetch":
        return cls(
            job_id=f.str("job_id", pattern=_JOB_ID_RE),
            kind=f.str("kind", max_len=64, pattern=_OUTPUT_KIND_RE),
            offset=f.int("offset", required=False, default=0),
            ref=f.str("ref", required=False, max_len=64, nullable=True),
        )


def _ping_data(f: _Fields) -> Union[int, str, None]:
    data = f.m.get("data")
    if data is None:
        return None
    if isinstance(data, str):
        return f.str("data", max_len=256)
    return f.int("data", lo=-(2**53), hi=2**53)


# ---- server -> client -------------------------------------------------------- #


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
    def _from_fields(cls, f: _Fields) -> "Welcome":
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
    def _from_fields(cls, f: _Fields) -> "JobAccepted":
        return cls(
            job_id=f.str("job_id", pattern=_JOB_ID_RE),
            ref=f.str("ref", required=False, max_len=64, nullable=True),
            resumed_from=f.int("resumed_from", required=False, nullable=True),
        )


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
    def _from_fields(cls, f: _Fields) -> "Progress":
        return cls(
            job_id=f.str("job_id", pattern=_JOB_ID_RE),
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
    def _from_fields(cls, f: _Fields) -> "Info":
        return cls(
            job_id=f.str("job_id", required=False, pattern=_JOB_ID_RE, nullable=True),
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
    def _from_fields(cls, f: _Fields) -> "Audio":
        job_id = f.str("job_id", pattern=_JOB_ID_RE)
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
                if not _STEM_NAME_RE.match(name):
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
    ``outputs`` (kind -> server path or URL)."""

    TYPE: ClassVar[str] = "job_done"
    job_id: str
    report: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)

    @classmethod
    def _from_fields(cls, f: _Fields) -> "JobDone":
        outputs = f.map("outputs", required=False, default=None, nullable=True) or {}
        if not all(isinstance(v, str) for v in outputs.values()):
            raise f.fail("outputs", "values must be strings (paths or URLs)")
        return cls(
            job_id=f.str("job_id", pattern=_JOB_ID_RE),
            report=f.map("report", required=False, default=None, nullable=True) or {},
            outputs=outputs,
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
    def _from_fields(cls, f: _Fields) -> "FileChunk":
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
            job_id=f.str("job_id", pattern=_JOB_ID_RE),
            kind=f.str("kind", max_len=64, pattern=_OUTPUT_KIND_RE),
            offset=offset,
            data=data,
            size=size,
            eof=eof,
            filename=f.str("filename", max_len=255, pattern=_FILENAME_RE),
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
    def _from_fields(cls, f: _Fields) -> "Error":
        return cls(
            code=f.str("code", max_len=64),
            message=f.str("message", max_len=4096),
            job_id=f.str("job_id", required=False, pattern=_JOB_ID_RE, nullable=True),
            fatal=f.bool("fatal", required=False, default=False),
            ref=f.str("ref", required=False, max_len=64, nullable=True),
        )

    @classmethod
    def from_exception(
        cls, exc: ResonateError, *, job_id: str | None = None, fatal: bool = False, ref: str | None = None
    ) -> "Error":
        """An ``error`` message from a typed error (message cut to 4096 characters)."""
        return cls(code=exc.code[:64], message=exc.message[:4096], job_id=job_id, fatal=fatal, ref=ref)

    def to_exception(self) -> ProtocolError:
        return ProtocolError(self.message, code=self.code, job_id=self.job_id, ref=self.ref)


@dataclass(frozen=True)
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    data: Union[int, str, None] = None

    @classmethod
    def _from_fields(cls, f: _Fields) -> "Pong":
        return cls(data=_ping_data(f))


ClientMessage = Union[Hello, StartJob, UploadChunk, UploadEnd, Cancel, Resume, Ack, Ping, Fetch]
ServerMessage = Union[Welcome, JobAccepted, Progress, Info, Audio, JobDone, FileChunk, Error, Pong]

CLIENT_MESSAGES: dict[str, type[Message]] = {
    c.TYPE: c for c in (Hello, StartJob, UploadChunk, UploadEnd, Cancel, Resume, Ack, Ping, Fetch)
}
SERVER_MESSAGES: dict[str, type[Message]] = {
    c.TYPE: c for c in (Welcome, JobAccepted, Progress, Info, Audio, JobDone, FileChunk, Error, Pong)
}


# --------------------------------------------------------------------------- #
# Frames <-> messages
# --------------------------------------------------------------------------- #


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def encode(message: Message) -> bytes:
    """The frame (bytes of one binary websocket message) for ``message``."""
    return msgpack.packb(message.to_map(), use_bin_type=True)


def unpack_frame(data: Any, limits: Limits = DEFAULT_LIMITS) -> dict:
    """Unpack one frame into its msgpack map and check ``type`` and ``v``.

    Raises :class:`ProtocolError` (``malformed_frame``, ``frame_too_large``,
    ``unsupported_version``, ``bad_field``).
    """
    if isinstance(data, str):
        raise ProtocolError(
            "text frames are not part of the protocol; send msgpack in binary frames",
            code=ErrorCode.MALFORMED_FRAME,
        )
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError("a frame must be bytes", code=ErrorCode.MALFORMED_FRAME)
    if len(data) > limits.max_frame_bytes:
        t, jid, ref = _peek_ids(data)
        exc = ProtocolError(
            f"frame of {len(data)} bytes is larger than the limit of {limits.max_frame_bytes} bytes",
            code=ErrorCode.FRAME_TOO_LARGE,
            job_id=jid,
            ref=ref,
        )
        exc.msg_type = t
        raise exc
    n = limits.max_frame_bytes
    try:
        m = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            use_list=True,
            max_str_len=n,
            max_bin_len=n,
            max_array_len=n,
            max_map_len=n,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises a zoo of types (ValueError, ExtraData, ...)
        raise ProtocolError(f"frame is not one valid msgpack value: {exc}", code=ErrorCode.MALFORMED_FRAME) from None
    if not isinstance(m, dict):
        raise ProtocolError(
            f"a frame must hold a msgpack map, got {type(m).__name__}", code=ErrorCode.MALFORMED_FRAME
        )
    jid = m.get("job_id")
    jid = jid if isinstance(jid, str) and _JOB_ID_RE.match(jid) else None
    ref = m.get("ref") if isinstance(m.get("ref"), str) else None
    v = m.get("v", _MISSING)
    if v is _MISSING or isinstance(v, bool) or not isinstance(v, int):
        raise ProtocolError(
            "every message needs an integer field 'v' (protocol version)", code=ErrorCode.BAD_FIELD, job_id=jid, ref=ref
        )
    if v not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            f"protocol version {v} is not supported; this side speaks {list(SUPPORTED_VERSIONS)}",
            code=ErrorCode.UNSUPPORTED_VERSION,
            job_id=jid,
            ref=ref,
        )
    t = m.get("type")
    if not isinstance(t, str):
        raise ProtocolError(
            "every message needs a string field 'type'", code=ErrorCode.MALFORMED_FRAME, job_id=jid, ref=ref
        )
    return m


def _peek_ids(data: Any) -> tuple[Optional[str], Optional[str], Optional[str]]:
    """Best effort: ``type``, ``job_id`` and ``ref`` of an oversized frame, reading only
    its top-level keys and short string values (big values are skipped, not decoded)."""
    found: dict = {}
    try:
        u = msgpack.Unpacker(raw=False, strict_map_key=True, ext_hook=_refuse_ext, max_buffer_size=len(data) + 1)
        u.feed(data)
        for _ in range(min(u.read_map_header(), 64)):
            key = u.unpack()
            if key in ("type", "job_id", "ref") and key not in found:
                found[key] = u.unpack()
            else:
                u.skip()
            if len(found) == 3:
                break
    except Exception:
        pass
    t = found.get("type") if isinstance(found.get("type"), str) else None
    jid = found.get("job_id")
    jid = jid if isinstance(jid, str) and _JOB_ID_RE.match(jid) else None
    ref = found.get("ref") if isinstance(found.get("ref"), str) else None
    return t, jid, ref


def _decode(data: Any, table: dict[str, type[Message]], limits: Limits, who: str) -> Message:
    m = unpack_frame(data, limits)
    t = m["type"]
    cls = table.get(t)
    if cls is None:
        f = _Fields(m, "?", limits)
        raise ProtocolError(
            f"unknown message type {t[:64]!r} from a {who}; expected one of {', '.join(table)}",
            code=ErrorCode.UNKNOWN_MESSAGE,
            job_id=f.job_id,
            ref=f.ref,
        )
    try:
        return cls._from_fields(_Fields(m, t, limits))
    except ProtocolError as exc:
        exc.msg_type = t
        raise


def decode_client_message(data: Any, limits: Limits = DEFAULT_LIMITS) -> ClientMessage:
    """Decode a frame sent by a client (the server calls this)."""
    return _decode(data, CLIENT_MESSAGES, limits, "client")  # type: ignore[return-value]


def decode_server_message(data: Any, limits: Limits = DEFAULT_LIMITS) -> ServerMessage:
    """Decode a frame sent by the server (clients call this)."""
    return _decode(data, SERVER_MESSAGES, limits, "server")  # type: ignore[return-value]


# --------------------------------------------------------------------------- #
# Audio <-> bytes
# --------------------------------------------------------------------------- #


def audio_to_bytes(block: np.ndarray) -> bytes:
    """Interleaved little-endian float32 bytes of a ``(channels, frames)`` block."""
    a = np.asarray(block)
    if a.ndim != 2:
        raise ValueError(f"expected a (channels, frames) block, got shape {a.shape}")
    return np.ascontiguousarray(a.T, dtype="<f4").tobytes()


def bytes_to_audio(data: bytes, channels: int) -> np.ndarray:
    """Float32 ``(channels, frames)`` array (C-contiguous) from interleaved f32le bytes."""
    if channels < 1 or len(data) % (4 * channels):
        raise ValueError(f"{len(data)} bytes is not a whole number of {channels}-channel float32 frames")
    inter = np.frombuffer(data, dtype="<f4").reshape(-1, channels)
    return np.ascontiguousarray(inter.T, dtype=np.float32)


def make_audio(
    job_id: str,
    seq: int,
    offset: int,
    sample_rate: int,
    block: np.ndarray,
    stems: Optional[Mapping[str, np.ndarray]] = None,
) -> Audio:
    """An :class:`Audio` message for ``block`` (float32 ``(channels, frames)``).

    ``offset`` is in frames at ``sample_rate`` Hz; every stem must have the same shape.
    """
    block = np.asarray(block)
    if block.ndim != 2:
        raise ValueError(f"expected a (channels, frames) block, got shape {block.shape}")
    ch, n = block.shape
    wire_stems = None
    if stems:
        wire_stems = {}
        for name, s in stems.items():
            s = np.asarray(s)
            if s.shape != block.shape:
                raise ValueError(f"stem {name!r} has shape {s.shape}, expected {block.shape}")
            wire_stems[str(name)] = audio_to_bytes(s)
    return Audio(
        job_id=job_id, seq=int(seq), offset=int(offset), sample_rate=int(sample_rate),
        channels=int(ch), frames=int(n), data=audio_to_bytes(block), stems=wire_stems,
    )


def encode_audio(
    job_id: str,
    seq: int,
    offset: int,
    sample_rate: int,
    block: np.ndarray,
    stems: Optional[Mapping[str, np.ndarray]] = None,
) -> bytes:
    """The ``audio`` frame for ``block`` (float32 ``(channels, frames)``); see :func:`make_audio`."""
    return encode(make_audio(job_id, seq, offset, sample_rate, block, stems))


def decode_audio(msg: Audio) -> np.ndarray:
    """The float32 ``(channels, frames)`` array of an ``audio`` message."""
    return bytes_to_audio(msg.data, msg.channels)


def decode_stems(msg: Audio) -> dict[str, np.ndarray]:
    """Stem name -> float32 ``(channels, frames)`` array ({} when the message has no stems)."""
    return {k: bytes_to_audio(v, msg.channels) for k, v in (msg.stems or {}).items()}


def audio_frame_overhead(job_id: str, stems: int = 0) -> int:
    """Upper bound (bytes) of an ``audio`` frame's size minus its sample bytes."""
    return 256 + len(job_id) + 80 * stems
