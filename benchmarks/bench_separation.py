"""Streaming vs whole-file Demucs separation, side by side, plus the DSP separator.

The Demucs model is ``demucs.htdemucs.HTDemucs`` with the hyper-parameters of
the released ``htdemucs`` (955717e8): the class defaults plus
``bottom_channels=512``, ``dconv_mode=3``, ``segment=39/5`` s (7.8 s), sources
``drums, bass, other, vocals`` (about 42 M parameters), with random weights:
no weights can be downloaded here, and the compute is the same.

Run:  python benchmarks/bench_separation.py --seconds 20 [--threads 2]

Prints, measured in this one run with the same torch thread count:
* wall time of ``StreamingSeparation`` fed 1 s blocks (planner -> windows ->
  stitcher, windows in order, one process) and of one whole-file
  ``apply_model(split=True, shifts=0)`` with the same segment/overlap; their
  ratio and the max abs difference of the stems;
* time until the streamed path produced its first samples;
* the DSP separator's real-time factor.
"""
from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.separation import DemucsSeparator, DspSeparator, StreamingSeparation  # noqa: E402

SR = 44100
SOURCES = ["drums", "bass", "other", "vocals"]


def htdemucs_random(seed: int = 0):
    """``HTDemucs`` with the released htdemucs hyper-parameters and random weights."""
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    return HTDemucs(SOURCES, bottom_channels=512, dconv_mode=3, segment=Fraction(39, 5)).eval()


def synthetic_mix(seconds: float, seed: int = 0) -> np.ndarray:
    """Stereo float32 ``(2, n)``: chords, bass line, clicks, a centred melody, noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = np.zeros((2, n))
    for f, pan in [(220, 0.3), (277.2, 0.7), (329.6, 0.5)]:
        tone = 0.08 * np.sin(2 * np.pi * f * t) * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))
        x += np.stack([tone * (1 - pan), tone * pan])
    x += 0.25 * np.sin(2 * np.pi * 55 * (1 + (t.astype(int) % 4 == 2) * 0.335) * t)
    melody = 0.15 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5.5 * t))
    x += melody
    clicks = np.zeros(n)
    clicks[:: SR // 2] = 1.0
    x += 0.6 * np.convolve(clicks, rng.standard_normal(600) * np.exp(-np.arange(600) / 80))[:n]
    x += 0.01 * rng.standard_normal((2, n))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def run_streaming(stream: StreamingSeparation, mix: np.ndarray, block: int):
    parts, first_at = [], None
    t0 = time.perf_counter()
    for start in range(0, mix.shape[1], block):
        out = stream.process(mix[:, start:start + block])
        if first_at is None and next(iter(out.values())).shape[1]:
            first_at = time.perf_counter() - t0
        parts.append(out)
    parts.append(stream.flush())
    wall = time.perf_counter() - t0
    stems = {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
    return stems, wall, first_at


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="audio duration (s)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads, both paths")
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--block", type=float, default=1.0, help="streaming block size (s)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed runs per path (ABBA order), best is reported")
    ap.add_argument("--skip-demucs", action="store_true", help="only time the DSP separator")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    mix = synthetic_mix(args.seconds)
    block = int(args.block * SR)
    print(f"audio: {args.seconds:g} s stereo @ {SR} Hz; torch threads: {torch.get_num_threads()}; "
          f"blocks: {args.block:g} s")

    if not args.skip_demucs:
        from demucs.apply import apply_model

        model = htdemucs_random()
        n_params = sum(p.numel() for p in model.parameters())
        segment = model.segment
        print(f"model: HTDemucs (released htdemucs hyper-parameters, random weights), "
              f"{n_params / 1e6:.1f} M parameters, segment {float(segment):g} s, "
              f"overlap {args.overlap}")
        sep = DemucsSeparator(model, segment=segment, overlap=args.overlap, shifts=0)
        # warm-up forward (allocator, one-time init) outside the timings
        with torch.no_grad():
            apply_model(model, torch.from_numpy(mix[:, :sep.segment_samples])[None], shifts=0,
                        split=False, segment=segment)
        order = ["stream", "whole"]
        for r in range(1, args.repeats):  # ABBA... so load drift hits both paths alike
            order += ["whole", "stream"] if r % 2 else ["stream", "whole"]
        walls = {"stream": [], "whole": []}
        for kind in order:
            if kind == "stream":
                stream = StreamingSeparation(sep, map_to_stems=False)
                stems, wall, first_at = run_streaming(stream, mix, block)
                streamed = np.stack([stems[s] for s in sep.sources])
            else:
                t0 = time.perf_counter()
                with torch.no_grad():
                    whole = apply_model(model, torch.from_numpy(mix)[None], shifts=0, split=True,
                                        overlap=args.overlap, segment=segment)[0].numpy()
                wall = time.perf_counter() - t0
            walls[kind].append(wall)
        wall_stream, wall_whole = min(walls["stream"]), min(walls["whole"])
        diff = float(np.abs(streamed - whole).max())
        print(f"run order: {' '.join(order)} (best of {args.repeats} each)")
        print(f"demucs streamed ({stream.windows_processed} windows, one at a time): "
              f"{wall_stream:7.2f} s wall  ({args.seconds / wall_stream:.2f}x real time)")
        print(f"demucs whole-file apply_model(split=True):        "
              f"{wall_whole:7.2f} s wall  ({args.seconds / wall_whole:.2f}x real time)")
        print(f"ratio streamed / whole-file: {wall_stream / wall_whole:.3f}   "
              f"(all walls: stream {[round(w, 2) for w in walls['stream']]}, "
              f"whole {[round(w, 2) for w in walls['whole']]})")
        print(f"max |streamed - whole-file|: {diff:.3g} (stem peak {np.abs(whole).max():.3g})")
        if first_at is not None:
            print(f"first streamed samples after {first_at:.2f} s wall "
                  f"(the first window needs {sep.segment_samples / SR:.2f} s of input)")

    dsp = DspSeparator()
    dsp.separate_array(mix[:, :SR])  # compile the numba kernel outside the timing
    _, wall_dsp, _ = run_streaming(StreamingSeparation(dsp), mix, block)
    print(f"dsp separator: {wall_dsp:.2f} s wall for {args.seconds:g} s "
          f"-> {args.seconds / wall_dsp:.1f}x real time ({torch.get_num_threads()} torch threads; "
          "HPSS median kernels are single-threaded)")


if __name__ == "__main__":
    main()
