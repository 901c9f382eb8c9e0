"""Constants and limits of the Resonate wire protocol (version 1)."""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

MiB = 1024 * 1024

#: Formats of an uploaded input.
UPLOAD_FORMATS = ("pcm_f32le", "pcm_s16le", "encoded")
#: The upload streams of one job: its input, and the reference recording it is matched to.
UPLOAD_STREAMS = ("input", "reference")


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

JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STEM_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: a key of ``job_done.outputs`` (``master``, ``stem_vocals``, ``report`` ...)
OUTPUT_KIND_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: a bare file name: no folder separators, no control characters, not "." or ".."
FILENAME_RE = re.compile(r"^(?!\.{1,2}$)[^/\\\x00-\x1f\x7f]{1,255}$")


def is_bare_filename(name: str) -> bool:
    """True for a file name a client may save under as is (no folders, no control characters)."""
    return isinstance(name, str) and bool(FILENAME_RE.match(name))


#: default largest ``file_chunk.data`` the server sends (bytes)
FILE_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Limits:
    """Size and count limits; the server announces them in ``welcome``.

    * ``max_frame_bytes``: largest frame (bytes) either side may send.
    * ``max_chunk_bytes``: largest ``upload_chunk.data`` (bytes).
    * ``max_upload_bytes``: largest total upload of one job (bytes).
    * ``max_jobs``: jobs the server runs at once (all clients together).
    * ``max_queued``: jobs that may wait for a free slot (all clients together; one
      job per client in turn); a ``start_job`` beyond it is refused with ``too_many_jobs``.
    * ``max_ack_window``: largest ``hello.ack_window`` (audio messages).
    * ``max_reference_bytes``: largest reference recording (``start_job.reference``) one
      job may upload (bytes).
    """

    max_frame_bytes: int = 8 * MiB
    max_chunk_bytes: int = 1 * MiB
    max_upload_bytes: int = 4096 * MiB
    max_jobs: int = 4
    max_ack_window: int = 1024
    max_queued: int = 32
    max_reference_bytes: int = 512 * MiB

    def __post_init__(self) -> None:
        if self.max_frame_bytes < 4096:
            raise ValueError("max_frame_bytes must be at least 4096 bytes")
        if not 1 <= self.max_chunk_bytes <= self.max_frame_bytes - 1024:
            raise ValueError("max_chunk_bytes must be >= 1 and leave 1 KiB of headroom in max_frame_bytes")
        if min(self.max_upload_bytes, self.max_jobs, self.max_ack_window, self.max_reference_bytes) < 1:
            raise ValueError("max_upload_bytes, max_reference_bytes, max_jobs and max_ack_window must be >= 1")
        if self.max_queued < 0:
            raise ValueError("max_queued must be >= 0")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Limits":
        """Limits from a ``welcome.limits`` map; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in known and isinstance(v, int)})


DEFAULT_LIMITS = Limits()

#: Most maps + arrays one frame may hold, and most elements in any one of them: checked while
#: msgpack unpacks, so a small frame of millions of empty maps costs nothing.
MAX_FRAME_CONTAINERS = 65_536
MAX_CONTAINER_LEN = 65_536
#: How deep / how many items a JSON-like map field (``settings``, ``report`` ...) may hold.
MAX_PLAIN_DEPTH = 16
MAX_PLAIN_ITEMS = 10_000
MAX_PLAIN_STR = 64 * 1024
