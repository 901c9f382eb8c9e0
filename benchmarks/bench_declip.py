"""Real-time factor of the de-clipper lane (``restore.declip: auto``) on one core.

The job graph's input lane (:class:`engine.pipeline.InputRestorer`: the
streaming S-SPADE :class:`~engine.restore.declip.Declipper`, aligned) fed 1 s
blocks of 44.1 kHz stereo, as :class:`engine.graph.GraphPipeline` feeds it, on

* synthetic harmonic music hard-clipped 6 dB below its peak (digital flat tops);
* the benchmark's clipped phone-concert cases (``benchmarks/restoration_cases``:
  clipping, then hall, noise and AAC), when ``../shared/audio`` is there;
* the same synthetic music unclipped (the detector's cost alone: nothing is solved).

RTF = audio seconds / this thread's CPU seconds (``time.thread_time``; higher
is faster); wall time is given too.  BLAS/OpenMP threads are pinned to 1.

    python benchmarks/bench_declip.py [--seconds 20]
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # test signals, by module name

import numpy as np  # noqa: E402

SR = 44100


def measure(x: np.ndarray) -> dict:
    """Run ``x`` ``(2, n)`` through the input lane in 1 s blocks; RTF and what it repaired."""
    from engine.pipeline import InputRestorer
    from resonate_stream.settings import Settings

    lane = InputRestorer(Settings.from_preset("balanced", {"restore": {"declip": "auto"}}).pipeline_config(
        (20.0, 20000.0)))
    c0, w0 = time.thread_time(), time.perf_counter()
    n = 0
    for a in range(0, x.shape[1], SR):
        n += lane.process(x[:, a:a + SR]).shape[1]
    n += lane.flush().shape[1]
    cpu, wall = time.thread_time() - c0, time.perf_counter() - w0
    assert n == x.shape[1]
    rep = lane.stage_reports()[0]
    s = x.shape[1] / SR
    return {"seconds": s, "rtf_cpu": s / cpu, "rtf_wall": s / wall, "clipped_samples": rep["clipped_samples"],
            "frames_repaired": rep["frames_repaired"]}


def signals(seconds: float):
    from stage_signals import harmonic_music

    music = harmonic_music(seconds, seed=3)
    yield "synthetic, clipped 6 dB", np.clip(music, -0.5, 0.5).astype(np.float32)
    yield "synthetic, unclipped", (0.9 * music).astype(np.float32)
    from benchmarks.restoration_cases import AUDIO, case_list

    if not (AUDIO / "music").is_dir():
        print(f"(no development audio at {AUDIO}: the phone-concert cases are skipped)")
        return
    from benchmarks.restoration_cases import degrade
    from benchmarks.restoration_eval import excerpt, read_audio

    with tempfile.TemporaryDirectory(prefix="resonate-declip-") as wd:
        for case in case_list(["clip"]):
            clean, p = excerpt(case, 2024, seconds)
            m4a = Path(wd) / "case.m4a"
            degrade(clean, p, m4a)
            yield case.name, read_audio(m4a)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args(argv)
    print(f"{'signal':32s} {'RTF cpu':>8s} {'RTF wall':>9s} {'clipped':>9s} {'frames':>7s}")
    for name, x in signals(args.seconds):
        r = measure(x)
        print(f"{name:32s} {r['rtf_cpu']:8.2f} {r['rtf_wall']:9.2f} {r['clipped_samples']:9d} "
              f"{r['frames_repaired']:7d}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
