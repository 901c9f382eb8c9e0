"""``resonate stream``: restore a file on a running gateway and hear it while it works.

The command uploads the recording (``encoded`` upload), writes the streamed
preview to a hidden file beside the output as it arrives (playable while it
grows), draws one progress bar per stage, prints the time to first audio, and
survives dropped connections (it reconnects and resumes from the next block).
When the job is done it downloads the exact final master with ``fetch`` and
puts it at ``-o`` atomically, so the file equals what ``resonate process``
writes for the same input and settings; the preview file is then removed.
With ``--send-stems`` the stems are streamed too and their final files are
downloaded beside the output (``<name>.<stem>.<format>``).  With
``--reference STUDIO_FILE`` that recording is uploaded first (upload stream
``reference``) and the mix is matched to it.

Only the documented protocol is used, through ``clients.python_client``; like
every client it imports :mod:`resonate_protocol` and public libraries only.
``resonate_stream/cli.py`` imports this module lazily inside its ``stream``
subcommand (the one edge from the command dispatcher to ``clients/``) and
hands :func:`stream_main` the validated settings object.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Optional

from resonate_protocol import ProtocolError

from .file_stream import partial_path, stream_to_file
from .python_client import AudioBlock, ConnectionLost, Info, JobDone, Progress, ResonateClient

#: exit status of a run that failed with an error message (as ``resonate``'s other commands)
EXIT_ERROR = 2


class ServerUnreachable(ProtocolError):
    """No gateway answers at the given address."""

    code = "server_unreachable"


def check_output_path(path: Path) -> Path:
    """Refuse (``output_unwritable``) an output that is a folder or whose folder is missing or
    read-only, before anything is uploaded."""
    folder = path.parent
    if path.is_dir():
        raise ProtocolError(f"{path} is a folder; give a file name to write to, e.g. {path / 'restored.wav'}.",
                            code="output_unwritable")
    if not folder.is_dir():
        raise ProtocolError(f"cannot write {path}: the folder {folder} does not exist. Create it first.",
                            code="output_unwritable")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ProtocolError(f"cannot write {path}: the folder {folder} is not writable.", code="output_unwritable")
    return path


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
        raise ProtocolError(f"--server must be a ws://, wss:// or http:// address, not {server!r}",
                            code="bad_settings")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def job_settings(settings: Any) -> dict:
    """``start_job.settings`` for validated ``settings`` (an object whose ``to_dict()`` holds
    ``preset`` and every section, as ``resonate_stream.settings.Settings``): the preset and every
    section as overrides, so the server rebuilds exactly the same settings."""
    data = settings.to_dict()
    preset = data.pop("preset")
    return {"preset": preset, "overrides": data}


def stem_path(output: Path, kind: str, server_path: str) -> Path:
    """Where a downloaded stem goes: ``gig.wav`` + ``stem_vocals`` -> ``gig.vocals.wav``."""
    name = kind[len("stem_"):] if kind.startswith("stem_") else kind
    suffix = Path(server_path).suffix or output.suffix
    return output.with_name(f"{output.stem}.{name}{suffix}")


#: the job's stages in the order they run (docs/protocol.md, ``progress``); unknown ones follow
STAGE_ORDER = ("input", "restore", "master")
#: plain-line mode: a line each time a bar passes another quarter
_PLAIN_STEPS = 4
#: plain-line mode without a known length: a line every this many seconds of audio
_PLAIN_UNKNOWN_EVERY_S = 30.0


class _Console:
    """Progress and notes for one job on ``stream`` (default stderr).

    On a terminal: one tqdm bar per stage, stacked in the order the job runs
    (input, restore, master, then the downloads), whatever order the server's
    latest-value progress messages arrive in (a later stage's bar brings the
    earlier ones with it).  Off a terminal (a log, a pipe) no cursor movement
    is written: plain lines ``progress: restore 50% (12.5/25.0 s)`` at quarter
    steps, as ``resonate process`` prints them.
    """

    def __init__(self, quiet: bool, stream=None, plain: Optional[bool] = None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        if plain is None:
            isatty = getattr(self.stream, "isatty", None)
            plain = not (isatty and isatty())
        self.plain = plain
        self.bars: dict = {}  # stage -> tqdm bar, in screen order
        self._plain_marks: dict = {}  # bar label -> last quarter printed
        self._totals: dict = {}  # stage -> seconds in total (None: unknown)
        self._done: dict = {}  # stage -> seconds done so far
        self.first_audio_s: Optional[float] = None
        self.t0 = time.monotonic()

    def note(self, text: str) -> None:
        if self.quiet:
            return
        if self.bars:
            from tqdm import tqdm

            tqdm.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def on_event(self, ev) -> None:
        if self.quiet:
            return
        if isinstance(ev, Progress):
            self._progress(ev.stage, ev.done, ev.total)
        elif isinstance(ev, Info):
            self.note(f"note: {ev.message}")
        elif isinstance(ev, AudioBlock) and self.first_audio_s is None:
            self.first_audio_s = time.monotonic() - self.t0
            self.note(f"first audio after {self.first_audio_s:.2f} s")
        elif isinstance(ev, JobDone):
            self.finish_stages()

    def finish_stages(self) -> None:
        """At ``job_done`` every stage is complete (progress may have skipped the last values)."""
        for stage in [s for s in STAGE_ORDER if s in self._totals] + \
                [s for s in self._totals if s not in STAGE_ORDER]:
            total = self._totals[stage]
            if total:
                self._progress(stage, total, total)

    def _progress(self, stage: str, done: float, total: Optional[float]) -> None:
        if stage in STAGE_ORDER:  # a later stage has begun, so the earlier ones are at least that far
            k = STAGE_ORDER.index(stage)
            for earlier in STAGE_ORDER[:k]:
                # input >= restore (the output lags the input); master starts after the stream ended
                implied = done if stage == "restore" else (total or self._totals.get(earlier))
                if implied is not None and (earlier not in self._done or self._done[earlier] < implied):
                    self._update(earlier, implied, self._totals.get(earlier) or total)
        self._update(stage, done, total)

    def _update(self, stage: str, done: float, total: Optional[float]) -> None:
        if total or stage not in self._totals:
            self._totals[stage] = total
        done = self._done[stage] = max(done, self._done.get(stage, 0.0))  # never backwards
        if self.plain:
            self._plain(stage, done, total, "s")
        else:
            self._bar(stage, done, total)

    def _plain(self, label: str, done: float, total: Optional[float], unit: str) -> None:
        if total:
            step = min(_PLAIN_STEPS, int(done / total * _PLAIN_STEPS + 1e-9))
        else:
            step = int(done // _PLAIN_UNKNOWN_EVERY_S)
        if self._plain_marks.get(label, -1) >= step:
            return
        self._plain_marks[label] = step
        scale, shown = (1e6, "MB") if unit == "B" else (1.0, "s")
        if total:
            pct = 100.0 * min(done, total) / total
            self.note(f"progress: {label} {pct:.0f}% ({done / scale:.1f}/{total / scale:.1f} {shown})")
        else:
            self.note(f"progress: {label} {done / scale:.1f} {shown}")

    def _bar(self, stage: str, done: float, total: Optional[float]):
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = tqdm(total=total, desc=f"{stage:>10}", unit="s", file=self.stream,
                       position=len(self.bars), leave=True, dynamic_ncols=True,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]"
                       if total else "{desc}: {n:.1f} s [{elapsed}, {rate_fmt}]")
            self.bars[stage] = bar
        if total and bar.total != total:
            bar.total = total
        bar.n = min(done, total) if total else done
        bar.refresh()
        return bar

    def download_bar(self, label: str):
        """``on_progress(done, size)`` for a download: a byte bar below the stage bars, or
        plain lines; None when quiet."""
        if self.quiet:
            return None
        if self.plain:
            return lambda done, size: self._plain(label, done, size, "B")
        from tqdm import tqdm

        def update(done: int, size: int) -> None:
            bar = self.bars.get(label)
            if bar is None:
                bar = self.bars[label] = tqdm(total=size, desc=f"{label:>10}", unit="B", unit_scale=True,
                                              file=self.stream, position=len(self.bars), leave=True,
                                              dynamic_ncols=True)
            bar.n = done
            bar.refresh()

        return update

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def stream_main(args: argparse.Namespace, settings: Any) -> int:
    """Run ``resonate stream`` (``args``: input, server, token, output, send_stems, quiet;
    ``settings``: see :func:`job_settings`).  An error is one line ``error [code]: message`` on
    stderr and exit status 2."""
    try:
        return asyncio.run(_stream(args, settings))
    except ProtocolError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return EXIT_ERROR


async def _stream(args: argparse.Namespace, settings: Any) -> int:
    source = Path(args.input)
    if not source.is_file():
        raise ProtocolError(f"{source} does not exist or is not a file", code="bad_input")
    reference = Path(args.reference) if getattr(args, "reference", None) else None
    if reference is not None and not reference.is_file():
        raise ProtocolError(f"reference recording {reference} does not exist or is not a file", code="bad_reference")
    output = check_output_path(Path(args.output))
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
        if reference is not None and "reference" not in (client.welcome.features if client.welcome else ()):
            raise ProtocolError(f"the server at {url} does not do reference matching (it is older); "
                                "run without --reference or update it", code="bad_reference")
        console.t0 = time.monotonic()
        job = await client.start_job(job_settings(settings), upload_path=source, send_stems=bool(args.send_stems),
                                     reference=reference)
        if reference is not None:
            console.note(f"job {job}: uploading the reference {reference.name} "
                         f"({reference.stat().st_size / 1e6:.1f} MB)")
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
    if isinstance(rep.get("reference"), dict):
        print(f"  matched to the reference {rep['reference'].get('name', '?')}")
    for kind, path in stems.items():
        print(f"  {kind}: {path}")
    print(f"  server copy: {done.outputs.get('master')} (job {job})")
    return 0
