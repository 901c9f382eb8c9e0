"""Speed of the high-band extender: real-time factor per stem, one core, 44.1 kHz stereo.

Feeds ``--seconds`` of phone-band noise in 1 s blocks through
:class:`engine.restore.bandwidth.HighBandExtender` (cutoff ``--cutoff``) and prints
seconds of audio processed per second of CPU (thread count pinned to 1 by the
environment this is started in, e.g. ``OMP_NUM_THREADS=1``).

    OMP_NUM_THREADS=1 python benchmarks/bench_high_band.py --seconds 25
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    from scipy import signal

    from engine.restore.bandwidth import HighBandExtender

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=25.0)
    ap.add_argument("--cutoff", type=float, default=8000.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    sr = 44100
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, int(args.seconds * sr)))
    x = signal.sosfilt(signal.butter(6, args.cutoff, fs=sr, output="sos"), x, axis=1).astype(np.float32) * 0.1
    best = None
    for _ in range(args.repeats):
        st = HighBandExtender(args.cutoff, amount=1.0)
        t0 = time.process_time()
        for i in range(0, x.shape[1], sr):
            st.process(x[:, i:i + sr])
        st.flush()
        dt = time.process_time() - t0
        best = dt if best is None else min(best, dt)
    print(f"high-band extender: {args.seconds:g} s stereo in {best:.3f} s CPU -> {args.seconds / best:.0f}x real time")
    print(st.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
