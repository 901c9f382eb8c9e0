"""``resonate`` command line: process, info, models, cache, serve, stream.

Errors that Resonate raises on purpose (``ResonateError``) are printed as one
line ``error [code]: message`` with exit status 2; nothing else is printed.
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
from pathlib import Path

from engine.errors import ResonateError, SettingsError
from engine.io.encode import EXPORT_FORMATS, MP3_BITRATES

from .output_names import DEFAULT_NAME_TEMPLATE

EXIT_ERROR = 2


# ---------------------------------------------------------------------------
# shared option groups
def _lane_threads(value: str):
    """``--lane-threads``: ``auto`` or an integer >= 0 (argparse reports anything else)."""
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0, got {value!r}")
    return n


def _add_processing_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("processing")
    from .presets import DEFAULT_PRESET, preset_names  # reads file names only: no engine import

    g.add_argument("--preset", default=DEFAULT_PRESET, choices=preset_names(),
                   help=f"processing strength (default: {DEFAULT_PRESET})")
    g.add_argument("--settings", metavar="FILE", help="YAML/JSON file of setting overrides (same nesting as a preset) (default: none)")
    g.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set mix.gains_db.vocals=2 (repeatable; default: none)")
    g.add_argument("--separator", choices=["auto", "demucs", "dsp"],
                   help="auto: Demucs when weights load, else DSP (default); demucs: fail without weights; dsp: weight-free")
    g.add_argument("--model", help="Demucs model name (default htdemucs)")
    g.add_argument("--model-repo", metavar="DIR",
                   help="folder with Demucs weights (.th/.yaml) (default: $RESONATE_MODEL_REPO, then the caches)")
    g.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
                   help="device for model stages (default: auto, the best one present)")
    g.add_argument("--quality", choices=["preview", "render"],
                   help="preview: fast; render: best, slower (default: from the preset)")
    g.add_argument("--polish", choices=["off", "mbd"],
                   help="MultiBandDiffusion polish of the enhanced stems (AudioCraft + MBD weights, CC-BY-NC; "
                        "a GPU feature: about 44x slower than real time on 2 CPU cores) (default: off)")
    g.add_argument("--mode", choices=["restore", "generate", "both"],
                   help="restore (default); generate: NEW music by JASCO from the recording's chords, melody, "
                        "drums, key and tempo, labelled AI-generated (weights CC-BY-NC); both: restored and "
                        "generated blended (generate.blend)")
    e = p.add_argument_group("export")
    e.add_argument("--format", choices=list(EXPORT_FORMATS),
                   help="output format; must agree with the -o extension (default: from the -o extension; wav "
                        "for a folder)")
    e.add_argument("--bit-depth", type=int, choices=[16, 24, 32],
                   help="bits per sample, WAV/FLAC only (default 24; TPDF dither below 32)")
    e.add_argument("--mp3-bitrate", type=int, choices=MP3_BITRATES, metavar="KBPS",
                   help=f"constant MP3 bitrate in kbit/s: {', '.join(map(str, MP3_BITRATES))} "
                        "(default: VBR V0, about 250 kbit/s)")
    e.add_argument("--sample-rate", choices=["44100", "48000", "keep"],
                   help="output sample rate (default 44100; 48000 for opus)")
    e.add_argument("--target-lufs", type=float, help="integrated loudness target (default -14 LUFS)")
    e.add_argument("--ceiling-dbtp", type=float, help="true-peak ceiling (default -1 dBTP)")


def settings_from_args(args: argparse.Namespace, output: Path | None = None):
    """Build validated :class:`Settings` from CLI options (preset < file < --set < flags)."""
    from .settings import Settings, deep_merge, load_overrides_file, parse_set_option

    over: dict = {}
    if getattr(args, "settings", None):
        over = load_overrides_file(args.settings)
    for item in getattr(args, "sets", []) or []:
        over = deep_merge(over, parse_set_option(item))
    flags = {
        ("separation", "separator"): args.separator,
        ("separation", "model"): args.model,
        ("separation", "model_repo"): args.model_repo,
        ("separation", "device"): args.device,
        ("separation", "quality"): args.quality,
        ("polish", "mode"): getattr(args, "polish", None),
        ("generate", "mode"): getattr(args, "mode", None),
        ("export", "bit_depth"): args.bit_depth,
        ("export", "mp3_bitrate"): args.mp3_bitrate,
        ("export", "sample_rate"): (args.sample_rate if args.sample_rate in (None, "keep") else int(args.sample_rate)),
        ("master", "target_lufs"): args.target_lufs,
        ("master", "ceiling_dbtp"): args.ceiling_dbtp,
    }
    fmt = args.format
    export = over.get("export")
    chosen = export.get("format") if isinstance(export, dict) else None  # by --settings / --set
    if chosen is not None:
        Settings.from_preset(args.preset, over)  # a bad value is named as such first
        if fmt is not None and fmt != chosen:
            raise SettingsError(f"export.format is {chosen} but the output is {fmt}"
                                f"{f' ({output.name})' if output is not None else ''}: make them agree")
    elif fmt is None and output is not None and output.suffix.lower().lstrip(".") in EXPORT_FORMATS:
        fmt = output.suffix.lower().lstrip(".")
    flags[("export", "format")] = fmt
    for (section, key), value in flags.items():
        if value is not None:
            over = deep_merge(over, {section: {key: value}})
    return Settings.from_preset(args.preset, over)


# ---------------------------------------------------------------------------
# commands
def cmd_process(args: argparse.Namespace) -> int:
    from .cli_process import cmd_process as run

    return run(args)


def cmd_info(args: argparse.Namespace) -> int:
    from engine.analysis.metrics import analyze_file

    from .cli_summary import info_table

    result = analyze_file(Path(args.input))
    data = result if isinstance(result, dict) else result.to_dict()
    if args.json:
        print(json.dumps(data, indent=2, default=float))
    else:
        print("\n".join(info_table(data)))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import fetch_model, list_models
    from .polish_models import fetch_mbd, list_mbd

    if args.fetch:
        for name in args.fetch:
            if name == "jasco":
                from .polish_models import fetch_jasco

                print(fetch_jasco())
                continue
            print(fetch_mbd(name) if name.startswith("mbd-") else fetch_model(name, args.model_repo))
        return 0
    rows = [{**r, "kind": "Demucs"} for r in list_models(args.model_repo)]
    rows += [{**r, "kind": "MBD polish"} for r in list_mbd()]
    from .polish_models import list_jasco

    rows += [{**r, "kind": "JASCO"} for r in list_jasco()]
    print(f"{'model':<14} {'kind':<11} {'status':<8} where / licence")
    for row in rows:
        mark = "present" if row["present"] else "missing"
        licence = f"  [{row['licence']}]" if row.get("licence") else ""
        print(f"{row['name']:<14} {row['kind']:<11} {mark:<8} {row['where']}{licence}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from .cache import StemCache, default_cache_dir
    from .cached_separation import DEFAULT_MAX_BYTES
    from .cli_summary import cache_table

    cache = StemCache(Path(args.cache_dir) if args.cache_dir else default_cache_dir())
    if args.action == "ls":
        entries = cache.ls()
        if args.json:
            for e in entries:
                print(json.dumps(e if isinstance(e, dict) else e.__dict__, default=str))
        else:
            print("\n".join(cache_table(entries, DEFAULT_MAX_BYTES)))
    elif args.action == "size":
        size = cache.size_bytes()
        print(f"{size / 1e6:.1f} MB in {cache.root} (limit {DEFAULT_MAX_BYTES / 1024 ** 3:.0f} GiB)")
        if size > DEFAULT_MAX_BYTES:
            print("warning: over the limit; the oldest entries are removed after the next job")
    elif args.action == "clear":
        n = cache.clear(older_than_days=args.older_than)
        print(f"removed {n} entries")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve_forever

    busy = _port_unavailable(args.host, args.port)
    if busy:  # before Ray starts or a banner is printed
        raise ResonateError(busy, code="port_in_use")
    _job_log_to_stderr()
    try:
        return serve_forever(host=args.host, port=args.port, address=args.address, token=args.token,
                             allow=[Path(a) for a in args.allow], workers=args.separators,
                             local_ray=not args.in_process)
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise ResonateError(f"cannot listen on {args.host}:{args.port}: {e.strerror}", code="port_in_use") from None
        raise


class _OneLineFormatter(logging.Formatter):
    """Log records as one line each: an exception is named, its traceback left out."""

    def formatException(self, ei) -> str:
        return f"  ({ei[0].__name__}: {str(ei[1])[:200]})"

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " ")


def _job_log_to_stderr() -> None:
    """One line per job event (accepted, started, first audio, done/failed) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log = logging.getLogger("resonate.gateway")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    log.propagate = False


def _port_unavailable(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (a sentence), or None when it can."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"cannot listen on {host}:{port}: {e.strerror}"
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does
            try:
                s.bind(addr)
            except OSError as e:
                hint = " (is another resonate serve running? choose another --port)" \
                    if e.errno == errno.EADDRINUSE else ""
                return f"cannot listen on {host}:{port}: {e.strerror}{hint}"
    return None


def cmd_stream(args: argparse.Namespace) -> int:
    from clients.stream_cli import stream_main  # lazy: the one edge from the dispatcher to clients/

    output = Path(args.output)
    settings = settings_from_args(args, output)
    return stream_main(args, settings)


_EXAMPLES = """\
examples:
  resonate process gig.m4a -o gig.restored.wav        restore one recording
  resonate process *.m4a -o restored/ --format flac   several files into a folder
  resonate process gig.m4a -o gig.mp3 --mp3-bitrate 192 --preset aggressive
  resonate info gig.m4a                               measure a recording
  resonate serve --port 8765                          websocket server (+ web page)
  resonate stream gig.m4a -o out.wav                  process on a running server

exit status: 0 done, 1 some of several files failed, 2 error (one line
"error [code]: message" on stderr), 130 interrupted.
"""

_PROCESS_EXAMPLES = """\
examples:
  resonate process gig.m4a -o gig.restored.wav
  resonate process a.m4a b.mp3 -o restored/              -> restored/a.restored.wav, ...
  resonate process a.m4a -o out/ --name-template "{name}-clean.{ext}" --format flac
  resonate process gig.wav -o gig.ogg -y                 Ogg Vorbis, replacing gig.ogg

The output format follows the -o extension (wav, flac, mp3, ogg, opus); an
existing output is never replaced without --overwrite, and the input itself
never. Exit status: 0 done, 1 some of several files failed, 2 error. An input
that is silent or below the -70 LUFS gate is written at its own level (exit 0,
the last line says the loudness target was not applied); a missed loudness
target is said on the last line.
"""


_STREAM_EXAMPLES = """\
examples:
  resonate stream gig.m4a -o gig.restored.wav               a server on this machine (resonate serve)
  resonate stream gig.m4a -o gig.wav --server box:8765 --token SECRET --preset aggressive
  resonate stream gig.m4a -o gig.wav --send-stems           + gig.vocals.wav, gig.drums.wav, ...
  resonate stream gig.m4a -o gig.wav --reference studio.flac  match the studio version's balance

While the job runs the restored audio is written to a hidden .preview file
beside the output (playable while it grows); the exact final master replaces
it at -o when the job is done. Exit status: 0 done, 2 error.
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("resonate-stream")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; help texts state their defaults themselves."""


def _subparser(sub, name: str, help: str, epilog: str | None = None) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=_HelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show every note in full and library warnings (default: short notes)")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="resonate", description="Restore phone recordings of live concerts, streaming.",
                                epilog=_EXAMPLES, formatter_class=_HelpFormatter)
    p.add_argument("--version", action="version", version=f"resonate {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pr = _subparser(sub, "process", "restore recordings (in-process, no server)", _PROCESS_EXAMPLES)
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="recordings: wav, flac, mp3, ogg, m4a/aac, video")
    pr.add_argument("-o", "--output", required=True,
                    help="output file (format from its extension), or a folder (ends with / or exists; "
                         "required with several inputs); missing folders are created")
    pr.add_argument("--name-template", default=DEFAULT_NAME_TEMPLATE, metavar="TEMPLATE",
                    help="file names in an output folder; {name}: input name without extension, "
                         "{ext}: format (default: %(default)s)")
    pr.add_argument("-y", "--overwrite", action="store_true", help="replace existing output files (default: refuse)")
    pr.add_argument("--stems", metavar="DIR", help="also write the enhanced stems here (default: no stems)")
    pr.add_argument("--report", metavar="FILE",
                    help="write a JSON report (metrics before/after, separator); a folder with several inputs "
                         "(default: none)")
    pr.add_argument("--plots", metavar="DIR", help="write waveform/spectrogram PNGs (before/after) (default: none)")
    pr.add_argument("--reference", metavar="STUDIO_FILE",
                    help="match the spectrum, stereo width and loudness to this recording (a studio version "
                         "of the song, or a record you like; see reference.* settings) (default: none)")
    pr.add_argument("-q", "--quiet", action="store_true", help="no progress or notes (default: progress on stderr)")
    pr.add_argument("--no-cache", action="store_true",
                    help="do not read or store separated stems in the cache (default: use the cache)")
    pr.add_argument("--cache-dir", metavar="DIR",
                    help="stem cache folder (default: $RESONATE_CACHE_DIR or ~/.cache/resonate)")
    pr.add_argument("--lane-threads", default="auto", type=_lane_threads, metavar="N|auto",
                    help="worker threads for the stem, mix and master lanes (the separator then gets a worker "
                         "of its own); 0 runs everything inline; the output is the same either way (default: auto, one per core up to 6, less "
                         "the cores Demucs' torch threads take on the CPU, at least 2 where there are 2 cores)")
    _add_processing_options(pr)
    pr.set_defaults(func=cmd_process)

    inf = _subparser(sub, "info", "analyse a recording (duration, SNR, loudness, bandwidth ...)",
                     "example:\n  resonate info gig.m4a --json > gig.json\n")
    inf.add_argument("input", help="recording to measure")
    inf.add_argument("--json", action="store_true", help="print the metrics as JSON (default: a table)")
    inf.set_defaults(func=cmd_info)

    mo = _subparser(sub, "models", "show which model weights are present; --fetch downloads",
                    "examples:\n  resonate models\n  resonate models --fetch htdemucs\n")
    mo.add_argument("--model-repo", metavar="DIR",
                    help="folder with Demucs weights (default: $RESONATE_MODEL_REPO, then the torch-hub cache)")
    mo.add_argument("--fetch", nargs="+", metavar="NAME", help="download these models, needs internet (default: only list)")
    mo.set_defaults(func=cmd_models)

    ca = _subparser(sub, "cache", "inspect or clean the stem cache",
                    "examples:\n  resonate cache ls\n  resonate cache clear --older-than 7\n")
    ca.add_argument("action", choices=["ls", "size", "clear"], help="ls: list entries, size: total, clear: delete")
    ca.add_argument("--older-than", type=float, metavar="DAYS",
                    help="clear only entries unused for DAYS days (default: clear all)")
    ca.add_argument("--json", action="store_true", help="ls: one JSON object per line (default: a table)")
    ca.add_argument("--cache-dir", metavar="DIR", help="stem cache folder (default: $RESONATE_CACHE_DIR or "
                                                       "~/.cache/resonate)")
    ca.set_defaults(func=cmd_cache)

    se = _subparser(sub, "serve", "run the websocket gateway (starts or joins a Ray cluster)",
                    "examples:\n  resonate serve\n  resonate serve --host 0.0.0.0 --token SECRET --port 9000\n")
    se.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    se.add_argument("--port", type=int, default=8765, help="TCP port (default: %(default)s)")
    se.add_argument("--address", help="Ray cluster address to join (default: start a local Ray)")
    se.add_argument("--token", help="required by clients; mandatory on a non-loopback host (default: none)")
    se.add_argument("--allow", action="append", default=[], metavar="DIR",
                    help="folder whose files clients may name as server-side inputs (repeatable; default: none)")
    se.add_argument("--separators", type=int, default=None,
                    help="separator actors (default: one per CPU/GPU)")
    se.add_argument("--in-process", action="store_true", help="run jobs in-process instead of on Ray (default: Ray)")
    se.set_defaults(func=cmd_serve)

    st = _subparser(sub, "stream", "upload a file to a server and write the result as it streams back",
                    _STREAM_EXAMPLES)
    st.add_argument("input", help="recording to upload: wav, flac, mp3, ogg, m4a/aac, video")
    st.add_argument("--server", default="ws://127.0.0.1:8765", metavar="URL",
                    help="gateway address: ws://HOST:PORT, http://HOST:PORT or HOST:PORT (default: %(default)s)")
    st.add_argument("--token", help="the server's --token (default: $RESONATE_TOKEN, else none)")
    st.add_argument("-o", "--output", required=True,
                    help="output file; the format follows its extension (wav, flac, mp3, ogg, opus) (required)")
    st.add_argument("--send-stems", action="store_true",
                    help="also stream the stems and download them beside the output as <name>.<stem>.<ext> "
                         "(default: master only)")
    st.add_argument("--reference", metavar="STUDIO_FILE",
                    help="upload this recording too and match the spectrum, stereo width and loudness to it "
                         "(a studio version of the song, or a record you like) (default: none)")
    st.add_argument("-q", "--quiet", action="store_true",
                    help="no progress or notes, only the result lines (default: progress on stderr, bars on a "
                         "terminal, plain lines otherwise)")
    _add_processing_options(st)
    st.set_defaults(func=cmd_stream)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse; an unknown option is reported with its subcommand's usage, not the top-level one."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _quiet_libraries(verbose: bool):
    """Python warnings (numpy overflow ...) and library logs: shown with --verbose only.

    Returns a function that puts the loggers back as they were (``main`` is also
    called in-process, e.g. by tests).
    """
    logging.captureWarnings(True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    saved = []
    for name in ("py.warnings", "engine"):
        log = logging.getLogger(name)
        saved.append((log, log.handlers[:], log.level, log.propagate))
        log.handlers[:] = [handler] if verbose else [logging.NullHandler()]
        log.setLevel(logging.DEBUG if verbose else logging.CRITICAL)
        log.propagate = False

    def restore() -> None:
        logging.captureWarnings(False)
        for log, handlers, level, propagate in saved:
            log.handlers[:], log.level, log.propagate = handlers, level, propagate

    return restore


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    restore = _quiet_libraries(bool(getattr(args, "verbose", False)))
    try:
        return int(args.func(args) or 0)
    except ResonateError as e:
        print(f"error [{e.code}]: {e.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
