"""Memory of the real commands on one input (used by ``bench_memory.py --paths process,serve``).

* ``process``: ``resonate process IN -o OUT --separator dsp --no-cache``;
  memory = its whole process tree.
* ``serve``: ``resonate serve`` (local Ray) started first, then
  ``resonate stream IN -o OUT`` against it (the server's default separator,
  auto, falls back to the DSP separator: the model repo is an empty folder); memory = the
  server's tree (gateway, GCS, raylet, object store, actor workers) plus the
  client's, from the start of the client to its end.  The server's idle
  memory once /health answers is printed beside it.

Both: the sum of RSS over the tree (peak), and the sum of PSS (peak), sampled
every 0.25 s.
"""
from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

from benchmarks.cli_runs import ROOT, TreeMemory, bench_env, resonate, start_serve, stop_serve


def _follow(proc: subprocess.Popen, stream, mem: TreeMemory, kind: str, t0: float, lines: list[str]) -> None:
    """Print one line per progress line of the command: audio done, wall, tree RSS now and peak so far
    (so a run stopped early still shows how memory grew with the audio processed)."""
    for line in stream:
        lines.append(line)
        m = re.match(r"progress: (\S+) .*?\(?([0-9.]+)(?:/[0-9.]+)? s\)?", line)
        if m:
            mem.sample()
            print(f"  {kind} {m.group(1):>8} {float(m.group(2)) / 60:6.1f} min  wall {time.perf_counter() - t0:7.1f} s  "
                  f"tree RSS now {mem.rss:6.0f} MiB, peak so far {mem.peak_rss:6.0f} MiB", flush=True)


def _run_followed(cmd, env, roots_before: list[int], kind: str):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    with TreeMemory(roots_before + [proc.pid]) as mem:
        reader = threading.Thread(target=_follow, args=(proc, proc.stdout, mem, kind, t0, lines), daemon=True)
        reader.start()
        proc.wait()
        reader.join()
    return proc.returncode, "".join(lines), time.perf_counter() - t0, mem


def run_cli_path(kind: str, src: Path, tmp: Path, minutes: float) -> dict:
    env = bench_env(tmp)
    (tmp / "no-models").mkdir(exist_ok=True)
    env["RESONATE_MODEL_REPO"] = str(tmp / "no-models")
    out = tmp / f"{kind}.restored.wav"
    row = {"path": kind, "minutes": minutes}
    if kind == "process":
        cmd = resonate("process", str(src), "-o", str(out), "--separator", "dsp", "--no-cache", "-y")
        rc, err, wall, mem = _run_followed(cmd, env, [], kind)
        if rc != 0:
            raise RuntimeError(f"resonate process failed:\n{err[-3000:]}")
    else:
        server, port, ready_s = start_serve(env)
        try:
            idle = TreeMemory([server.pid])
            idle.sample()
            row.update(serve_ready_s=round(ready_s, 2), serve_idle_rss_mib=round(idle.rss, 1))
            # no --separator: the server's warm default pool (separator auto, which is the DSP
            # separator here: the model repo is an empty folder) holds every CPU of the local Ray;
            # a job asking for --separator dsp would need a second pool and find no room
            cmd = resonate("stream", str(src), "-o", str(out), "--server", f"127.0.0.1:{port}")
            rc, text, wall, mem = _run_followed(cmd, env, [server.pid], kind)
            if rc != 0:
                raise RuntimeError(f"resonate stream failed:\n{text[-3000:]}")
            m = re.search(r"first audio after ([0-9.]+) s", text)
            row["first_audio_s"] = float(m.group(1)) if m else None
        finally:
            stop_serve(server)
    out.unlink(missing_ok=True)
    row.update(wall_s=round(wall, 1), realtime_factor=round(minutes * 60 / wall, 2),
               peak_rss_mib=round(mem.peak_rss, 1), peak_pss_mib=round(mem.peak_pss, 1),
               processes=mem.peak_processes)
    print(f"{kind}: {minutes:g} min in {wall:.1f} s ({row['realtime_factor']:.2f}x real time); peak tree RSS "
          f"{mem.peak_rss:.0f} MiB, PSS {mem.peak_pss:.0f} MiB ({mem.peak_processes} processes)"
          + (f"; serve ready in {row['serve_ready_s']} s, idle RSS {row['serve_idle_rss_mib']:.0f} MiB, "
             f"first audio after {row['first_audio_s']} s" if kind == "serve" else ""), flush=True)
    return row
