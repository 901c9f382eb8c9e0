"""``resonate stream``: restore a file on a running gateway and hear it while it works.

The command uploads the recording (``encoded`` upload), writes the streamed
preview to a hidden file beside the output as it arrives (playable while it
grows), draws one progress bar per stage, prints the time to first audio, and
survives dropped connections (it reconnects and resumes from the next block).
When the job is done it downloads the exact final master with ``fetch`` and
puts it at ``-o`` atomically, so the file equals what ``resonate process``
writes for the same input and settings; the preview file is then removed.
With ``--send-stems`` the stems are streamed too and their final files are
downloaded beside the output (``<name>.<stem>.<format>``).

Only the documented protocol is used, through ``clients.python_client``.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Optional

from engine.errors import InputError, ResonateError

from .events import Info as InfoEvent
from .events import Progress as ProgressEvent
from .progress import ProgressPrinter
from .settings import Settings


class ServerUnreachable(ResonateError):
    """No gateway answers at the given address."""

    code = "server_unreachable"


def websocket_url(server: str) -> str:
    """The gateway's websocket URL from what a user types.

    ``ws://host:port`` and ``http://host:port`` get the ``/ws`` path; ``https``
    becomes ``wss``; a bare ``host:port`` means ``ws://host:port/ws``.
    """
    text = server.strip()
    if "://" not in text:
        text = f"ws://{text}"
    parts = urllib.parse.urlsplit(text)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ResonateError(f"--server must be a ws://, wss:// or http:// address, not {server!r}",
                            code="bad_settings")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def job_settings(settings: Settings) -> dict:
    """``start_job.settings`` for validated ``settings``: the preset and every section as overrides
    (the server rebuilds exactly the same :class:`Settings`)."""
    data = settings.to_dict()
    preset = data.pop("preset")
    return {"preset": preset, "overrides": data}


def stem_path(output: Path, kind: str, server_path: str) -> Path:
    """Where a downloaded stem goes: ``gig.wav`` + ``stem_vocals`` -> ``gig.vocals.wav``."""
    name = kind[len("stem_"):] if kind.startswith("stem_") else kind
    suffix = Path(server_path).suffix or output.suffix
    return output.with_name(f"{output.stem}.{name}{suffix}")


class _Console:
    """Progress bars (stderr, via :class:`ProgressPrinter`) and notes for one streamed job."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.printer = ProgressPrinter(quiet=quiet)
        self.first_audio_s: Optional[float] = None
        self.t0 = time.monotonic()

    def note(self, text: str) -> None:
        if not self.quiet:
            self.printer._write(text)

    def on_event(self, ev) -> None:
        """Client events -> ``resonate_stream.events`` objects for the bars."""
        from clients.python_client import AudioBlock, Info, Progress

        if isinstance(ev, Progress):
            self.printer(ProgressEvent(stage=ev.stage, done=ev.done, total=ev.total))
        elif isinstance(ev, Info):
            self.printer(InfoEvent(ev.message, dict(ev.data)))
        elif isinstance(ev, AudioBlock) and self.first_audio_s is None:
            self.first_audio_s = time.monotonic() - self.t0
            self.note(f"first audio after {self.first_audio_s:.2f} s")

    def download_bar(self, label: str):
        """``on_progress(done, size)`` drawing a byte bar, or None when quiet."""
        if self.quiet:
            return None
        from tqdm import tqdm

        bars: dict = {}

        def update(done: int, size: int) -> None:
            bar = bars.get("bar")
            if bar is None:
                bar = bars["bar"] = tqdm(total=size, desc=f"{label:>10}", unit="B", unit_scale=True,
                                         file=sys.stderr, leave=False, dynamic_ncols=True)
            bar.n = done
            bar.refresh()
            if done >= size:
                bar.close()

        return update

    def close(self) -> None:
        self.printer.close()


def stream_main(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``resonate stream`` (``args``: input, server, token, output, send_stems, quiet)."""
    return asyncio.run(_stream(args, settings))


async def _stream(args: argparse.Namespace, settings: Settings) -> int:
    from clients.python_client import ConnectionLost, ResonateClient, partial_path, stream_to_file
    from engine.io.encode import check_writable

    source = Path(args.input)
    if not source.is_file():
        raise InputError(f"{source} does not exist or is not a file")
    output = check_writable(Path(args.output))
    url = websocket_url(args.server)
    token = args.token or os.environ.get("RESONATE_TOKEN")
    preview = output.with_name(f"{output.stem}.preview.wav")
    console = _Console(bool(args.quiet))
    client = ResonateClient(url, token, client_name="resonate-stream-cli")
    try:
        try:
            await client.connect()
        except ConnectionLost as exc:
            raise ServerUnreachable(
                f"no Resonate gateway answers at {url} ({exc.message}); start one with `resonate serve` "
                "or pass --server ws://HOST:PORT"
            ) from None
        console.t0 = time.monotonic()
        job = await client.start_job(job_settings(settings), upload_path=source, send_stems=bool(args.send_stems))
        console.note(f"job {job}: uploading {source.name} ({source.stat().st_size / 1e6:.1f} MB)")
        try:
            await client.upload_done(job)
        except ConnectionLost:
            raise ConnectionLost("the connection dropped during the upload (uploads do not resume); "
                                 "run the command again") from None
        console.note(f"listen while it streams: {partial_path(preview)}")
        streamed = await stream_to_file(client, job, preview, subtype="FLOAT", on_event=console.on_event)
        done = streamed.done
        got = await client.download(job, "master", output, on_progress=console.download_bar("download"))
        stems = {}
        for kind, server_path in sorted(done.outputs.items()):
            if kind.startswith("stem_"):
                stems[kind] = (await client.download(job, kind, stem_path(output, kind, server_path),
                                                     on_progress=console.download_bar(kind))).path
    finally:
        console.close()
        await client.close()
        preview.unlink(missing_ok=True)

    rep = done.report
    m = rep.get("master") or {}
    sep = (rep.get("separation") or {}).get("separator", "?")
    lufs, tp = m.get("output_lufs"), m.get("output_true_peak_dbtp")
    level = f"{lufs:.1f} LUFS, {tp:.1f} dBTP" if lufs is not None and tp is not None else "level n/a"
    ttfa = streamed.time_to_first_audio_s
    reconnects = streamed.reconnects + got.reconnects
    print(f"wrote {got.path}  ({level}; separator: {sep}; {got.size / 1e6:.1f} MB)")
    print(f"  first audio after {ttfa:.2f} s" if ttfa is not None else "  no audio was streamed",
          f"({streamed.blocks} blocks streamed, {reconnects} reconnect{'s' if reconnects != 1 else ''})")
    for kind, path in stems.items():
        print(f"  {kind}: {path}")
    print(f"  server copy: {done.outputs.get('master')} (job {job})")
    return 0
