"""Memory of one job as the recording gets longer: in-process runner and Ray pipeline.

A synthetic concert (chords, bass line, drum hits, a vibrato melody, crowd
noise; continuous, stereo, 44.1 kHz) is written to a WAV file block by block
with soundfile (never held in memory), then restored with the DSP separator
in a child process, once per path:

* ``local``: ``resonate_stream.runner.process_file`` (``resonate process``);
  memory = the child's RSS (``/proc/self/status`` VmRSS, sampled every
  0.25 s; peak = ``getrusage(RUSAGE_SELF).ru_maxrss``).
* ``ray``: ``run_job`` through :class:`RayPipeline` on a local Ray
  (``num_cpus=2``, 2 separator actors with 1 torch thread); memory = the sum
  of PSS (``/proc/PID/smaps_rollup``: shared pages such as the object store
  are split between the processes mapping them, not counted twice) over the
  driver and every process it started (GCS, raylet, object store, actor
  workers), sampled every 0.25 s.

Printed per checkpoint (every ``--checkpoint`` minutes of audio processed):
current and peak memory so far, so ``peak at 5 min`` vs ``peak at 20 min``
(or whatever the run reaches) can be read off one run; flat memory means
these stay the same as the recording gets longer.

Run:  python benchmarks/bench_memory.py --minutes 8 [--paths local,ray] [--checkpoint 1]
(the in-process DSP path runs at roughly 2-4x real time on 2 cores: 8 minutes
of audio per path keeps each path within ~5 minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cli_runs import PeriodicSampler  # noqa: E402

SR = 44100


# ----------------------------------------------------------------------------- input
def concert_block(start: int, n: int, seed: int = 0) -> np.ndarray:
    """Samples ``[start, start + n)`` of an endless synthetic concert: float32 ``(2, n)``.

    A pure function of the absolute sample index (phase-continuous tones,
    chords changing every 2 s, bass every beat at 120 bpm, hits every 0.5 s),
    so it can be generated block by block without joins.
    """
    t = (start + np.arange(n)) / SR
    rng = np.random.default_rng([seed, start])
    bar = (t // 2.0).astype(int) % 4
    roots = np.array([220.0, 174.6, 261.6, 196.0])[bar]
    x = np.zeros((2, n))
    for ratio, pan in ((1.0, 0.3), (1.26, 0.7), (1.5, 0.5)):
        tone = 0.07 * np.sin(2 * np.pi * roots * ratio * t) * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))
        x += np.stack([tone * (1 - pan), tone * pan])
    x += 0.22 * np.sin(2 * np.pi * (roots / 4) * t) * np.exp(-(t % 0.5) * 3)
    x += 0.12 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5.5 * t)) * (bar != 3)
    phase = t % 0.5
    hit = np.exp(-phase * 60) * np.sin(2 * np.pi * 80 * phase) * 0.5
    hit += np.exp(-phase * 200) * rng.standard_normal(n) * 0.2
    x += hit
    x += 0.015 * rng.standard_normal((2, n))
    return (0.45 * x).astype(np.float32)


def write_synthetic_concert(path: Path, seconds: float, seed: int = 0, block_s: float = 10.0) -> Path:
    """Write ``seconds`` of :func:`concert_block` to a 16-bit WAV, one block at a time."""
    import soundfile as sf

    total, step = int(seconds * SR), int(block_s * SR)
    with sf.SoundFile(str(path), "w", samplerate=SR, channels=2, subtype="PCM_16") as f:
        for start in range(0, total, step):
            f.write(concert_block(start, min(step, total - start), seed).T)
    return Path(path)


# ----------------------------------------------------------------------------- memory probes
def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it (from ``/proc/*/stat`` parent links)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _role(pid: int) -> str:
    """``actors`` for Ray workers (``ray::...``), else the executable's name (raylet, gcs_server...)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            first = f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "gone"
    if first.startswith("ray::"):
        return "ray workers"
    return Path(first).name or "?"


class MemorySampler(PeriodicSampler):
    """Samples memory (MiB) every ``period_s`` in a thread: this process's RSS, or the
    PSS sum over this process and all its descendants (``tree=True``)."""

    def __init__(self, tree: bool, period_s: float = 0.25):
        super().__init__(period_s)
        self.tree = tree
        self.peak = self.current = 0.0
        self.processes = 1
        self.parts: dict[str, float] = {}

    def sample(self) -> float:
        me = os.getpid()
        if self.tree:
            pids = descendants(me)
            self.processes = len(pids)
            parts: dict[str, float] = {}
            for pid in pids:
                role = "driver" if pid == me else _role(pid)
                parts[role] = parts.get(role, 0.0) + _pss_kb(pid) / 1024
            self.parts = parts
            kb = sum(parts.values()) * 1024
        else:
            kb = _status_kb(me, "VmRSS")
        self.current = kb / 1024
        self.peak = max(self.peak, self.current)
        return self.current


# ----------------------------------------------------------------------------- child: one job
def child(path_kind: str, input_path: Path, checkpoint_s: float) -> None:
    """Restore ``input_path`` with the DSP separator; print one JSON line per checkpoint."""
    from resonate_stream.events import ProgressEvent
    from resonate_stream.runner import OutputSpec, check_outputs, process_file, run_job
    from resonate_stream.settings import Settings
    from resonate_stream.sources import FileSource

    settings = Settings.from_preset("balanced", {"separation": {"separator": "dsp"}})
    out = Path(tempfile.mkdtemp(prefix="bench-mem-")) / "restored.wav"
    factory = None
    if path_kind == "ray":
        from resonate_stream.ray_pipeline import SeparatorPool, init_ray, ray_pipeline_factory

        init_ray(num_cpus=2)
        pool = SeparatorPool(settings.separation, n_actors=2, threads=1)
        factory = ray_pipeline_factory(pool)
    t0 = time.perf_counter()
    next_mark = [checkpoint_s]

    with MemorySampler(tree=path_kind == "ray") as mem:
        def emit(event):
            if isinstance(event, ProgressEvent) and event.stage == "restore" and event.done >= next_mark[0]:
                mem.sample()
                print(json.dumps({"audio_s": round(event.done, 1), "wall_s": round(time.perf_counter() - t0, 1),
                                  "mib": round(mem.current, 1), "peak_mib": round(mem.peak, 1),
                                  "processes": mem.processes,
                                  "parts": {k: round(v) for k, v in sorted(mem.parts.items()) if v >= 1}}),
                      flush=True)
                while event.done >= next_mark[0]:
                    next_mark[0] += checkpoint_s

        if factory is None:
            done = process_file(input_path, out, settings, emit=emit)
        else:
            spec = OutputSpec(out)
            check_outputs(spec)
            done = run_job(FileSource(input_path), settings, spec, emit=emit, pipeline_factory=factory)
    print(json.dumps({"final": True, "wall_s": round(time.perf_counter() - t0, 1), "peak_mib": round(mem.peak, 1),
                      "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "realtime_factor": done.report["timing"]["realtime_factor"]}), flush=True)
    os.remove(out)


def run_child(path_kind: str, input_path: Path, checkpoint_s: float) -> list[dict]:
    cmd = [sys.executable, __file__, "--child", path_kind, "--input", str(input_path),
           "--checkpoint", str(checkpoint_s / 60)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    rows = []
    for line in proc.stdout:
        if line.startswith("{"):
            row = json.loads(line)
            rows.append(row)
            if not row.get("final"):
                print(f"  {path_kind:>5} {row['audio_s'] / 60:6.1f} min  wall {row['wall_s']:7.1f} s  "
                      f"now {row['mib']:7.1f} MiB  peak so far {row['peak_mib']:7.1f} MiB"
                      + (f"  ({row['processes']} processes: "
                         + ", ".join(f"{k} {v}" for k, v in row["parts"].items()) + ")" if path_kind == "ray" else ""),
                      flush=True)
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise RuntimeError(f"{path_kind} child failed:\n{err[-3000:]}")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", default="8", help="length(s) of the synthetic recording, a comma list (5,30,120)")
    ap.add_argument("--checkpoint", type=float, default=1.0, help="minutes of audio between memory readings")
    ap.add_argument("--paths", default="local,ray", help="comma list of local, ray, process, serve")
    ap.add_argument("--inputs", type=Path, help="keep the synthetic inputs in this folder and reuse them")
    ap.add_argument("--json", type=Path, help="append one JSON line per (path, length) result here")
    ap.add_argument("--child", choices=["local", "ray"], help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.input, args.checkpoint * 60)
        return
    kinds = [p.strip() for p in args.paths.split(",") if p.strip()]
    lengths = [float(m) for m in str(args.minutes).split(",") if m.strip()]
    for minutes in lengths:
        run_length(minutes, kinds, args)
    if len(lengths) > 1:
        print_ratios(args.json)


def run_length(minutes: float, kinds: list[str], args) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        src = Path(tmp) / "concert.wav"
        if args.inputs:
            args.inputs.mkdir(parents=True, exist_ok=True)
            src = args.inputs / f"concert-{minutes:g}min.wav"
        t = time.perf_counter()
        if not src.exists():
            part = src.with_suffix(".part.wav")
            write_synthetic_concert(part, minutes * 60)
            part.rename(src)
        print(f"input: {minutes:g} min synthetic concert, {src.stat().st_size / 2**20:.0f} MiB WAV "
              f"(written in {time.perf_counter() - t:.1f} s); DSP separator, balanced preset", flush=True)
        for kind in kinds:
            if kind in ("process", "serve"):
                from benchmarks.cli_memory import run_cli_path

                row = run_cli_path(kind, src, Path(tmp), minutes)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(row) + "\n")
                continue
            rows = run_child(kind, src, args.checkpoint * 60)
            marks = [r for r in rows if not r.get("final")]
            final = rows[-1]
            what = "RSS of the process" if kind == "local" else "PSS sum, driver + Ray processes"
            print(f"{kind}: {what}; wall {final['wall_s']} s ({final['realtime_factor']:.2f}x real time); "
                  f"peak {final['peak_mib']} MiB" + (f", ru_maxrss {final['ru_maxrss_mib']} MiB" if kind == "local"
                                                     else ""))
            if len(marks) >= 2:
                first, last = marks[0], marks[-1]
                print(f"  peak after {first['audio_s'] / 60:.1f} min: {first['peak_mib']} MiB; after "
                      f"{last['audio_s'] / 60:.1f} min: {last['peak_mib']} MiB; growth "
                      f"{last['peak_mib'] - first['peak_mib']:+.1f} MiB for "
                      f"{(last['audio_s'] - first['audio_s']) / 60:.1f} more minutes")


def print_ratios(json_path: Path | None) -> None:
    """Peak of the longest input over the peak of the shortest, per CLI path (from ``--json``)."""
    if json_path is None or not json_path.exists():
        return
    rows = [json.loads(line) for line in json_path.read_text().splitlines() if line.strip()]
    for kind in sorted({r["path"] for r in rows}):
        mine = sorted((r for r in rows if r["path"] == kind), key=lambda r: r["minutes"])
        if len(mine) >= 2:
            lo, hi = mine[0], mine[-1]
            print(f"{kind}: peak tree RSS {hi['minutes']:g} min / {lo['minutes']:g} min = "
                  f"{hi['peak_rss_mib']:.0f} / {lo['peak_rss_mib']:.0f} MiB = "
                  f"{hi['peak_rss_mib'] / lo['peak_rss_mib']:.2f}x (goal <= 1.2)")


if __name__ == "__main__":
    main()
