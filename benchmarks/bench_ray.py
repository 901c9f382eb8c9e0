"""The Ray pipeline against the in-process runner, measured side by side in one run.

Parts (``--parts a,b,c``):

a. Overhead: wall time of one job (``run_job``, DSP separator, balanced
   preset) through :class:`RayPipeline` (local Ray, ``num_cpus=2``, 2
   separator actors with 1 thread each, pool already started as in a server)
   vs the in-process runner, on the same synthetic concert; after a warm-up
   job on each path (numba caches).  The Ray path runs twice: with the stem
   and mix/master actors kept warm between jobs (``StageActorPool``, as a
   server does) and with actors started for the job (five new processes).
b. Scaling: 1 separator actor with 2 torch threads vs 2 actors with 1 thread
   each (and the in-process runner, 2 threads) with a random-weight Demucs
   model of the released ``htdemucs`` architecture (``HTDemucs``, 42 M
   parameters, 7.8 s segment; see ``bench_separation.py``), saved in
   Demucs' own format into a temporary model folder and loaded by the actors
   through the real loader.  Quality ``preview`` (overlap 0.1, no shifts).
c. Time to first audio: ``timing.time_to_first_audio_s`` of the job report
   (from the start of ``run_job`` - decode, band detection, actor start-up
   included - to the first streamed ``AudioChunk``) vs the total wall time,
   for a long input with the DSP separator (Ray and in-process), and for a
   shorter one with the random htdemucs model through 2 actors.  Also the
   playback delay a listener needs to never stall: ``max_k(arrival_k -
   offset_k / 44100)`` over the streamed chunks.

Run:  python benchmarks/bench_ray.py [--parts a,b,c] [--minutes 1]
``--minutes`` scales every input: a = 1 min, b = 0.5 min, c = 10 min (DSP) and
1 min (htdemucs) at ``--minutes 1``.  On a 2-core machine at ``--minutes 1``
part a takes about 1 minute, b 1.5-3, c about 6 (``--parts c --minutes 0.8``
stays within 5).  Other load on the machine moves these figures a lot: run
the parts one at a time on a quiet machine, and compare rows of one run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # demucs_fixtures: save a model the way demucs does

from benchmarks.bench_memory import write_synthetic_concert  # noqa: E402

SR = 44100


def settings_for(separation: dict):
    from resonate_stream.settings import Settings

    return Settings.from_preset("balanced", {"separation": separation})


def run(input_path: Path, settings, out_dir: Path, factory=None) -> dict:
    """One job; returns wall, report timing and the stall-free playback delay."""
    from resonate_stream.events import AudioChunk
    from resonate_stream.runner import OutputSpec, run_job
    from resonate_stream.sources import FileSource

    arrivals = []
    t0 = time.perf_counter()

    def emit(event):
        if isinstance(event, AudioChunk):
            arrivals.append((time.perf_counter() - t0, event.offset / SR))

    done = run_job(FileSource(input_path), settings, OutputSpec(out_dir / "out.wav"), emit=emit,
                   pipeline_factory=factory)
    wall = time.perf_counter() - t0
    timing = done.report["timing"]
    return {"wall": wall, "ttfa": timing["time_to_first_audio_s"], "rtf": timing["realtime_factor"],
            "stall_free_delay": max(a - o for a, o in arrivals), "audio_s": done.report["input"]["duration_s"]}


def ray_factory(pool, stage_actors=None):
    from resonate_stream.ray_pipeline import ray_pipeline_factory

    return ray_pipeline_factory(pool, stage_actors=stage_actors)


def stage_actor_pool(settings):
    """Warm stem + mix/master actors, as a server keeps them between jobs."""
    from resonate_stream.ray_pipeline import StageActorPool
    cfg = settings.pipeline_config((20.0, 20000.0))
    t = time.perf_counter()
    pool = StageActorPool(warm_cfg=cfg)
    print(f"    warm stage actors (4 stems + mix/master) started in {time.perf_counter() - t:.2f} s (once per server)")
    return pool


def fmt(r: dict) -> str:
    return (f"wall {r['wall']:7.2f} s ({r['rtf']:.2f}x real time), first audio {r['ttfa']:6.2f} s, "
            f"stall-free playback delay {r['stall_free_delay']:6.2f} s")


# ----------------------------------------------------------------------------- parts
def part_a(minutes: float, tmp: Path) -> None:
    from resonate_stream.ray_pipeline import SeparatorPool

    print(f"\n[a] Ray vs in-process, DSP separator, {minutes * 60:g} s input")
    src = write_synthetic_concert(tmp / "a.wav", minutes * 60, seed=1)
    warm = write_synthetic_concert(tmp / "warm.wav", 12, seed=2)
    settings = settings_for({"separator": "dsp"})
    t = time.perf_counter()
    pool = SeparatorPool(settings.separation, n_actors=2, threads=1)
    print(f"    pool of 2 separator actors started in {time.perf_counter() - t:.2f} s (once per server)")
    stage = stage_actor_pool(settings)
    try:
        run(warm, settings, tmp)
        run(warm, settings, tmp, ray_factory(pool, stage))
        local = run(src, settings, tmp)
        ray_ = run(src, settings, tmp, ray_factory(pool, stage))
        cold = run(src, settings, tmp, ray_factory(pool))
    finally:
        pool.shutdown()
        stage.shutdown()
    print(f"    in-process                  : {fmt(local)}")
    print(f"    ray, warm stage actors      : {fmt(ray_)}")
    print(f"    ray, stage actors per job   : {fmt(cold)}")
    print(f"    overhead ratio (ray wall / in-process wall): {ray_['wall'] / local['wall']:.2f} with warm stage "
          f"actors, {cold['wall'] / local['wall']:.2f} starting them per job")


def htdemucs_repo(folder: Path) -> tuple[Path, str]:
    """The random-weight htdemucs-architecture model saved as ``folder/<sig>-<sha>.th``."""
    from benchmarks.bench_separation import htdemucs_random
    from demucs_fixtures import save_model

    sig = "b3c4d5e6"
    model = htdemucs_random(seed=0)
    # HTDemucs keeps its segment as a Fraction: fine for torch.save, like the released package
    save_model(model, folder, sig)
    return folder, sig


def part_b(minutes: float, tmp: Path) -> None:
    import torch

    from resonate_stream.ray_pipeline import SeparatorPool

    seconds = 30 * minutes
    print(f"\n[b] 1 vs 2 separator actors, random-weight htdemucs architecture, {seconds:g} s input")
    repo, sig = htdemucs_repo(tmp / "repo")
    settings = settings_for({"separator": "demucs", "model": sig, "model_repo": str(repo), "device": "cpu"})
    src = write_synthetic_concert(tmp / "b.wav", seconds, seed=3)
    results = {}
    stage = stage_actor_pool(settings)
    for n_actors, threads in ((1, 2), (2, 1)):
        t = time.perf_counter()
        pool = SeparatorPool(settings.separation, n_actors=n_actors, threads=threads)  # warms up: 1 window each
        started = time.perf_counter() - t
        try:
            results[n_actors] = run(src, settings, tmp, ray_factory(pool, stage))
        finally:
            pool.shutdown()
        print(f"    {n_actors} actor(s) x {threads} thread(s) (started in {started:.1f} s): "
              f"{fmt(results[n_actors])}")
    stage.shutdown()
    torch.set_num_threads(2)
    local = run(src, settings, tmp)
    print(f"    in-process, 2 torch threads:      {fmt(local)}")
    print(f"    speed-up 2 actors vs 1 actor: {results[1]['wall'] / results[2]['wall']:.2f}x; "
          f"2 actors vs in-process: {local['wall'] / results[2]['wall']:.2f}x")


def part_c(minutes: float, tmp: Path) -> None:
    from resonate_stream.ray_pipeline import SeparatorPool

    seconds = 600 * minutes
    print(f"\n[c] time to first audio, DSP separator, {seconds / 60:g} min input")
    src = write_synthetic_concert(tmp / "c.wav", seconds, seed=4)
    settings = settings_for({"separator": "dsp"})
    pool = SeparatorPool(settings.separation, n_actors=2, threads=1)
    stage = stage_actor_pool(settings)
    short = write_synthetic_concert(tmp / "c30.wav", 30, seed=2)
    try:
        ray_ = run(src, settings, tmp, ray_factory(pool, stage))
        cold = run(short, settings, tmp, ray_factory(pool))
    finally:
        pool.shutdown()
        stage.shutdown()
    local = run(src, settings, tmp)
    for name, r in (("ray (2 actors)", ray_), ("in-process", local)):
        print(f"    {name:>15}: {fmt(r)}; first audio at {100 * r['ttfa'] / r['wall']:.2f}% of the job")
    print(f"    ray, stage actors started per job (30 s input): first audio {cold['ttfa']:.2f} s")

    seconds = 60 * minutes
    print(f"    htdemucs (random weights), {seconds:g} s input, 2 actors x 1 thread:")
    repo, sig = htdemucs_repo(tmp / "repo")
    settings = settings_for({"separator": "demucs", "model": sig, "model_repo": str(repo), "device": "cpu"})
    src = write_synthetic_concert(tmp / "c2.wav", seconds, seed=5)
    pool = SeparatorPool(settings.separation, n_actors=2, threads=1)
    stage = stage_actor_pool(settings)
    try:
        r = run(src, settings, tmp, ray_factory(pool, stage))
    finally:
        pool.shutdown()
        stage.shutdown()
    print(f"    {'ray htdemucs':>15}: {fmt(r)}; first audio at {100 * r['ttfa'] / r['wall']:.1f}% of the job")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="a,b,c", help="comma list of a, b, c")
    ap.add_argument("--minutes", type=float, default=1.0, help="scale of every input (see the docstring)")
    args = ap.parse_args(argv)

    from resonate_stream.ray_pipeline import init_ray

    t = time.perf_counter()
    init_ray(num_cpus=2)
    print(f"local Ray (num_cpus=2) started in {time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        for part in [p.strip() for p in args.parts.split(",") if p.strip()]:
            t = time.perf_counter()
            {"a": part_a, "b": part_b, "c": part_c}[part](args.minutes, Path(tmp))
            print(f"    (part {part}: {time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
