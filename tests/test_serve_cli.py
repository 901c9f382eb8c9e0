"""``resonate serve`` as a service manager sees it, through the entry point in a subprocess:
start-up without Ray's notices, SIGTERM/SIGINT a clean stop (one line, exit 0), a busy port
one line and exit 2."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from net_fixtures import free_port, http_status

ROOT = Path(__file__).resolve().parents[1]


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "RESONATE_OUTPUT_DIR": str(tmp_path / "out"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "resonate_stream", "serve", "--port", str(port), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def _wait_listening(proc: subprocess.Popen, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while http_status(port) != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate(10)
            pytest.fail(f"`resonate serve` did not start:\n{out}\n{err}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen, sig: int) -> tuple[int, str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(10)
        pytest.fail(f"`resonate serve` did not stop on {signal.Signals(sig).name}:\n{out}\n{err}")
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_in_process_serve_stops_cleanly_on_a_signal(tmp_path, sig):
    proc, port = _start(tmp_path, "--in-process")
    _wait_listening(proc, port, 60)
    rc, out, err = _stop(proc, sig)
    assert rc == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("Resonate gateway: ws://127.0.0.1:") and lines[-1] == \
        f"Resonate gateway stopped ({signal.Signals(sig).name})"
    assert http_status(port, timeout=1) is None  # nothing listens any more


@pytest.mark.slow
def test_ray_serve_starts_quietly_and_stops_on_sigterm(tmp_path):
    """Local Ray: no token-authentication notice at start-up, no native stack dump on SIGTERM."""
    proc, port = _start(tmp_path)
    _wait_listening(proc, port, 180)
    time.sleep(1.0)  # let whatever Ray prints after start-up arrive
    rc, out, err = _stop(proc, signal.SIGTERM)
    assert rc == 0, err
    assert "Traceback" not in err and "Token authentication" not in err and "SIGTERM received" not in err, err
    assert "RAY_AUTH_MODE" not in err and "token-auth" not in err, err
    assert out.strip().splitlines()[-1] == "Resonate gateway stopped (SIGTERM)"


def test_serve_on_a_busy_port_is_one_line_through_the_entry_point(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "resonate_stream", "serve", "--port", str(port)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""  # no banner, Ray never started
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error [port_in_use]: ") and str(port) in err[0], done.stderr
