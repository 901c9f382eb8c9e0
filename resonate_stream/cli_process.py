"""``resonate process``: one or several recordings -> restored files, safely.

Safety rules, checked for every file before any work starts:

* an output that is the input itself (same path, a symlink to it or a hard
  link: same device and inode) is always refused (``output_is_input``);
* an existing output file (master, report, stems) is refused
  (``output_exists``) unless ``--overwrite`` / ``-y``; files are written
  atomically, so a failed run leaves an existing file as it was;
* the output folder is created when missing.

With several inputs (or ``-o`` naming a folder) each file is written as
``--name-template`` (default ``{name}.restored.{ext}``) into that folder; one
line per file says how it went, a failing file does not stop the others,
and the exit status is 1 when some failed.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.audio import STEM_NAMES
from engine.errors import OutputError, ResonateError
from engine.io.encode import EXPORT_FORMATS, LOSSY_FORMATS, UnsupportedExportError, export_format_for

from .cli_summary import outcome_line, before_after_lines
from .output_names import restored_name

EXIT_SOME_FAILED = 1


@dataclass
class PlannedFile:
    """One input and where its results go."""

    input: Path
    master: Path
    report: Path | None = None
    stems_dir: Path | None = None
    plots_dir: Path | None = None

    def files(self, fmt: str) -> list[Path]:
        """Every file this job writes (for the existing-output check; plots excluded)."""
        out = [self.master] + ([self.report] if self.report else [])
        if self.stems_dir is not None:
            out += [self.stems_dir / f"{self.input.stem}.{s}.{fmt}" for s in STEM_NAMES]
        return out


def plan_files(args: argparse.Namespace) -> tuple[list[PlannedFile], str, bool]:
    """(planned files, export format, folder mode) from the command line; nothing is written."""
    inputs = [Path(p) for p in args.inputs]
    out = str(args.output)
    folder_mode = len(inputs) > 1 or out.endswith(("/", os.sep)) or Path(out).is_dir()
    if not folder_mode:
        fmt = export_format_for(out, args.format)
        return [PlannedFile(inputs[0], Path(out), _opt_path(args.report), _opt_path(args.stems),
                            _opt_path(args.plots))], fmt, False
    if len(inputs) > 1 and not Path(out).is_dir() and Path(out).suffix.lower().lstrip(".") in EXPORT_FORMATS:
        raise OutputError(f"with several inputs, -o names a folder, not the file {out}: e.g. -o restored/",
                          code="output_unwritable")
    fmt = args.format or "wav"
    if fmt not in EXPORT_FORMATS:
        raise UnsupportedExportError(f"cannot export as {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}.")
    folder = Path(out)
    plans, seen = [], {}
    for src in inputs:
        name = restored_name(src.name, fmt, args.name_template)
        export_format_for(name, fmt)  # the template's extension must agree with the format
        master = folder / name
        if master in seen:
            raise OutputError(f"{seen[master]} and {src} would both be written to {master}: give them "
                              "different names or use a --name-template that tells them apart.",
                              code="output_exists")
        seen[master] = src
        stem = Path(name).stem
        several = len(inputs) > 1  # then --report and --plots name folders, one file / folder per input
        plans.append(PlannedFile(
            src, master,
            (Path(args.report) / f"{stem}.report.json" if several else Path(args.report)) if args.report else None,
            _opt_path(args.stems),
            (Path(args.plots) / stem if several else Path(args.plots)) if args.plots else None))
    return plans, fmt, True


def _opt_path(p: str | None) -> Path | None:
    return Path(p) if p else None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: a link to the input is the input
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_safe(plans: list[PlannedFile], fmt: str, overwrite: bool) -> None:
    """Refuse outputs that are an input (always) or exist (unless ``overwrite``); create output folders."""
    inputs = {ident: p.input for p in plans if (ident := _identity(p.input)) is not None}
    for plan in plans:
        for path in plan.files(fmt):
            ident = _identity(path)
            if ident is None:
                continue
            if ident in inputs:
                raise OutputError(
                    f"{path} is the input {inputs[ident]} (the same file, a link or a hard link to it): "
                    "writing it would destroy the recording. Choose another output name.",
                    code="output_is_input")
            if not overwrite:
                raise OutputError(f"{path} already exists; choose another name, or pass --overwrite (-y) "
                                  "to replace it.", code="output_exists")
    for plan in plans:
        for folder in {plan.master.parent, *([plan.report.parent] if plan.report else [])}:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot create the output folder {folder}: {e.strerror}.") from None


def check_export_options(args: argparse.Namespace, fmt: str) -> None:
    """Refuse export options that do not apply to ``fmt``, saying why."""
    if args.bit_depth is not None and fmt in LOSSY_FORMATS:
        raise UnsupportedExportError(
            f"--bit-depth applies to WAV and FLAC only: {fmt} is a lossy format without a bit depth"
            + (" (choose its size with --mp3-bitrate)." if fmt == "mp3" else "."))
    if args.mp3_bitrate is not None and fmt != "mp3":
        raise UnsupportedExportError(f"--mp3-bitrate applies to MP3 output only, not {fmt}.")


def cmd_process(args: argparse.Namespace) -> int:
    """Run ``resonate process``; returns the exit status (0, or 1 when some of several files failed)."""
    from .cli import settings_from_args

    plans, fmt, folder_mode = plan_files(args)
    check_export_options(args, fmt)
    args.format = fmt
    if fmt == "opus" and args.sample_rate is None:
        args.sample_rate = "48000"  # Opus has no 44.1 kHz
    settings = settings_from_args(args, plans[0].master)
    check_safe(plans, fmt, args.overwrite)
    if _reference_path(args) is not None:
        from .runner import check_reference

        check_reference(_reference_path(args))
    if not folder_mode:
        finished = _run(plans[0], args, settings)
        for line in before_after_lines(finished.report):
            print(line)
        if not finished.report.get("master", {}).get("target_met"):
            for note in finished.report.get("master", {}).get("notes", []):
                print(f"note: {note}")
        for kind, path in finished.outputs.items():
            if kind != "master":
                print(f"  {kind}: {path}")
        print(outcome_line(finished.report, finished.outputs["master"]))
        return 0
    failed: list[tuple[Path, ResonateError]] = []
    n = len(plans)
    for i, plan in enumerate(plans, 1):
        try:
            finished = _run(plan, args, settings, label=f"[{i}/{n}] {plan.input.name}")
        except ResonateError as e:
            failed.append((plan.input, e))
            print(f"[{i}/{n}] {plan.input.name}: error [{e.code}]: {e.message}", file=sys.stderr, flush=True)
            continue
        print(f"[{i}/{n}] {plan.input.name}: {outcome_line(finished.report, finished.outputs['master'])}",
              flush=True)
    done = n - len(failed)
    print(f"{done} of {n} files restored" + (f"; failed: {', '.join(str(p.name) for p, _ in failed)}"
                                             if failed else ""))
    return EXIT_SOME_FAILED if failed else 0


def _reference_path(args: argparse.Namespace) -> Path | None:
    ref = getattr(args, "reference", None)
    return Path(ref) if ref else None


def _run(plan: PlannedFile, args: argparse.Namespace, settings, label: str | None = None):
    """Process one planned file; ``label`` (one of several files): a single progress bar so named."""
    from .progress import ProgressPrinter
    from .runner import process_file

    printer = ProgressPrinter(quiet=args.quiet, verbose=args.verbose, compact=None if args.verbose else label)
    try:
        return process_file(
            plan.input, plan.master, settings, stems_dir=plan.stems_dir, report_path=plan.report,
            plots_dir=plan.plots_dir, emit=printer,
            cache_dir=Path(args.cache_dir) if args.cache_dir else None, use_cache=not args.no_cache,
            reference=_reference_path(args), lane_threads=getattr(args, "lane_threads", "auto"))
    finally:
        printer.close()
