"""Resonate with Demucs vs the ``demucs`` CLI itself, side by side, same weights and settings.

The model: ``demucs.htdemucs.HTDemucs`` with the released ``htdemucs``
hyper-parameters (``bench_separation.htdemucs_random``, about 42 M
parameters) and random weights, saved in Demucs' own format
(``<sig>-<checksum>.th`` + ``htdemucs.yaml`` naming it, as the released
model is published) into a temp model repo.  Both sides load it through
their real loaders from that folder.

* A: ``resonate process IN -o OUT.wav --separator demucs --model htdemucs
  --model-repo REPO --no-cache`` (preview quality: model segment 7.8 s,
  overlap 0.1, shifts 0; restoration, mixing, final master and export
  included);
* B: ``python -m demucs.separate --repo REPO -n htdemucs --overlap 0.1
  --shifts 0 -d cpu -o DIR IN`` (the 4 stems as WAV files).

Both with the same torch threads (``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` =
``--threads``), alternated A, B, A, B ... (``--pairs``); the ratio of walls is
given per pair and for the medians.  Then ``resonate serve`` (local Ray, the
same model repo) is started and ``resonate stream IN -o OUT`` timed: its time
to first audio against the CLI's whole run.

With ``--compare-lanes N`` a third command AN (A with ``--lane-threads N``;
A itself runs the default ``auto``) joins every round; the order rotates per
round.

Run:  python benchmarks/bench_peer.py [--seconds 60] [--pairs 2] [--threads 2] [--no-stream]
      [--compare-lanes N] [--profile FILE]   (also one cProfile run of resonate process, top functions printed)
"""
from __future__ import annotations

import argparse
import json
import re
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

MODEL = "htdemucs"
SIG = "955717e8"  # the released htdemucs' signature


def write_model_repo(repo: Path) -> Path:
    """Random-weight htdemucs of the released architecture, in Demucs' format, as ``repo/htdemucs``."""
    from benchmarks.bench_separation import htdemucs_random
    from tests.demucs_fixtures import save_bag, save_model

    save_model(htdemucs_random(), repo, SIG)
    save_bag(repo, MODEL, [SIG])
    return repo


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return wall, proc.stdout + proc.stderr


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-stream", action="store_true", help="skip the resonate serve + stream run")
    ap.add_argument("--profile", type=Path, help="also run resonate process once under cProfile into FILE")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--compare-lanes", type=int, default=None, metavar="N",
                    help="also time resonate process with --lane-threads N (AN) in every round")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp_s:
        tmp = Path(tmp_s)
        repo = write_model_repo(tmp / "models")
        src = write_synthetic_concert(tmp / "concert.wav", args.seconds)
        env = bench_env(tmp, threads=args.threads)
        ours = resonate("process", str(src), "-o", str(tmp / "ours.wav"), "--separator", "demucs", "--model", MODEL,
                        "--model-repo", str(repo), "--no-cache", "-q", "-y", "--device", "cpu")
        theirs = [sys.executable, "-m", "demucs.separate", "--repo", str(repo), "-n", MODEL, "--overlap", "0.1",
                  "--shifts", "0", "-d", "cpu", "-o", str(tmp / "demucs-out"), str(src)]
        print(f"input: {args.seconds:g} s synthetic concert; htdemucs (released hyper-parameters, random "
              f"weights) from {repo.name}/; preview: segment 7.8 s, overlap 0.1, shifts 0; "
              f"{args.threads} torch threads", flush=True)
        print("A: " + " ".join(ours[1:]).replace(tmp_s, "$TMP"))
        print("B: " + " ".join(theirs[1:]).replace(tmp_s, "$TMP"), flush=True)
        variants = {"A": ours, "B": theirs}
        alt = f"A{args.compare_lanes}"
        if args.compare_lanes is not None:  # the same resonate command with other lane threads
            variants[alt] = ours + ["--lane-threads", str(args.compare_lanes)]
            print(f"{alt}: A with --lane-threads {args.compare_lanes}", flush=True)
        walls: dict[str, list[float]] = {k: [] for k in variants}
        names = list(variants)
        for i in range(args.pairs):
            order = names[i % len(names):] + names[:i % len(names)]  # rotate who runs first
            got = {}
            for name in order:
                got[name], _ = timed(variants[name], env)
                walls[name].append(got[name])
            line = ", ".join(f"{k} {got[k]:.1f} s" for k in order)
            ratios = ", ".join(f"{k}/B {got[k] / got['B']:.3f}" for k in names if k != "B")
            print(f"pair {i + 1} ({order[0]} first): {line}; {ratios}", flush=True)
        a_walls, b_walls = walls["A"], walls["B"]
        a_med, b_med = statistics.median(a_walls), statistics.median(b_walls)
        figures = {"seconds": args.seconds, "threads": args.threads, "resonate_process_s": a_walls,
                   "demucs_cli_s": b_walls, "ratio_of_medians": round(a_med / b_med, 3)}
        print(f"median: resonate process {a_med:.1f} s ({args.seconds / a_med:.2f}x real time), demucs CLI "
              f"{b_med:.1f} s ({args.seconds / b_med:.2f}x); ratio {a_med / b_med:.3f} (goal <= 1.05)", flush=True)
        if alt in walls:
            alt_med = statistics.median(walls[alt])
            figures.update({f"resonate_process_lane_threads_{args.compare_lanes}_s": walls[alt],
                            f"lane_threads_{args.compare_lanes}_ratio_of_medians": round(alt_med / b_med, 3)})
            print(f"median with --lane-threads {args.compare_lanes}: {alt_med:.1f} s; ratio {alt_med / b_med:.3f}", flush=True)

        if args.profile:
            prof = ours[:1] + ["-m", "cProfile", "-o", str(args.profile)] + ours[1:]
            wall, _ = timed(prof, env)
            import pstats

            print(f"cProfile run: {wall:.1f} s; top by cumulative time:")
            pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(25)

        if not args.no_stream:
            senv = dict(env, RESONATE_MODEL_REPO=str(repo))
            server, port, ready_s = start_serve(senv)
            try:
                t0 = time.perf_counter()
                wall, text = timed(resonate("stream", str(src), "-o", str(tmp / "streamed.wav"),
                                            "--server", f"127.0.0.1:{port}"), senv)
                m = re.search(r"first audio after ([0-9.]+) s", text)
                ttfa = float(m.group(1)) if m else None
            finally:
                stop_serve(server)
            figures.update(serve_ready_s=round(ready_s, 2), stream_first_audio_s=ttfa, stream_wall_s=round(wall, 1))
            print(f"resonate serve ready (pools warm) in {ready_s:.1f} s; resonate stream: first audio after "
                  f"{ttfa} s, whole job {wall:.1f} s; first audio / demucs CLI whole run = "
                  f"{(ttfa or float('nan')) / b_med:.3f}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
