"""The Resonate wire protocol (version 1): codec and sans-I/O sessions.

No sockets, no event loop, no threads: this package turns frames (the bytes
of one binary websocket message) into typed, validated messages and back
(:mod:`.codec`), and holds the rules of a conversation in
:class:`ServerSession` / :class:`ClientSession` (feed a frame, get the frames
to send and the events for the application), in the style of the
``websockets`` library's sans-I/O layer.  It imports only the standard
library, msgpack and numpy, so any client can use it without the server.
``docs/protocol.md`` is the normative description.

Modules: :mod:`.errors` (codes, :class:`ProtocolError`), :mod:`.limits`
(constants, :class:`Limits`), :mod:`.fields` (field checks, message base),
:mod:`.client_messages` / :mod:`.server_messages` (the messages),
:mod:`.codec` (frames, audio bytes), :mod:`.server_session`,
:mod:`.client_session`.
"""
from __future__ import annotations

from .client_messages import (
    CLIENT_MESSAGES, Ack, Cancel, ClientMessage, Fetch, Hello, InputSpec, JobOptions, OutputOptions, PathInput,
    Ping, Resume, StartJob, UploadChunk, UploadEnd, UploadInput,
)
from .client_session import ClientSession
from .codec import (
    audio_frame_overhead, audio_to_bytes, bytes_to_audio, decode_audio, decode_client_message,
    decode_server_message, decode_stems, encode, encode_audio, make_audio, unpack_frame,
)
from .errors import ConnectionLost, ErrorCode, ProtocolError
from .fields import Message
from .limits import (
    AUDIO_FORMAT, DEFAULT_LIMITS, FILE_CHUNK_BYTES, MAX_CHANNELS, MAX_INT, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, MiB,
    OUTPUT_BIT_DEPTHS, OUTPUT_FORMATS, PROTOCOL_VERSION, SUPPORTED_VERSIONS, UPLOAD_FORMATS, UPLOAD_STREAMS, Limits,
    is_bare_filename, pcm_sample_format,
)
from .server_messages import (
    SERVER_MESSAGES, Audio, Error, FileChunk, Info, JobAccepted, JobDone, Pong, Progress, Queued, ServerMessage,
    Welcome,
)
from .client_session import BadFrame, SequenceBroken
from .server_session import (
    Close, Opened, ServerSession, UploadBroken, UploadState, WindowOpened, check_fetch_target, check_range,
)

__all__ = ["Ack", "Audio", "AUDIO_FORMAT", "audio_frame_overhead", "audio_to_bytes", "BadFrame",
           "bytes_to_audio", "Cancel", "check_fetch_target", "check_range", "CLIENT_MESSAGES", "ClientMessage",
           "ClientSession", "Close", "ConnectionLost", "decode_audio", "decode_client_message",
           "decode_server_message", "decode_stems", "DEFAULT_LIMITS", "encode", "encode_audio", "Error",
           "ErrorCode", "Fetch", "FILE_CHUNK_BYTES", "FileChunk", "Hello", "Info", "InputSpec", "is_bare_filename",
           "JobAccepted", "JobDone", "JobOptions", "Limits", "make_audio", "MAX_CHANNELS", "MAX_INT",
           "MAX_SAMPLE_RATE", "Message", "MiB", "MIN_SAMPLE_RATE", "Opened", "OUTPUT_BIT_DEPTHS", "OUTPUT_FORMATS",
           "OutputOptions", "PathInput", "pcm_sample_format", "Ping", "Pong", "Progress", "PROTOCOL_VERSION",
           "ProtocolError", "Queued", "Resume", "SequenceBroken", "SERVER_MESSAGES", "ServerMessage", "ServerSession",
           "StartJob", "SUPPORTED_VERSIONS", "unpack_frame", "UPLOAD_FORMATS", "UploadBroken", "UploadChunk",
           "UploadEnd", "UploadInput", "UploadState", "UPLOAD_STREAMS", "Welcome", "WindowOpened"]
