"""Helpers for benchmarks that run the real ``resonate`` commands as child processes.

* :func:`resonate` is the command line of ``resonate`` from this source tree
  (``python -m resonate_stream``), :func:`bench_env` its environment (this
  tree first on ``PYTHONPATH``, stem cache and job results in a temp folder).
* :class:`TreeMemory` samples the memory of whole process trees (the given
  roots and every process below them) in a thread: the sum of RSS and the sum
  of PSS (shared pages, such as Ray's object store, split between the
  processes that map them instead of counted in each).
* :func:`start_serve` starts ``resonate serve`` on a free port and waits for
  ``GET /health`` to answer; :func:`stop_serve` stops it with SIGTERM.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def resonate(*args: str) -> list[str]:
    return [sys.executable, "-m", "resonate_stream", *args]


def bench_env(tmp: Path, threads: int | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["RESONATE_CACHE_DIR"] = str(tmp / "cache")
    env["RESONATE_OUTPUT_DIR"] = str(tmp / "jobs")
    if threads is not None:
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[k] = str(threads)
    return env


# ----------------------------------------------------------------------------- memory of process trees
def _children_map() -> dict[int, list[int]]:
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
    return children


def tree(roots: list[int]) -> list[int]:
    children, out, todo = _children_map(), [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _kb(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeriodicSampler:
    """Calls :meth:`sample` every ``period_s`` in a daemon thread while used as a context manager
    (once on entry too)."""

    def __init__(self, period_s: float = 0.25):
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        raise NotImplementedError

    def _run(self):
        while not self._stop.wait(self.period_s):
            self.sample()

    def __enter__(self):
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class TreeMemory(PeriodicSampler):
    """Peak and current RSS sum / PSS sum (MiB) over the trees below ``roots`` (mutable list)."""

    def __init__(self, roots: list[int], period_s: float = 0.25, pss: bool = True):
        super().__init__(period_s)
        self.roots, self.pss = roots, pss
        self.rss = self.peak_rss = self.peak_pss = 0.0
        self.peak_processes = 0

    def sample(self) -> float:
        pids = tree(self.roots)
        rss = sum(_kb(f"/proc/{p}/status", "VmRSS:") for p in pids) / 1024
        self.rss = rss
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_processes = max(self.peak_processes, len(pids))
        if self.pss:
            self.peak_pss = max(self.peak_pss, sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids) / 1024)
        return rss


# ----------------------------------------------------------------------------- resonate serve
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int, timeout: float = 1.0) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as r:
            return json.loads(r.read())
    except OSError:
        return None


def start_serve(env: dict, port: int | None = None, extra: tuple[str, ...] = (), timeout: float = 300.0):
    """``(process, port, seconds from spawn to /health answering ok)``; the pools are warm by then
    (``build_server`` starts the default separator pool and the stage actors before listening)."""
    port = port or free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(resonate("serve", "--port", str(port), *extra), env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            time.sleep(0.2)
            raise RuntimeError("resonate serve exited:\n" + "".join(lines)[-3000:])
        h = health(port, timeout=0.5)
        if h and h.get("status") == "ok":
            return proc, port, time.perf_counter() - t0
        time.sleep(0.05)
    stop_serve(proc)
    raise RuntimeError("resonate serve did not answer /health in time:\n" + "".join(lines)[-3000:])


def stop_serve(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
