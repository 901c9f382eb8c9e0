"""Writing a job's streamed audio to a file as it arrives (surviving dropped
connections), and a one-call command line: ``python -m clients.file_stream``."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import resonate_protocol as P
from resonate_protocol import ConnectionLost, Error, JobDone, ProtocolError

from .python_client import AudioBlock, ResonateClient

log = logging.getLogger("resonate.client")


@dataclass
class StreamResult:
    """What :func:`stream_to_file` wrote.

    ``frames``: samples per channel written; ``time_to_first_audio_s``: seconds
    from ``start_job`` (or from the call, when the job was started elsewhere)
    to the first block's arrival; ``reconnects``: dropped connections survived.
    """

    path: Path
    blocks: int
    frames: int
    sample_rate: Optional[int]
    channels: Optional[int]
    time_to_first_audio_s: Optional[float]
    reconnects: int
    done: JobDone


def partial_path(path: os.PathLike | str) -> Path:
    """Where :func:`stream_to_file` writes ``path`` while the job streams: a hidden file
    beside it with the same extension (``gig.wav`` -> ``.gig.part.wav``), growing as blocks
    arrive and renamed to ``path`` when the job is done."""
    path = Path(path)
    return path.with_name(f".{path.stem}.part{path.suffix}")  # same extension: soundfile picks the format


async def stream_to_file(
    client: ResonateClient,
    job_id: str,
    path: os.PathLike | str,
    *,
    subtype: Optional[str] = None,
    reconnect: bool = True,
    max_reconnects: int = 5,
    event_timeout: Optional[float] = None,
    on_event: Optional[Any] = None,
) -> StreamResult:
    """Write the job's audio to ``path`` as it arrives; return when the job is done.

    Writes to a hidden temp file next to ``path`` and renames it on success
    (nothing half-written under ``path``).  The format follows the extension
    (``soundfile``); ``subtype`` defaults to ``FLOAT`` for WAV, ``PCM_24``
    otherwise.  When the connection drops it reconnects (up to
    ``max_reconnects`` times) and resumes from the next block it has not
    received, so every block is written exactly once; offsets are checked
    to be contiguous.  ``on_event(ev)`` (optional) sees every event.
    ``event_timeout``: seconds to wait for any one event (None: rely on the
    websocket keepalive to notice a dead connection).
    Raises ``ProtocolError`` with the server's code if the job fails.
    """
    import soundfile as sf

    path = Path(path)
    tmp = partial_path(path)
    t_ref = client.started_at(job_id) or time.monotonic()
    writer = None
    frames = blocks = reconnects = 0
    sr = ch = None
    ttfa: Optional[float] = None
    done: Optional[JobDone] = None
    try:
        while done is None:
            try:
                async for ev in client.events(job_id, timeout=event_timeout):
                    if on_event is not None:
                        on_event(ev)
                    if isinstance(ev, AudioBlock):
                        if ev.offset != frames:
                            raise ProtocolError(
                                f"block {ev.seq} starts at frame {ev.offset}, expected {frames}",
                                code=P.ErrorCode.BAD_SEQUENCE, job_id=job_id,
                            )
                        if writer is None:
                            ttfa = ev.received_at - t_ref
                            sr, ch = ev.sample_rate, ev.audio.shape[0]
                            st = subtype or ("FLOAT" if path.suffix.lower() in (".wav", ".w64") else "PCM_24")
                            writer = sf.SoundFile(tmp, "w", samplerate=sr, channels=ch, subtype=st)
                        writer.write(ev.audio.T)
                        writer.flush()  # header updated: the growing file is playable as it is
                        frames += ev.frames
                        blocks += 1
                    elif isinstance(ev, JobDone):
                        done = ev
                    elif isinstance(ev, Error):
                        raise ev.to_exception()
                if done is None:  # pragma: no cover - events() always ends with done/error
                    raise ProtocolError("the event stream ended without job_done", code=P.ErrorCode.INTERNAL_ERROR)
            except ConnectionLost:
                if not reconnect or reconnects >= max_reconnects:
                    raise
                reconnects += 1
                log.info("connection lost; reconnecting (%d) and resuming job %s from seq %d",
                         reconnects, job_id, client.next_seq(job_id))
                await client.reconnect()
                await client.resume(job_id)
        if writer is None:  # a job without audio: write an empty file
            sr = sr or 44100
            ch = ch or 2
            writer = sf.SoundFile(tmp, "w", samplerate=sr, channels=ch,
                                  subtype=subtype or ("FLOAT" if path.suffix.lower() == ".wav" else "PCM_24"))
        writer.close()
        writer = None
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        if tmp.exists():
            tmp.unlink()
    return StreamResult(path=path, blocks=blocks, frames=frames, sample_rate=sr, channels=ch,
                        time_to_first_audio_s=ttfa, reconnects=reconnects, done=done)


async def process_file(
    url: str,
    out_path: os.PathLike | str,
    *,
    upload_path: Optional[os.PathLike | str] = None,
    input_path: Optional[str] = None,
    settings: Optional[dict] = None,
    token: Optional[str] = None,
    send_stems: bool = False,
) -> StreamResult:
    """Connect, start a job, stream its output to ``out_path``; one call."""
    async with ResonateClient(url, token) as client:
        job = await client.start_job(settings, upload_path=upload_path, input_path=input_path, send_stems=send_stems)
        return await stream_to_file(client, job, out_path)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m clients.file_stream URL OUT (--upload FILE | --path SERVER_FILE) [--preset NAME]``."""
    ap = argparse.ArgumentParser(description="Stream a Resonate job's output to a file.")
    ap.add_argument("url", help="gateway websocket URL, e.g. ws://127.0.0.1:8765/ws")
    ap.add_argument("out", help="output audio file (written progressively, renamed at the end)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--upload", help="local audio file to upload")
    src.add_argument("--path", help="audio file on the server (inside its allowed folders)")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--token", default=os.environ.get("RESONATE_TOKEN"))
    args = ap.parse_args(argv)
    settings = {"preset": args.preset} if args.preset else {}
    try:
        res = asyncio.run(process_file(args.url, args.out, upload_path=args.upload, input_path=args.path,
                                       settings=settings, token=args.token))
    except ProtocolError as exc:
        print(f"error [{exc.code}]: {exc.message}")
        return 1
    ttfa = f"{res.time_to_first_audio_s:.2f} s" if res.time_to_first_audio_s is not None else "n/a"
    print(f"wrote {res.path} ({res.frames} frames, {res.blocks} blocks, first audio after {ttfa})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
