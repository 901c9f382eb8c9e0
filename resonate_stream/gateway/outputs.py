"""Which files of a finished job a client may download, and how they are named.

Used by the server for both ways of downloading: the websocket ``fetch``
message (any size, resumable by byte offset) and the plain HTTP route
``GET /jobs/<job_id>/<kind>`` (capped in size).  Pure path logic plus one
``open``; no sockets here.

A file may be downloaded only when all of these hold:

* the job ended well (``job_done``); a running job has no outputs yet
  (``output_not_ready``), a failed or cancelled one has none (``unknown_output``);
* ``kind`` is a key of that job's ``job_done.outputs`` (``unknown_output``);
* the listed path, symlinks resolved, is a regular file inside the job's own
  output folder (``output_unavailable`` otherwise: gone, a URL, or elsewhere).
"""
from __future__ import annotations

import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import resonate_protocol as P

#: media types of the files a job writes (anything else: guessed, else octet-stream)
MIME_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".json": "application/json",
    ".png": "image/png",
}


def mime_for(name: str) -> str:
    """Media type of a file name (``audio/wav``, ``audio/flac``, ``audio/mpeg`` ...)."""
    ext = Path(name).suffix.lower()
    return MIME_TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class OutputFile:
    """An output file checked for download: ``path`` (resolved), ``size`` in bytes."""

    job_id: str
    kind: str
    path: Path
    size: int
    filename: str
    mime: str


def resolve_output(
    job_id: str,
    kind: str,
    *,
    state: str,
    outputs: Optional[Mapping[str, str]],
    job_dir: Path,
    ref: Optional[str] = None,
) -> OutputFile:
    """Check that output ``kind`` of a job may be downloaded; return it.

    ``state``: the job's state (``running``, ``done``, ``failed``,
    ``cancelled``); ``outputs``: its ``job_done.outputs`` map (kind -> path);
    ``job_dir``: the job's own output folder.  Raises ``ProtocolError`` with
    ``unknown_output``, ``output_not_ready`` or ``output_unavailable`` (``ref``
    attached, ``job_id`` not: the job itself is fine).
    """
    E = P.ErrorCode
    if state == "running":
        raise P.ProtocolError(
            f"job {job_id} is still running; its files can be fetched after job_done",
            code=E.OUTPUT_NOT_READY, ref=ref,
        )
    if state != "done":
        raise P.ProtocolError(f"job {job_id} {state}; it has no output files", code=E.UNKNOWN_OUTPUT, ref=ref)
    outputs = dict(outputs or {})
    if kind not in outputs:
        have = ", ".join(sorted(outputs)) or "none"
        raise P.ProtocolError(
            f"job {job_id} has no output {kind!r} (it has: {have})", code=E.UNKNOWN_OUTPUT, ref=ref
        )
    raw = outputs[kind]
    unavailable = P.ProtocolError(
        f"output {kind!r} of job {job_id} is not a file this server can send", code=E.OUTPUT_UNAVAILABLE, ref=ref
    )
    if not isinstance(raw, str) or "://" in raw or "\x00" in raw:
        raise unavailable
    root = Path(os.path.realpath(job_dir))
    real = Path(os.path.realpath(raw))
    if not real.is_relative_to(root) or real == root:
        raise unavailable
    try:
        st = real.stat()
    except OSError:
        raise P.ProtocolError(
            f"output {kind!r} of job {job_id} is gone from the server's disk", code=E.OUTPUT_UNAVAILABLE, ref=ref
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise unavailable
    name = real.name if P.is_bare_filename(real.name) else f"{kind}.bin"
    return OutputFile(job_id=job_id, kind=kind, path=real, size=int(st.st_size), filename=name,
                      mime=mime_for(real.name))
