"""What a job's input is on the wire (``start_job.input``) and the pieces of an upload."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, AsyncIterator, Optional, Union

import numpy as np

import resonate_protocol as P

Payload = Union[bytes, Path, None]


def job_input(
    input_path: Optional[str] = None,
    upload_path: Optional[os.PathLike | str] = None,
    upload_array: Optional[np.ndarray] = None,
    sample_rate: Optional[int] = None,
    channels: Optional[int] = None,
    upload_format: Optional[str] = None,
) -> tuple[P.InputSpec, Payload]:
    """``(input, payload)`` for exactly one of a server path, a local file (``encoded``, or raw PCM
    when ``upload_format`` is ``pcm_f32le``/``pcm_s16le``) or float32 ``(channels, frames)``
    samples; ``payload``: the bytes or file to upload (None for a server path)."""
    if sum(x is not None for x in (input_path, upload_path, upload_array)) != 1:
        raise ValueError("give exactly one of input_path, upload_path, upload_array")
    if input_path is not None:
        return P.PathInput(path=str(input_path)), None
    if upload_array is not None:
        a = np.asarray(upload_array, dtype=np.float32)
        if a.ndim != 2 or sample_rate is None:
            raise ValueError("upload_array must be (channels, frames) and sample_rate given")
        payload = P.audio_to_bytes(a)
        return P.UploadInput(format="pcm_f32le", sample_rate=int(sample_rate), channels=a.shape[0],
                             size=len(payload)), payload
    path = Path(upload_path)  # type: ignore[arg-type]
    fmt = upload_format or "encoded"
    if fmt != "encoded" and (sample_rate is None or channels is None):
        raise ValueError(f"{fmt} uploads need sample_rate and channels")
    return P.UploadInput(
        format=fmt,
        sample_rate=int(sample_rate) if fmt != "encoded" else None,
        channels=int(channels) if fmt != "encoded" else None,
        filename=path.name[:255],
        size=path.stat().st_size,
    ), path


async def pieces(payload: Any, chunk_bytes: int) -> AsyncIterator[bytes]:
    """The upload's data in pieces of at most ``chunk_bytes`` (a file is read in a thread)."""
    if isinstance(payload, (bytes, bytearray)):
        view = memoryview(payload)
        for start in range(0, len(view), chunk_bytes):
            yield bytes(view[start : start + chunk_bytes])
        return
    with open(payload, "rb") as fh:
        while True:
            piece = await asyncio.to_thread(fh.read, chunk_bytes)
            if not piece:
                return
            yield piece
