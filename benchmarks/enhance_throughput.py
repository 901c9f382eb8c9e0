"""Throughput of the four default enhancement chains (balanced), 1 s blocks, one core."""
import os
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[v] = "1"
import time

from engine.audio import SAMPLE_RATE, STEM_NAMES
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test signals, by module name
from stage_signals import mixed_test_signal
from engine.enhance import build_stem_chain
from engine.stage import run_in_blocks
from resonate_stream.settings import Settings

seconds = 30.0
x = mixed_test_signal(seconds, seed=1)
for preset in ("conservative", "balanced", "aggressive"):
    cfg = Settings.from_preset(preset).enhance
    chains = {s: build_stem_chain(s, cfg.stem(s)) for s in STEM_NAMES}
    for c in chains.values():  # warm-up (numba cache load / compile)
        run_in_blocks(c, x[:, :SAMPLE_RATE], [SAMPLE_RATE]); c.reset()
    times = {}
    for s, c in chains.items():
        t = time.perf_counter()
        run_in_blocks(c, x, [SAMPLE_RATE])
        times[s] = time.perf_counter() - t
    total = sum(times.values())
    print(f"{preset:>12}: all four chains {seconds / total:6.1f}x real time  "
          + "  ".join(f"{s} {seconds / t:.0f}x (lat {chains[s].latency})" for s, t in times.items()))
