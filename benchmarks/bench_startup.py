"""Start-up of the real commands.

* ``resonate process IN -o OUT --separator dsp --no-cache -y`` on a short
  synthetic input: seconds from spawning the process to its first progress
  line (the decoder's first block read), and to the first ``restore``
  progress line (restored audio produced); and, from one run under
  ``python -X importtime``, whether torch / demucs were imported at all.
* ``resonate serve`` (local Ray): seconds from spawning the process to
  ``GET /health`` answering ``ok``; by then the default separator pool and
  the warm stage actors are up (``build_server`` starts them before it
  listens).

Run:  python benchmarks/bench_startup.py [--runs 3] [--seconds 20]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_memory import write_synthetic_concert  # noqa: E402
from benchmarks.cli_runs import bench_env, resonate, start_serve, stop_serve  # noqa: E402


def process_start(src: Path, out: Path, env: dict) -> tuple[float | None, float | None, float]:
    """``(to first progress line, to first restore progress line, whole run)`` in seconds."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(resonate("process", str(src), "-o", str(out), "--separator", "dsp", "--no-cache", "-y"),
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = first_restore = None
    for line in proc.stdout:
        now = time.perf_counter() - t0
        if line.startswith("progress:"):
            first = first if first is not None else now
            if line.startswith("progress: restore") and first_restore is None:
                first_restore = now
    if proc.wait() != 0:
        raise RuntimeError("resonate process failed")
    return first, first_restore, time.perf_counter() - t0


def imported(src: Path, out: Path, env: dict) -> dict[str, bool]:
    proc = subprocess.run([sys.executable, "-X", "importtime"] + resonate("process", str(src), "-o", str(out),
                                                                          "--separator", "dsp", "--no-cache", "-y",
                                                                          "-q")[1:],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    mods = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return {name: name in mods for name in ("torch", "demucs", "ray", "scipy", "numba")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the process input")
    ap.add_argument("--no-serve", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp_s:
        tmp = Path(tmp_s)
        env = bench_env(tmp)
        (tmp / "no-models").mkdir()
        env["RESONATE_MODEL_REPO"] = str(tmp / "no-models")
        src = write_synthetic_concert(tmp / "in.wav", args.seconds)
        rows = []
        for i in range(args.runs):
            first, restore, whole = process_start(src, tmp / "out.wav", env)
            rows.append((first, restore))
            print(f"process run {i + 1}: first progress after {first:.2f} s, first restored audio after "
                  f"{restore:.2f} s, whole run {whole:.1f} s ({args.seconds:g} s input)", flush=True)
        print(f"process median: first progress {statistics.median(r[0] for r in rows):.2f} s, first restored "
              f"audio {statistics.median(r[1] for r in rows):.2f} s (goal <= 1.5 s)")
        print("imported by resonate process --separator dsp: "
              + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in imported(src, tmp / "out.wav", env).items()),
              flush=True)
        if args.no_serve:
            return
        ready = []
        for i in range(args.runs):
            server, port, ready_s = start_serve(env)
            stop_serve(server)
            ready.append(ready_s)
            print(f"serve run {i + 1}: /health ok (pools warm) after {ready_s:.2f} s", flush=True)
        print(f"serve median: {statistics.median(ready):.2f} s")


if __name__ == "__main__":
    main()
