"""Real network helpers for end-to-end tests: a ``resonate serve`` subprocess and
a TCP relay that can cut connections like a failing network.

Nothing here fakes the system under test: :class:`GatewayProcess` runs the
real command line, :class:`CuttingProxy` forwards real bytes.
"""
from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port: int, path: str = "/health", timeout: float = 2.0) -> Optional[int]:
    """Status of ``GET path`` on 127.0.0.1:``port`` (no proxies), or None when nothing answers."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


class GatewayProcess:
    """``resonate serve --in-process --port <free>`` in a subprocess, results in ``output_dir``.

    Use as a context manager; it waits until ``/health`` answers (up to
    ``start_timeout_s``) and stops the process (SIGINT, then SIGKILL) on exit.
    """

    def __init__(self, output_dir: Path, *, extra_args: tuple[str, ...] = (), start_timeout_s: float = 60.0):
        self.output_dir = Path(output_dir)
        self.port = free_port()
        self.extra_args = extra_args
        self.start_timeout_s = start_timeout_s
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.output_dir / "serve.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def __enter__(self) -> "GatewayProcess":
        self.output_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "RESONATE_OUTPUT_DIR": str(self.output_dir), "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "resonate_stream", "serve", "--in-process", "--port", str(self.port),
               *self.extra_args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout_s
        while http_status(self.port) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"`resonate serve` did not start:\n{self.log()}")
            time.sleep(0.2)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class CuttingProxy:
    """A TCP relay on 127.0.0.1 in front of ``target_port`` that can cut connections.

    ``cut_after_bytes``: the first connection whose server-to-client traffic
    passes that many bytes is aborted (both sides, no close handshake), like
    a dropped network; later connections are relayed untouched. :meth:`cut_all`
    aborts every open connection now. ``cuts`` counts the connections cut.
    Runs its own event loop in a thread; use as a context manager.
    """

    def __init__(self, target_port: int, cut_after_bytes: Optional[int] = None):
        self.target_port = target_port
        self.cut_after_bytes = cut_after_bytes
        self.port = 0
        self.cuts = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cutting-proxy", daemon=True)
        self._server: Optional[asyncio.base_events.Server] = None
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    def __enter__(self) -> "CuttingProxy":
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            c_writer.transport.abort()
            return
        pair = (c_writer, s_writer)
        self._open.add(pair)
        state = {"down": 0}

        def cut() -> None:
            self.cuts += 1
            for w in pair:
                w.transport.abort()

        async def pipe(reader, writer, downstream: bool) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
                    if downstream:
                        state["down"] += len(data)
                        limit = self.cut_after_bytes
                        if limit is not None and state["down"] >= limit:
                            self.cut_after_bytes = None  # only once
                            cut()
                            return
            except (ConnectionError, OSError):
                pass
            finally:
                if not writer.transport.is_closing():
                    writer.close()

        try:
            await asyncio.gather(pipe(c_reader, s_writer, False), pipe(s_reader, c_writer, True))
        finally:
            self._open.discard(pair)

    def cut_all(self) -> int:
        """Abort every open connection; returns how many."""
        async def _cut() -> int:
            n = 0
            for pair in list(self._open):
                n += 1
                self.cuts += 1
                for w in pair:
                    w.transport.abort()
            return n

        return asyncio.run_coroutine_threadsafe(_cut(), self._loop).result(5)

    def __exit__(self, *exc) -> None:
        async def _stop() -> None:
            for pair in list(self._open):
                for w in pair:
                    w.transport.abort()
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
