"""Streamed preview vs the exact final master over the first seconds.

For benchmark cases (:mod:`benchmarks.restoration_cases`), restores the
degraded .m4a with ``process_file`` collecting the streamed preview
(``AudioChunk`` events), reads the final master back, and prints the loudness
of the preview minus that of the master over the 3 s window ending at each of
the first ``--until`` seconds (LU; the target: within 1 LU from the first
second).

    python benchmarks/preview_vs_final.py --cases vibe_ace/phone drum_bass/clip brahms/phone
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.restoration_cases import SR, case_list, degrade  # noqa: E402
from benchmarks.restoration_eval import build_settings, excerpt, read_audio  # noqa: E402


def preview_offsets(case, seed: int, seconds: float, until: int, preset: str, workdir: Path) -> list[float]:
    from engine.master.loudness import integrated_lufs
    from resonate_stream.events import AudioChunk
    from resonate_stream.runner import process_file

    clean, p = excerpt(case, seed, seconds)
    m4a = workdir / "in.m4a"
    degrade(clean, p, m4a)
    chunks: list[np.ndarray] = []
    out = workdir / "out.wav"
    process_file(m4a, out, build_settings({"preset": preset, "separator": "dsp"}), use_cache=False,
                 emit=lambda e: chunks.append(e.audio) if isinstance(e, AudioChunk) else None)
    preview, final = np.concatenate(chunks, axis=1), read_audio(out)
    diffs = []
    for k in range(1, until + 1):
        s = slice(max(0, k - 3) * SR, k * SR)
        diffs.append(integrated_lufs(preview[:, s], SR) - integrated_lufs(final[:, s], SR))
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="*")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--until", type=int, default=6)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--preset", default="balanced")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="resonate-preview-") as tmp:
        for case in case_list(args.cases):
            d = preview_offsets(case, args.seed, args.seconds, args.until, args.preset, Path(tmp))
            print(f"{case.name:30s} preview - final (LU), s 1..{args.until}: " + " ".join(f"{v:+.2f}" for v in d),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
