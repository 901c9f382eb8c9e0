"""MBD polish cost per 10 s of audio: random weights, real architecture, real loader.

The models are the real AudioCraft / transformers classes with random
weights, written in the Hugging Face cache layout into a temporary folder and
loaded through ``MultiBandDiffusion.get_mbd_24khz`` offline (as the tests do):

* ``--size full``: transformers' default ``EncodecConfig`` (the released
  encodec_24khz architecture) and, per band, AudioCraft's
  ``config/model/score/basic.yaml`` U-Net conditioned on the codec latent
  (the released checkpoints' exact sizes are not known here: no weights);
  4 bands.  Needs about 15 GB of memory and many minutes on 2 CPU cores:
  ``python benchmarks/bench_generative.py --size full --seconds 10``
  (on a GPU: add ``--device cuda``);
* ``--size reduced`` (default): the same with a U-Net of ``hidden=12``, a
  smoke run that fits a busy development machine.

Prints, measured in this one run: model parameters, load time, one
``mbd.regenerate`` of the whole clip (mono, 24 kHz) and the polish lane
(:class:`engine.polish.streaming.StreamingPolish`, 5 s windows, 25 % overlap,
a stereo signal: mid and side) over the same clip, each scaled to 10 s of
audio and as a real-time factor, and the peak RSS of the process.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SIZES = {"full": {}, "reduced": {"hidden": 12}}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="reduced")
    ap.add_argument("--seconds", type=float, default=2.0, help="clip length (s)")
    ap.add_argument("--bw", type=float, default=6.0, choices=(1.5, 3.0, 6.0))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    import torch

    from engine.audio import SAMPLE_RATE
    from engine.polish.config import PolishConfig
    from engine.polish.factory import build_polisher
    from engine.polish.streaming import StreamingPolish, inline_polish
    from polish_fixtures import BASIC_UNET, write_random_mbd

    if args.threads:
        torch.set_num_threads(args.threads)
    unet = {**BASIC_UNET, **SIZES[args.size]}
    encodec = None if args.size == "full" else {"num_lstm_layers": 1}
    with tempfile.TemporaryDirectory() as hf_home:
        t = time.perf_counter()
        write_random_mbd(Path(hf_home), bws=(args.bw,), unet=unet, encodec=encodec)
        written = time.perf_counter() - t
        cfg = PolishConfig.from_dict({"mode": "mbd", "bandwidth_kbps": args.bw, "device": args.device,
                                      "model_dir": hf_home})
        t = time.perf_counter()
        polisher = build_polisher(cfg, ("mix",))
        load_s = time.perf_counter() - t
    mbd = polisher.mbd
    per_band = sum(p.numel() for p in mbd.DPs[0].model.parameters())
    codec = sum(p.numel() for p in mbd.codec_model.parameters())

    n = int(args.seconds * SAMPLE_RATE)
    rng = np.random.default_rng(0)
    tt = np.arange(n) / SAMPLE_RATE
    x = np.stack([0.2 * np.sin(2 * np.pi * 220 * tt), 0.1 * np.sin(2 * np.pi * 330 * tt)])
    x = (x + 0.01 * rng.standard_normal((2, n))).astype(np.float32)

    import julius

    mono24 = julius.resample_frac(torch.from_numpy(x.mean(0, keepdims=True)).to(mbd.device), SAMPLE_RATE, 24000)
    mbd.regenerate(mono24[:, None, : 24000 // 2], 24000)  # warm-up
    t = time.perf_counter()
    with torch.no_grad():
        mbd.regenerate(mono24[:, None], 24000)
    regen_s = time.perf_counter() - t

    lane = StreamingPolish(inline_polish(polisher), ("mix",), cfg.blend)
    t = time.perf_counter()
    first = None
    for start in range(0, n, SAMPLE_RATE):
        if lane.process({"mix": x[:, start:start + SAMPLE_RATE]})["mix"].shape[1] and first is None:
            first = time.perf_counter() - t
    for _ in lane.drain():
        pass
    lane_s = time.perf_counter() - t

    per10 = 10.0 / args.seconds
    print(f"MBD {args.size} size, {args.bw:g} kbps, {args.device}, torch threads {torch.get_num_threads()}, "
          f"clip {args.seconds:g} s")
    print(f"  parameters: {per_band / 1e6:.1f} M per band x {len(mbd.DPs)} bands, EnCodec {codec / 1e6:.1f} M")
    print(f"  write random checkpoints {written:.1f} s, load through get_mbd_24khz {load_s:.1f} s")
    print(f"  regenerate (mono):           {regen_s * per10:8.1f} s per 10 s  ({regen_s / args.seconds:.1f}x real time)")
    print(f"  polish lane (stereo M/S, 5 s windows): {lane_s * per10:8.1f} s per 10 s  "
          f"({lane_s / args.seconds:.1f}x real time), first output after {first if first is not None else lane_s:.1f} s")
    print(f"  peak RSS {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
