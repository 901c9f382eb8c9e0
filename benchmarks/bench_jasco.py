"""JASCO generation cost per 10 s window: random weights, real classes, real loader.

Writes a randomly initialised JASCO (``tests/jasco_fixtures.py``: config composed from
AudioCraft's own ``config/`` for ``solver=jasco/chords_drums_melody``, random EnCodec 32 kHz,
a small random T5 and drums conditioner) into a temporary folder and loads it through
``JASCO.get_pretrained`` (``engine.generate.jasco.build_generator``), then profiles a synthetic
10 s song (chords, melody, drums) and generates one window.

* ``--size full``: the composed config's own transformer (the released 400 M architecture);
  needs about 5 GB and minutes per window on 2 CPU cores (``--device cuda`` on a GPU);
* ``--size tiny`` (default): the tests' tiny transformer, a smoke run.

Prints parameters, load time, time of one window with ``--steps`` Euler steps (its real-time
factor), the streaming time to first generated audio (load + profile + first window) and the
process's peak RSS.  Needs AudioCraft and ``../shared/vendor/audiocraft`` (or
``$RESONATE_AUDIOCRAFT_VENDOR``)::

    python benchmarks/bench_jasco.py --size full --steps 10
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("tiny", "full"), default="tiny")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    vendor = Path(os.environ.get("RESONATE_AUDIOCRAFT_VENDOR", ROOT.parent / "shared" / "vendor" / "audiocraft"))
    if not (vendor / "config.tar.gz").exists():
        print(f"no AudioCraft vendor folder at {vendor}: nothing to measure")
        return 0
    from engine.audio import SAMPLE_RATE
    from engine.generate.config import GenerateConfig
    from engine.generate.jasco import build_generator
    from engine.generate.profile import ProfileStage
    from jasco_fixtures import TINY_LM, write_random_jasco
    from generate_signals import chords, drums, stereo

    tmp = Path(tempfile.mkdtemp(prefix="resonate-jasco-"))
    t = time.perf_counter()
    paths = write_random_jasco(tmp, vendor, lm=TINY_LM if args.size == "tiny" else {})
    print(f"wrote a random JASCO ({args.size}) in {time.perf_counter() - t:.1f} s")
    cfg = GenerateConfig(mode="generate", model=str(paths["model_dir"]), model_dir=str(paths["hf_home"]),
                         steps=args.steps, device=args.device, text="live rock band")
    t0 = time.perf_counter()
    gen = build_generator(cfg, args.device)
    load_s = time.perf_counter() - t0
    params = sum(p.numel() for p in gen.model.lm.parameters())
    song = stereo(0.5 * chords(2.5)[:10 * SAMPLE_RATE] + 0.5 * drums(120, 10.0)[:10 * SAMPLE_RATE])
    t1 = time.perf_counter()
    stage = ProfileStage(10.0, 9.0)
    stage.process(song.astype(np.float32))
    stage.flush()
    profile = stage.pop()[0]
    profile_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    out = gen.generate(profile, song)
    window_s = time.perf_counter() - t2
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    audio_s = out.shape[1] / SAMPLE_RATE
    print(f"JASCO {args.size}: {params / 1e6:.1f} M LM parameters, device {args.device}, {args.steps} steps")
    print(f"  load {load_s:.1f} s; profile of 10 s {profile_s:.2f} s; one {audio_s:.0f} s window {window_s:.1f} s "
          f"({window_s / audio_s:.2f} s per s of audio, {window_s / args.steps:.1f} s per step)")
    print(f"  time to first generated audio (load + profile + first window): {load_s + profile_s + window_s:.1f} s")
    print(f"  peak RSS {peak_gb:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
