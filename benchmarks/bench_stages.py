"""Real-time factor of every in-order stage, and of all of them together, on one core.

The in-order part of a job's graph (:mod:`engine.graph`) on already separated
stems: the four stem lanes (:class:`engine.pipeline.StemProcessor`: enhancement
then restoration), the mix/master lane (:class:`engine.pipeline.MixMaster`:
mixer, preview master) and the streaming input analysis
(:class:`engine.analysis.metrics.AudioAnalyzer`), 1 s blocks of 44.1 kHz
stereo, exactly as :class:`engine.graph.LocalPipeline` feeds them, with the
configuration a job gets (the preview prior and the tonal profile measured on
the signals' first 10 s, as ``resonate_stream.runner.run_job`` does, so the
tonal corrector sits in every stem chain when ``restore.tonal > 0``).  BLAS/OpenMP
threads are pinned to 1 before numpy loads.

Every leaf stage's ``process`` is wrapped with a timer (its own time, not its
children's), so the per-stage lines sum to about the lane totals.  The RTF is
``audio seconds / processing seconds`` (higher is faster), measured in this
thread's CPU time (``time.thread_time``: on a shared, loaded machine wall time
mostly measures the other processes); the total is given in wall time too.

    python benchmarks/bench_stages.py [--seconds 30] [--presets balanced,aggressive]
        [--band 120,8000] [--json out.json]

``--band`` is the detected (low, high) band of the recording: the default
(a phone-like 120 Hz - 8 kHz) switches the high-band extension and the
sub-bass synthesis on, as on the shipped example.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test signals, by module name

import numpy as np  # noqa: E402

from engine.audio import SAMPLE_RATE, STEM_NAMES  # noqa: E402


def stem_signals(seconds: float) -> dict[str, np.ndarray]:
    """Four different deterministic stems (sines, noise, hits, clicks)."""
    from stage_signals import mixed_test_signal

    return {s: mixed_test_signal(seconds, seed=10 + i) * np.float32(0.5) for i, s in enumerate(STEM_NAMES)}


def _leaves(stage, path: str):
    """(path, stage, method to time) for every non-container stage under ``stage``; a
    :class:`~engine.dsp.spectral_chain.SpectralChain` is timed as ``.../shared STFT`` (the
    transforms and overlap-add) plus each member's ``process_frames``."""
    from engine.dsp.spectral_chain import SpectralChain

    subs = getattr(stage, "stages", None)
    if isinstance(stage, SpectralChain):
        yield f"{path}/shared STFT", stage, "process"
        for m in subs:
            yield f"{path}/{m.name}", m, "process_frames"
        return
    if isinstance(subs, list):
        for i, s in enumerate(subs):
            yield from _leaves(s, f"{path}/{getattr(s, 'name', type(s).__name__)}")
        return
    inner = getattr(stage, "stage", None)
    if inner is not None and hasattr(inner, "process"):
        yield from _leaves(inner, path)
        return
    yield path, stage, "process"


class Timers:
    def __init__(self):
        self.own = collections.defaultdict(float)
        self._stack: list[list[float]] = []

    def wrap(self, obj, attr: str, key: str) -> None:
        """Time ``obj.attr`` calls; time spent in nested timed calls is not counted twice."""
        fn = getattr(obj, attr)

        def timed(*a, **k):
            self._stack.append([0.0])
            t = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                dt = time.thread_time() - t
                child = self._stack.pop()[0]
                self.own[key] += dt - child
                if self._stack:
                    self._stack[-1][0] += dt

        setattr(obj, attr, timed)


def run(preset: str, seconds: float, band: tuple[float, float]) -> dict:
    from engine.analysis.metrics import AudioAnalyzer
    from engine.graph import JobGraph
    from engine.master.preview import PreviewPrior
    from engine.restore.tonal import TonalProfile
    from resonate_stream.settings import Settings

    stems = stem_signals(seconds)
    mix_in = sum(stems.values())
    head = [mix_in[:, i:i + SAMPLE_RATE] for i in range(0, min(mix_in.shape[1], 10 * SAMPLE_RATE), SAMPLE_RATE)]
    # as resonate_stream.runner.run_job: the preview prior and the tonal profile measured on the
    # input's head (with restore.tonal > 0 the profile puts a TonalCorrector in every stem chain)
    cfg = Settings.from_preset(preset).pipeline_config(band, PreviewPrior.measure(head),
                                                       tonal_profile=TonalProfile.measure(head))
    graph = JobGraph(cfg)
    stem_specs, mix_spec = graph.lane_specs()

    def build():
        lanes = {s: spec.build() for s, spec in stem_specs.items()}
        return lanes, mix_spec.build(), AudioAnalyzer(SAMPLE_RATE)

    # warm-up (numba cache loads, first-call costs) on fresh objects
    lanes, mm, an = build()
    blk = {s: x[:, :SAMPLE_RATE] for s, x in stems.items()}
    mm.process({s: lanes[s].process(b) for s, b in blk.items()})
    an.update(mix_in[:, :SAMPLE_RATE])

    lanes, mm, an = build()
    timers = Timers()
    for s, lane in lanes.items():
        for path, leaf, method in _leaves(lane.stage, s):
            timers.wrap(leaf, method, path)
        timers.wrap(lane, "process", f"{s} (lane overhead)")
    timers.wrap(mm.mixer, "process", "mix/mixer")
    timers.wrap(mm.preview.stage, "process", "mix/preview master")
    timers.wrap(an, "update", "analysis (input)")
    lane_t = collections.defaultdict(float)
    n = mix_in.shape[1]
    clock = time.thread_time
    t_all, c_all = time.perf_counter(), clock()
    for pos in range(0, n, SAMPLE_RATE):
        t = clock()
        out = {s: lanes[s].process(x[:, pos:pos + SAMPLE_RATE]) for s, x in stems.items()}
        lane_t["stems"] += clock() - t
        t = clock()
        mm.process(out)
        lane_t["mix/master"] += clock() - t
        t = clock()
        an.update(mix_in[:, pos:pos + SAMPLE_RATE])
        lane_t["analysis"] += clock() - t
    t = clock()
    mm.process({s: lanes[s].flush() for s in stems})
    mm.flush()
    an.result()
    lane_t["flush + result"] += clock() - t
    wall = time.perf_counter() - t_all
    total = clock() - c_all
    return {"preset": preset, "seconds": seconds, "band_hz": list(band),
            "stage_rtf": {k: seconds / v for k, v in sorted(timers.own.items()) if v > 0},
            "stage_s": dict(sorted(timers.own.items())),
            "lane_rtf": {k: seconds / v for k, v in lane_t.items() if v > 0},
            "total_s": total, "total_rtf": seconds / total, "wall_s": wall, "wall_rtf": seconds / wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--presets", default="balanced,aggressive")
    ap.add_argument("--band", default="120,8000", help="detected band low,high in Hz")
    ap.add_argument("--json", default=None, help="also write the figures here")
    a = ap.parse_args(argv)
    band = tuple(float(v) for v in a.band.split(","))
    results = []
    for preset in a.presets.split(","):
        r = run(preset, a.seconds, band)
        results.append(r)
        print(f"\n== {preset}: {a.seconds:g} s of 44.1 kHz stereo, band {band[0]:g}-{band[1]:g} Hz, one thread")
        for k, v in r["stage_rtf"].items():
            print(f"  {k:<44} {v:9.1f}x   ({r['stage_s'][k]:.3f} s)")
        print("  lanes: " + "  ".join(f"{k} {v:.1f}x" for k, v in r["lane_rtf"].items()))
        print(f"  TOTAL in-order stages: {r['total_rtf']:.1f}x real time ({r['total_s']:.2f} s CPU; "
              f"wall {r['wall_rtf']:.1f}x, {r['wall_s']:.2f} s)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
