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
    OUTPUT_BIT_DEPTHS, OUTPUT_FORMATS, PROTOCOL_VERSION, SUPPORTED_VERSIONS, UPLOAD_FORMATS, Limits,
    is_bare_filename, pcm_sample_format,
)
from .server_messages import (
    SERVER_MESSAGES, Audio, Error, FileChunk, Info, JobAccepted, JobDone, Pong, Progress, ServerMessage, Welcome,
)
from .client_session import BadFrame, SequenceBroken
from .server_session import (
    Close, Opened, ServerSession, UploadBroken, UploadState, WindowOpened, check_fetch_target, check_range,
)
