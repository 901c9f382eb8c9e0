"""Load: N clients, each starting 10 s jobs back to back for D seconds, against `resonate serve`.

Starts `resonate serve` (local Ray unless ``--in-process``) on a free port; every
client loops: upload a synthetic clip, read the stream to ``job_done``.  A job
refused (``too_many_jobs``, ``server_busy``) is counted and retried after 1 s.
Samples the resident memory of the server's whole process tree (Ray workers
included, from /proc) every 0.5 s.  Prints jobs done, refusals, errors, how many
jobs waited in the queue, jobs per client (min/max) and the peak RSS::

    python benchmarks/bench_load.py --clients 8 --minutes 5 --json /tmp/load.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks.bench_concurrent import free_port  # noqa: E402
from clients.python_client import JobDone, ResonateClient  # noqa: E402
from audio_fixtures import write_sf  # noqa: E402
from demucs_fixtures import music_mix  # noqa: E402

REFUSALS = ("too_many_jobs", "server_busy")


def tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parents[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/statm") as f:
                rss[int(d)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(rss.get(p, 0) for p in tree)


async def one_client(url: str, clip: Path, until: float, stats: dict) -> None:
    while time.monotonic() < until:
        try:
            async with ResonateClient(url) as c:
                while time.monotonic() < until:
                    job = await c.start_job({"preset": "balanced", "overrides": {}}, upload_path=str(clip))
                    outcome = "error"
                    async for ev in c.events(job, timeout=600):
                        if type(ev).__name__ == "Queued" and getattr(ev, "position", 0) > 0:
                            stats["queued"] += 1
                        if isinstance(ev, JobDone):
                            outcome = "done"
                        elif hasattr(ev, "code"):
                            outcome = "refused" if ev.code in REFUSALS else f"error:{ev.code}"
                    if outcome == "done":
                        stats["done"] += 1
                    elif outcome == "refused":
                        stats["refused"] += 1
                        await asyncio.sleep(1.0)
                    else:
                        stats["errors"].append(outcome)
        except Exception as exc:  # a refusal raised at start_job, or a dropped connection
            code = getattr(exc, "code", type(exc).__name__)
            if code in REFUSALS:
                stats["refused"] += 1
            else:
                stats["errors"].append(str(code))
            await asyncio.sleep(1.0)


async def run(url: str, clip: Path, n: int, seconds: float) -> list[dict]:
    stats = [{"done": 0, "refused": 0, "queued": 0, "errors": []} for _ in range(n)]
    until = time.monotonic() + seconds
    await asyncio.gather(*(one_client(url, clip, until, stats[i]) for i in range(n)))
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--clip-seconds", type=float, default=10.0)
    ap.add_argument("--in-process", action="store_true", help="run jobs without Ray")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="resonate-load-"))
    clip = write_sf(tmp / "clip.wav", music_mix(args.clip_seconds, seed=7) * 0.5, 44100, subtype="PCM_16")
    port = free_port()
    cmd = [sys.executable, "-m", "resonate_stream", "serve", "--port", str(port)]
    if args.in_process:
        cmd.append("--in-process")
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "RESONATE_OUTPUT_DIR": str(tmp / "out")})
    peak = {"idle": 0, "load": 0}
    stop = threading.Event()

    def sample(key: str) -> None:
        while not stop.is_set():
            peak[key] = max(peak[key], tree_rss_bytes(server.pid))
            time.sleep(0.5)

    try:
        for line in server.stdout:
            if "Resonate gateway" in line:
                break
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()  # drain the log
        peak["idle"] = tree_rss_bytes(server.pid)
        sampler = threading.Thread(target=sample, args=("load",), daemon=True)
        sampler.start()
        stats = asyncio.run(run(f"ws://127.0.0.1:{port}/ws", clip, args.clients, args.minutes * 60))
        stop.set()
        sampler.join()
    finally:
        server.terminate()
        server.wait(timeout=60)
    per = [s["done"] for s in stats]
    result = {"clients": args.clients, "minutes": args.minutes, "clip_s": args.clip_seconds,
              "ray": not args.in_process, "jobs_done": sum(per), "refused": sum(s["refused"] for s in stats),
              "queued": sum(s["queued"] for s in stats), "errors": sum(len(s["errors"]) for s in stats),
              "error_codes": sorted({e for s in stats for e in s["errors"]}),
              "jobs_per_client_min": min(per), "jobs_per_client_max": max(per),
              "rss_idle_mb": round(peak["idle"] / 2**20), "rss_peak_mb": round(peak["load"] / 2**20)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
