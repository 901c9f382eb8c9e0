"""``resonate`` command line: process, info, models, cache, serve, stream.

Errors that Resonate raises on purpose (``ResonateError``) are printed as one
line ``error [code]: message`` with exit status 2; nothing else is printed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.errors import ResonateError

EXIT_ERROR = 2


# ---------------------------------------------------------------------------
# shared option groups
def _add_processing_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("processing")
    from .presets import DEFAULT_PRESET, preset_names  # reads file names only: no engine import

    g.add_argument("--preset", default=DEFAULT_PRESET, choices=preset_names(),
                   help=f"processing strength (default: {DEFAULT_PRESET})")
    g.add_argument("--settings", metavar="FILE", help="YAML/JSON file of setting overrides (same nesting as a preset)")
    g.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set mix.gains_db.vocals=2 (repeatable)")
    g.add_argument("--separator", choices=["auto", "demucs", "dsp"],
                   help="auto: Demucs when weights load, else DSP (default); demucs: fail without weights; dsp: weight-free")
    g.add_argument("--model", help="Demucs model name (default htdemucs)")
    g.add_argument("--model-repo", metavar="DIR", help="folder with Demucs weights (.th/.yaml); env RESONATE_MODEL_REPO")
    g.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="device for model stages")
    g.add_argument("--quality", choices=["preview", "render"], help="preview: fast; render: best (slower)")
    e = p.add_argument_group("export")
    e.add_argument("--format", choices=["wav", "flac", "mp3"], help="output format (default: from the -o extension)")
    e.add_argument("--bit-depth", type=int, choices=[16, 24, 32], help="bits per sample (default 24; TPDF dither below 32)")
    e.add_argument("--sample-rate", choices=["44100", "48000", "keep"], help="output sample rate (default 44100)")
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
        ("export", "bit_depth"): args.bit_depth,
        ("export", "sample_rate"): (args.sample_rate if args.sample_rate in (None, "keep") else int(args.sample_rate)),
        ("master", "target_lufs"): args.target_lufs,
        ("master", "ceiling_dbtp"): args.ceiling_dbtp,
    }
    fmt = args.format
    export = over.get("export")
    chosen = isinstance(export, dict) and "format" in export  # by --settings / --set: the suffix does not override
    if fmt is None and not chosen and output is not None and output.suffix.lower().lstrip(".") in ("wav", "flac", "mp3"):
        fmt = output.suffix.lower().lstrip(".")
    flags[("export", "format")] = fmt
    for (section, key), value in flags.items():
        if value is not None:
            over = deep_merge(over, {section: {key: value}})
    return Settings.from_preset(args.preset, over)


# ---------------------------------------------------------------------------
# commands
def cmd_process(args: argparse.Namespace) -> int:
    from .progress import ProgressPrinter
    from .runner import process_file

    output = Path(args.output)
    settings = settings_from_args(args, output)
    printer = ProgressPrinter(quiet=args.quiet)
    try:
        finished = process_file(
            Path(args.input), output, settings,
            stems_dir=Path(args.stems) if args.stems else None,
            report_path=Path(args.report) if args.report else None,
            plots_dir=Path(args.plots) if args.plots else None,
            emit=printer,
            cache_dir=Path(args.cache_dir) if args.cache_dir else None,
            use_cache=not args.no_cache,
        )
    finally:
        printer.close()
    rep = finished.report
    m = rep.get("master", {})
    if rep["separation"].get("cache") == "hit":
        print("separation: reused cached stems")
    print(f"wrote {finished.outputs['master']}  ({m.get('output_lufs', float('nan')):.1f} LUFS, "
          f"{m.get('output_true_peak_dbtp', float('nan')):.1f} dBTP; separator: {rep['separation']['separator']})")
    for kind, path in finished.outputs.items():
        if kind != "master":
            print(f"  {kind}: {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from engine.analysis.metrics import analyze_file

    result = analyze_file(Path(args.input))
    data = result if isinstance(result, dict) else result.to_dict()
    if args.json:
        print(json.dumps(data, indent=2, default=float))
    else:
        for k, v in data.items():
            if isinstance(v, float):
                v = f"{v:.2f}"
            print(f"{k:>24}: {v}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import fetch_model, list_models

    if args.fetch:
        for name in args.fetch:
            print(fetch_model(name, args.model_repo))
        return 0
    for row in list_models(args.model_repo):
        mark = "present" if row["present"] else "missing"
        print(f"{row['name']:<14} {mark:<8} {row['where']}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from .cache import StemCache, default_cache_dir

    cache = StemCache(Path(args.cache_dir) if args.cache_dir else default_cache_dir())
    if args.action == "ls":
        for e in cache.ls():
            print(json.dumps(e if isinstance(e, dict) else e.__dict__, default=str))
    elif args.action == "size":
        print(f"{cache.size_bytes() / 1e6:.1f} MB in {cache.root}")
    elif args.action == "clear":
        n = cache.clear(older_than_days=args.older_than)
        print(f"removed {n} entries")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve_forever

    return serve_forever(host=args.host, port=args.port, address=args.address, token=args.token,
                         allow=[Path(a) for a in args.allow], workers=args.separators,
                         local_ray=not args.in_process)


def cmd_stream(args: argparse.Namespace) -> int:
    from clients.stream_cli import stream_main  # lazy: the one edge from the dispatcher to clients/

    output = Path(args.output)
    settings = settings_from_args(args, output)
    return stream_main(args, settings)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="resonate", description="Restore phone recordings of live concerts, streaming.")
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("process", help="restore one file (in-process, no server)")
    pr.add_argument("input", help="recording: wav, flac, mp3, ogg, m4a/aac")
    pr.add_argument("-o", "--output", required=True, help="mastered output file (.wav/.flac/.mp3)")
    pr.add_argument("--stems", metavar="DIR", help="also write the enhanced stems here")
    pr.add_argument("--report", metavar="FILE", help="write a JSON report (metrics before/after, separator)")
    pr.add_argument("--plots", metavar="DIR", help="write waveform/spectrogram PNGs (before/after)")
    pr.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    pr.add_argument("--no-cache", action="store_true", help="do not read or store separated stems in the cache")
    pr.add_argument("--cache-dir", metavar="DIR", help="stem cache folder (default $RESONATE_CACHE_DIR or ~/.cache/resonate)")
    _add_processing_options(pr)
    pr.set_defaults(func=cmd_process)

    inf = sub.add_parser("info", help="analyse a recording (duration, SNR, loudness, bandwidth ...)")
    inf.add_argument("input")
    inf.add_argument("--json", action="store_true")
    inf.set_defaults(func=cmd_info)

    mo = sub.add_parser("models", help="show which model weights are present; --fetch downloads")
    mo.add_argument("--model-repo", metavar="DIR")
    mo.add_argument("--fetch", nargs="+", metavar="NAME", help="download these models (needs internet)")
    mo.set_defaults(func=cmd_models)

    ca = sub.add_parser("cache", help="inspect or clean the stem cache")
    ca.add_argument("action", choices=["ls", "size", "clear"])
    ca.add_argument("--older-than", type=float, metavar="DAYS")
    ca.add_argument("--cache-dir", metavar="DIR")
    ca.set_defaults(func=cmd_cache)

    se = sub.add_parser("serve", help="run the websocket gateway (starts or joins a Ray cluster)")
    se.add_argument("--host", default="127.0.0.1")
    se.add_argument("--port", type=int, default=8765)
    se.add_argument("--address", help="Ray cluster address to join (default: start a local Ray)")
    se.add_argument("--token", help="required by clients; mandatory on a non-loopback host")
    se.add_argument("--allow", action="append", default=[], metavar="DIR",
                    help="folder whose files clients may name as server-side inputs (repeatable)")
    se.add_argument("--separators", type=int, default=None, help="separator actors (default: one per CPU/GPU)")
    se.add_argument("--in-process", action="store_true", help="run jobs in-process instead of on Ray")
    se.set_defaults(func=cmd_serve)

    st = sub.add_parser("stream", help="upload a file to a server and write the result as it streams back")
    st.add_argument("input")
    st.add_argument("--server", default="ws://127.0.0.1:8765")
    st.add_argument("--token")
    st.add_argument("-o", "--output", required=True)
    st.add_argument("--send-stems", action="store_true")
    st.add_argument("-q", "--quiet", action="store_true")
    _add_processing_options(st)
    st.set_defaults(func=cmd_stream)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ResonateError as e:
        print(f"error [{e.code}]: {e.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
