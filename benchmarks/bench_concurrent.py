"""Several clients at once: does every job progress, and does none starve?

Starts `resonate serve` (local Ray, or `--in-process`) in a subprocess on a free
port, then N clients upload the same synthetic recording at the same moment and
consume their streams.  Per client it prints: time to first audio, the gaps
between received blocks (max), audio received by the time the first client
finished (fairness), and total wall time.  Usage:

    python benchmarks/bench_concurrent.py --clients 4 --seconds 30
"""
from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clients.python_client import AudioBlock, JobDone, ResonateClient  # noqa: E402
from audio_fixtures import write_sf  # noqa: E402
from demucs_fixtures import music_mix  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def one_client(url: str, path: Path, t0: float, log: dict) -> None:
    async with ResonateClient(url) as c:
        job = await c.start_job({"preset": "balanced", "overrides": {}}, upload_path=str(path))
        async for ev in c.events(job, timeout=600):
            now = time.monotonic() - t0
            if isinstance(ev, AudioBlock):
                log.setdefault("first", now)
                log["last_block"] = now
                log.setdefault("blocks", []).append((now, ev.audio.shape[1] / ev.sample_rate))
            elif isinstance(ev, JobDone):
                log["done"] = now
            elif hasattr(ev, "code"):
                log["error"] = ev.code


async def run(url: str, path: Path, n: int) -> list[dict]:
    logs = [dict() for _ in range(n)]
    t0 = time.monotonic()
    await asyncio.gather(*(one_client(url, path, t0, logs[i]) for i in range(n)))
    return logs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--in-process", action="store_true", help="run jobs without Ray")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="resonate-bench-"))
    clip = write_sf(tmp / "clip.wav", music_mix(args.seconds, seed=7) * 0.5, 44100, subtype="PCM_16")
    port = free_port()
    cmd = [sys.executable, "-m", "resonate_stream", "serve", "--port", str(port)]
    if args.in_process:
        cmd.append("--in-process")
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**__import__("os").environ, "RESONATE_OUTPUT_DIR": str(tmp / "out")})
    try:
        for line in server.stdout:
            if line.startswith("Resonate gateway:"):
                break
        logs = asyncio.run(run(f"ws://127.0.0.1:{port}/ws", clip, args.clients))
    finally:
        server.terminate()
        server.wait(timeout=30)
    first_done = min(l["done"] for l in logs if "done" in l)
    print(f"{args.clients} clients x {args.seconds:.0f} s clip, {'in-process' if args.in_process else 'Ray'}")
    print(f"{'client':>6} {'first audio s':>14} {'max gap s':>10} {'audio by 1st finish s':>22} {'done s':>8}")
    for i, l in enumerate(logs):
        times = [t for t, _ in l.get("blocks", [])]
        gaps = np.diff([l.get("first", 0.0)] + times) if times else [float("nan")]
        by_first = sum(d for t, d in l.get("blocks", []) if t <= first_done)
        print(f"{i:>6} {l.get('first', float('nan')):>14.2f} {max(gaps):>10.2f} {by_first:>22.1f} "
              f"{l.get('done', float('nan')):>8.2f} {l.get('error', '')}")


if __name__ == "__main__":
    main()
