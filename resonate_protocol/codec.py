"""Frames <-> messages, and audio <-> bytes: the sans-I/O codec of the Resonate protocol.

Every frame is one msgpack map with at least ``"type"`` (str) and ``"v"``
(int, the protocol version, :data:`~.limits.PROTOCOL_VERSION`).  Decoding is
strict:

* frames above ``Limits.max_frame_bytes`` are refused before unpacking, and
  frames of more than :data:`~.limits.MAX_FRAME_CONTAINERS` maps and arrays
  (or one with more than :data:`~.limits.MAX_CONTAINER_LEN` elements) while
  unpacking;
* msgpack is unpacked with ``raw=False, strict_map_key=True``; extension types
  (timestamps included) are refused; nothing is ever unpickled or evaluated;
* every field is checked (:mod:`.fields`).

Any violation raises :class:`~.errors.ProtocolError` whose ``code`` is one of
the stable codes in :class:`~.errors.ErrorCode`.

Audio travels as interleaved little-endian float32 bytes (``"f32le"``):
:func:`encode_audio` / :func:`decode_audio` convert between that and the
project's array convention, float32 ``(channels, samples)``.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import msgpack
import numpy as np

from .client_messages import CLIENT_MESSAGES, ClientMessage
from .errors import ErrorCode, ProtocolError
from .fields import MISSING, Fields, Message
from .limits import DEFAULT_LIMITS, JOB_ID_RE, MAX_CONTAINER_LEN, MAX_FRAME_CONTAINERS, SUPPORTED_VERSIONS, Limits
from .server_messages import SERVER_MESSAGES, Audio, ServerMessage


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
    containers = 0

    def count(value: Any) -> Any:  # called for every map and array as it is built
        nonlocal containers
        containers += 1
        if containers > MAX_FRAME_CONTAINERS:
            raise ValueError(f"more than {MAX_FRAME_CONTAINERS} maps and arrays in one frame")
        return value

    try:
        m = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            use_list=True,
            list_hook=count,
            object_hook=count,
            max_str_len=n,
            max_bin_len=n,
            max_array_len=MAX_CONTAINER_LEN,
            max_map_len=MAX_CONTAINER_LEN,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises a zoo of types (ValueError, ExtraData, ...)
        raise ProtocolError(f"frame is not one valid msgpack value: {exc}", code=ErrorCode.MALFORMED_FRAME) from None
    if not isinstance(m, dict):
        raise ProtocolError(
            f"a frame must hold a msgpack map, got {type(m).__name__}", code=ErrorCode.MALFORMED_FRAME
        )
    jid = m.get("job_id")
    jid = jid if isinstance(jid, str) and JOB_ID_RE.match(jid) else None
    ref = m.get("ref") if isinstance(m.get("ref"), str) else None
    v = m.get("v", MISSING)
    if v is MISSING or isinstance(v, bool) or not isinstance(v, int):
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
    jid = jid if isinstance(jid, str) and JOB_ID_RE.match(jid) else None
    ref = found.get("ref") if isinstance(found.get("ref"), str) else None
    return t, jid, ref


def _decode(data: Any, table: dict[str, type[Message]], limits: Limits, who: str) -> Message:
    m = unpack_frame(data, limits)
    t = m["type"]
    cls = table.get(t)
    if cls is None:
        f = Fields(m, "?", limits)
        raise ProtocolError(
            f"unknown message type {t[:64]!r} from a {who}; expected one of {', '.join(table)}",
            code=ErrorCode.UNKNOWN_MESSAGE,
            job_id=f.job_id,
            ref=f.ref,
        )
    try:
        return cls._from_fields(Fields(m, t, limits))
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
