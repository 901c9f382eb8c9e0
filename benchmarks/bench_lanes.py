"""Throughput of the job graph with its in-order lanes inline vs on 1, 2, 4 ... worker threads.

Issue 11, "parallel where the hardware is", simulating a GPU box honestly: the
separator costs nothing (each stem is a fixed fraction of the mix, computed in
microseconds), so the whole pipeline's throughput is the in-order stages'
throughput: the four stem lanes (enhancement, restoration) and the mix/master
lane (mixer, preview master), 1 s blocks of 44.1 kHz stereo through
:class:`engine.graph.GraphPipeline` exactly as ``resonate process`` feeds them,
with the configuration a job gets (preview prior and tonal profile measured on
the first 10 s).  ``0`` workers is every lane inline on the caller's thread;
``n`` is :class:`engine.thread_lanes.ThreadLanes` with ``n`` single-thread
workers (lanes round-robin over them).  Runs interleave (0, 1, 2, 4, 0, 1 ...),
the best wall per setting is kept, and every threaded output is checked to be
bit-identical to the inline one.  The RTF is audio seconds / wall seconds.

    python benchmarks/bench_lanes.py [--seconds 30] [--workers 0,1,2,4] [--presets balanced,aggressive]
        [--repeats 2] [--json out.json]

On the 2-core development machine at most 2 workers can run at once; on a
bigger box the figure for 4 shows what the lanes gain from more cores.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test signals, by module name

import numpy as np  # noqa: E402

from engine.audio import SAMPLE_RATE, STEM_NAMES  # noqa: E402
from engine.graph import GraphPipeline, JobGraph, LocalLane  # noqa: E402
from engine.separation import Separator, StreamingSeparation  # noqa: E402
from engine.thread_lanes import ThreadLanes  # noqa: E402


class FreeSeparator(Separator):
    """Stems that cost nothing: fixed fractions of the mix (the 'GPU box' of the issue)."""

    sources = STEM_NAMES
    description = {"separator": "free (fixed fractions of the mix)"}

    def __init__(self):
        self.segment_samples, self.overlap, self.context_samples = 10 * SAMPLE_RATE, 0.0, 0

    def separate(self, window):
        g = np.array([0.4, 0.3, 0.2, 0.1], np.float32)[:, None, None]
        return g * window.chunk[None]


def job_config(x: np.ndarray, preset: str, band: tuple[float, float]):
    from engine.master.preview import PreviewPrior
    from engine.restore.tonal import TonalProfile
    from resonate_stream.settings import Settings

    head = [x[:, i:i + SAMPLE_RATE] for i in range(0, min(x.shape[1], 10 * SAMPLE_RATE), SAMPLE_RATE)]
    return Settings.from_preset(preset).pipeline_config(band, PreviewPrior.measure(head),
                                                        tonal_profile=TonalProfile.measure(head))


def run_once(x: np.ndarray, cfg, workers: int) -> tuple[float, np.ndarray]:
    """(wall seconds, the streamed preview) of one pass through the graph."""
    threads = ThreadLanes(workers) if workers else None
    pipeline = GraphPipeline(JobGraph(cfg), StreamingSeparation(FreeSeparator()),
                             threads.place if threads else LocalLane, FreeSeparator.description)
    try:
        t0 = time.perf_counter()
        out = []
        for pos in range(0, x.shape[1], SAMPLE_RATE):
            out += pipeline.process(x[:, pos:pos + SAMPLE_RATE])
        out += list(pipeline.flush())
        wall = time.perf_counter() - t0
    finally:
        pipeline.close()
        if threads is not None:
            threads.shutdown()
    return wall, np.concatenate([b.preview for b in out], axis=1)


def main(argv=None) -> int:
    from stage_signals import mixed_test_signal

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", default="0,1,2,4", help="comma-separated worker counts (0: inline)")
    ap.add_argument("--presets", default="balanced,aggressive")
    ap.add_argument("--band", default="120,8000", help="detected (low, high) band in Hz (phone-like default)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    if 0 not in workers:
        workers = [0] + workers  # the inline run is the reference output
    band = tuple(float(v) for v in args.band.split(","))
    x = mixed_test_signal(args.seconds, seed=3) * np.float32(0.5)
    print(f"{args.seconds:.0f} s of 44.1 kHz stereo, free separator, band {band[0]:.0f}-{band[1]:.0f} Hz, "
          f"{os.cpu_count()} cores", flush=True)
    results = {}
    for preset in args.presets.split(","):
        cfg = job_config(x, preset, band)
        run_once(x[:, :5 * SAMPLE_RATE], cfg, 0)  # warm-up: numba compile, FFT plans
        walls: dict[int, list[float]] = {w: [] for w in workers}
        reference = None
        for _ in range(args.repeats):
            for w in workers:
                wall, preview = run_once(x, cfg, w)
                if w == 0:
                    reference = preview if reference is None else reference
                if reference is not None and not np.array_equal(preview, reference):
                    raise SystemExit(f"{preset}: {w} workers changed the output")
                walls[w].append(wall)
        base = min(walls[0])
        results[preset] = {}
        for w in workers:
            best = min(walls[w])
            results[preset][w] = {"wall_s": best, "rtf": args.seconds / best, "speedup": base / best}
            label = "inline" if w == 0 else f"{w} worker{'s' if w > 1 else ''}"
            print(f"  {preset:12s} {label:10s} {best:6.2f} s  {args.seconds / best:5.1f}x real time  "
                  f"({base / best:.2f}x inline)  outputs identical", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "cores": os.cpu_count(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
