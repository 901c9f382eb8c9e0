"""Downloading a finished job's files with ``fetch``, resuming by byte offset."""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import resonate_protocol as P
from resonate_protocol import ConnectionLost, Error, ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from .python_client import ResonateClient

log = logging.getLogger("resonate.client")


@dataclass
class DownloadResult:
    """What :meth:`ResonateClient.download` wrote.

    ``size``: bytes; ``filename`` / ``mime``: as the server named the file;
    ``reconnects``: dropped connections survived; ``resumed_from``: the byte
    offsets the download went on from after each of them.
    """

    path: Path
    size: int
    filename: str
    mime: str
    reconnects: int
    resumed_from: list


async def download(
    client: "ResonateClient",
    job_id: str,
    kind: str,
    path: os.PathLike | str,
    *,
    max_reconnects: int = 5,
    chunk_timeout: Optional[float] = 60.0,
    on_progress: Optional[Any] = None,
) -> DownloadResult:
    """Download output ``kind`` (a key of ``job_done.outputs``: ``master``,
    ``stem_vocals``, ``report`` ...) of a finished job to ``path``.

    Sends ``fetch`` and writes the ``file_chunk`` pieces to a hidden temp
    file beside ``path``, renamed to ``path`` once complete (nothing
    half-written under ``path``; an existing file is replaced only then).
    When the connection drops it reconnects (up to ``max_reconnects``
    times) and fetches again from the byte offset it has, so no byte is
    sent twice.  ``on_progress(bytes_done, size)`` is called after each
    piece; ``chunk_timeout``: seconds to wait for any one piece.
    Raises ``ProtocolError`` with the server's code (``unknown_job``,
    ``unknown_output``, ``output_not_ready``, ...).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    done = 0
    size: Optional[int] = None
    filename = mime = ""
    reconnects = 0
    resumed_from: list[int] = []
    fh = open(tmp, "wb")
    try:
        while True:
            ref = None
            try:
                await client.connect()
                ref, frame, inbox = client.open_fetch(job_id, kind, done)
                await client.send(frame)
                while True:
                    get = inbox.get()
                    item = await (asyncio.wait_for(get, chunk_timeout) if chunk_timeout else get)
                    if isinstance(item, Error):
                        raise item.to_exception()
                    if isinstance(item, ProtocolError):  # bad_sequence
                        raise item
                    if size is not None and item.size != size:  # the file changed between connections
                        raise ProtocolError(f"{item.filename} is now {item.size} bytes, was {size}",
                                            code=P.ErrorCode.BAD_SEQUENCE, job_id=job_id)
                    size, filename, mime = item.size, item.filename, item.mime
                    if item.data:
                        await asyncio.to_thread(fh.write, item.data)
                    done += len(item.data)
                    if on_progress is not None:
                        on_progress(done, size)
                    if item.eof:
                        break
                break
            except ConnectionLost:
                if reconnects >= max_reconnects:
                    raise
                reconnects += 1
                resumed_from.append(done)
                log.info("connection lost during download of %s/%s at byte %d; reconnecting (%d)",
                         job_id, kind, done, reconnects)
                await client.reconnect()
            finally:
                if ref is not None:
                    client.close_fetch(ref)
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(tmp, path)
    finally:
        if not fh.closed:
            fh.close()
        if tmp.exists():
            tmp.unlink()
    assert size is not None
    return DownloadResult(path=path, size=size, filename=filename, mime=mime, reconnects=reconnects,
                          resumed_from=resumed_from)
