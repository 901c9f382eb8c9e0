"""The gateway under heavy or hostile clients, over a real websocket on 127.0.0.1.

* jobs beyond ``max_jobs`` wait in a bounded queue that takes one job per
  client in turn, and the client hears its place (``queued``);
* start + cancel cycles keep the server's open descriptors and known jobs
  bounded, and a server that runs out of descriptors keeps serving;
* a big frame is decoded off the event loop: other connections are answered
  meanwhile.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgpack
import pytest

import resonate_protocol as P
from resonate_protocol import ErrorCode as E
from resonate_stream.gateway.server import GatewayServer
from test_gateway_support import GainBackend, RawClient, make_signal

SR = 44100
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _server(tmp_path, **limits) -> GatewayServer:
    lim = P.Limits(max_frame_bytes=P.MiB, max_chunk_bytes=512 * 1024, **limits)
    return GatewayServer("127.0.0.1", 0, backend=GainBackend(), limits=lim, spool_dir=tmp_path / "spool",
                         ping_interval_s=None)


async def _upload_job(c: RawClient, seconds: float, ref: str) -> tuple[str, bytes, list]:
    """Start a PCM upload job (it runs only once its bytes arrive); returns (job_id, data, other messages)."""
    x = make_signal(seconds, SR, seed=len(ref))
    data = P.audio_to_bytes(x)
    await c.send(P.StartJob(
        input=P.UploadInput(format="pcm_f32le", sample_rate=SR, channels=2, size=len(data)),
        settings={"preset": "test"}, ref=ref))
    acc = await c.recv_until(lambda m: isinstance(m, (P.JobAccepted, P.Error)) and m.ref == ref)
    assert isinstance(acc, P.JobAccepted), acc
    return acc.job_id, data, []


async def _queued(c: RawClient, job_id: str) -> P.Queued:
    return await c.recv_until(lambda m: isinstance(m, P.Queued) and m.job_id == job_id)


async def test_jobs_wait_in_a_fair_queue_and_hear_their_place(tmp_path):
    srv = _server(tmp_path, max_jobs=1, max_queued=3)
    await srv.start()
    a = await RawClient.connect(srv.url)
    b = await RawClient.connect(srv.url)
    try:
        a1, a1_data, _ = await _upload_job(a, 0.5, "a1")  # runs (waits for its upload)
        a2, a2_data, _ = await _upload_job(a, 0.5, "a2")
        assert (await _queued(a, a2)).position == 1
        a3, a3_data, _ = await _upload_job(a, 0.5, "a3")
        assert (await _queued(a, a3)).position == 2
        b1, b1_data, _ = await _upload_job(b, 0.5, "b1")
        # one job per client in turn: b1 goes ahead of a's second waiting job
        q = await _queued(b, b1)
        assert (q.position, q.waiting) == (2, 3)
        q = await _queued(a, a3)
        assert (q.position, q.waiting) == (3, 3)
        # the queue is full: the next start_job is refused at once
        await b.send(P.StartJob(input=P.UploadInput(format="encoded"), ref="b2"))
        err = await b.recv_until(lambda m: isinstance(m, P.Error) and m.ref == "b2")
        assert err.code == E.TOO_MANY_JOBS and "queue" in err.message
        # uploads may be sent while a job waits
        await a.upload(a2, a2_data, [])
        await b.upload(b1, b1_data, [])
        await a.upload(a3, a3_data, [])
        # a cancelled waiting job leaves the queue; the others move up
        await a.send(P.Cancel(job_id=a3))
        err = await a.recv_until(lambda m: isinstance(m, P.Error) and m.job_id == a3)
        assert err.code == E.CANCELLED
        # the running job ends: a2 starts (position 0), b1 is next
        await a.upload(a1, a1_data, [])
        started = await a.recv_until(lambda m: isinstance(m, P.Queued) and m.job_id == a2 and m.position == 0)
        assert started.position == 0
        for c, job in ((a, a2), (b, b1)):
            _, term = await c.collect(job)
            assert isinstance(term, P.JobDone), term
        assert srv.queued_jobs() == 0 and srv.running_jobs() == 0
    finally:
        await a.close()
        await b.close()
        await asyncio.wait_for(srv.close(), 15)


async def test_the_queue_takes_clients_in_turn(tmp_path):
    """Client a queues three jobs, then b and c one each: they start a, b, c, a, a."""
    srv = _server(tmp_path, max_jobs=1, max_queued=8)
    await srv.start()
    clients = {k: await RawClient.connect(srv.url) for k in "abc"}
    try:
        first, first_data, _ = await _upload_job(clients["a"], 0.2, "first")  # holds the one slot
        jobs = []
        for name, ref in (("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("c", "c1")):
            job_id, data, _ = await _upload_job(clients[name], 0.2, ref)
            await clients[name].upload(job_id, data, [])
            jobs.append((name, ref, job_id))
        await clients["a"].upload(first, first_data, [])
        order = []
        pending = {job_id: (name, ref) for name, ref, job_id in jobs}

        async def watch(name):
            c = clients[name]
            while any(n == name for n, _ in pending.values()):
                m = await c.recv(10)
                if isinstance(m, P.Queued) and m.position == 0:
                    order.append(pending[m.job_id][1])
                if isinstance(m, (P.JobDone, P.Error)) and m.job_id in pending:
                    assert isinstance(m, P.JobDone), m
                    del pending[m.job_id]

        await asyncio.wait_for(asyncio.gather(*(watch(n) for n in "abc")), 30)
        assert order == ["a1", "b1", "c1", "a2", "a3"]
    finally:
        for c in clients.values():
            await c.close()
        await asyncio.wait_for(srv.close(), 15)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_start_and_cancel_cycles_keep_descriptors_and_jobs_bounded(tmp_path):
    srv = GatewayServer("127.0.0.1", 0, backend=GainBackend(), spool_dir=tmp_path / "spool",
                        ping_interval_s=None, max_known_jobs=40,
                        limits=P.Limits(max_frame_bytes=P.MiB, max_chunk_bytes=512 * 1024))
    await srv.start()
    c = await RawClient.connect(srv.url)
    try:
        async def cycle(i: int) -> None:
            job_id, data, _ = await _upload_job(c, 0.1, f"r{i}")
            await c.send(P.UploadChunk(job_id=job_id, index=0, data=data[:4096]))  # part of it, then give up
            await c.send(P.Cancel(job_id=job_id))
            err = await c.recv_until(lambda m: isinstance(m, P.Error) and m.job_id == job_id)
            assert err.code == E.CANCELLED

        for i in range(10):  # warm up: threads, buffers, first imports
            await cycle(i)
        before = _open_fds()
        for i in range(10, 130):
            await cycle(i)
        for _ in range(100):  # the cancelled workers' threads end
            if srv.running_jobs() == 0:
                break
            await asyncio.sleep(0.05)
        assert _open_fds() - before < 16
        assert len(srv.jobs) <= 40
        # the server still runs jobs
        job_id, data, _ = await _upload_job(c, 0.3, "last")
        await c.upload(job_id, data, [])
        _, term = await c.collect(job_id)
        assert isinstance(term, P.JobDone), term
    finally:
        await c.close()
        await asyncio.wait_for(srv.close(), 15)


SERVER_SCRIPT = textwrap.dedent("""
    import asyncio, logging, os, resource, sys
    sys.path.insert(0, {tests!r})
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from resonate_stream.gateway.server import GatewayServer
    from test_gateway_support import GainBackend

    async def main():
        srv = GatewayServer("127.0.0.1", 0, backend=GainBackend(), ping_interval_s=None)
        await srv.start()
        used = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 12, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        print(srv.port, flush=True)
        await asyncio.Future()

    asyncio.run(main())
""")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_a_server_out_of_descriptors_keeps_serving(tmp_path):
    import socket

    from test_gateway_support import http_get

    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT.format(tests=str(TESTS))], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=err)
    flood: list[socket.socket] = []
    try:
        port = int(await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60))
        url = f"ws://127.0.0.1:{port}/ws"
        c = await RawClient.connect(url)
        for _ in range(40):  # more connections than descriptors: accept() fails with EMFILE
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            flood.append(s)
        await asyncio.sleep(1.5)  # the server tries to accept them, and backs off
        # a job asked for now is either accepted or refused cleanly; never an internal error
        await c.send(P.StartJob(input=P.UploadInput(format="encoded"), ref="busy"))
        m = await c.recv_until(lambda m: isinstance(m, (P.JobAccepted, P.Error)), timeout=15)
        if isinstance(m, P.Error):
            assert m.code in (E.SERVER_BUSY,), m
        else:
            await c.send(P.Cancel(job_id=m.job_id))
        for s in flood:
            s.close()
        flood.clear()
        # once descriptors are free again the server answers as before
        status = None
        for _ in range(40):
            try:
                status, _, body = await http_get("127.0.0.1", port, "/health", timeout=2)
                break
            except (OSError, asyncio.TimeoutError, TimeoutError):
                await asyncio.sleep(0.5)
        assert status == 200
        c2 = await RawClient.connect(url)
        job_id, data, _ = await _upload_job(c2, 0.3, "after")
        await c2.upload(job_id, data, [])
        _, term = await c2.collect(job_id)
        assert isinstance(term, P.JobDone), term
        await c2.close()
        await c.close()
        assert proc.poll() is None  # still running
    finally:
        for s in flood:
            s.close()
        proc.terminate()
        proc.wait(10)
    text = log.read_text(errors="replace")
    assert "out of file descriptors" in text
    assert text.count("out of file descriptors") <= 3  # one line per 10 s, not one per attempt
    assert "socket.accept() out of system resource" not in text  # asyncio's traceback per attempt


async def test_a_big_frame_is_decoded_off_the_event_loop(tmp_path):
    """While one connection's 8 MiB frame of four million strings is decoded, another
    connection's pings are answered: pongs arrive between the big frame and its answer."""
    srv = GatewayServer("127.0.0.1", 0, backend=GainBackend(), spool_dir=tmp_path / "spool", ping_interval_s=None)
    await srv.start()
    a = await RawClient.connect(srv.url)
    b = await RawClient.connect(srv.url)
    try:
        junk = [["a"] * 65536 for _ in range(63)]  # under the container limits, ~0.15 s or more to decode
        big = msgpack.packb({"type": "ping", "v": 1, "data": 7, "junk": junk}, use_bin_type=True)
        assert len(big) <= P.Limits().max_frame_bytes
        await a.send_raw(big)
        answered = asyncio.create_task(a.recv(30))
        pongs = 0
        while not answered.done():
            await b.send(P.Ping(data=pongs))
            pong = await b.recv(30)
            assert isinstance(pong, P.Pong)
            if not answered.done():
                pongs += 1
        assert isinstance(answered.result(), P.Pong) and answered.result().data == 7
        assert pongs >= 3  # decoded on the loop, no pong (at most the one already in flight) could arrive
    finally:
        await a.close()
        await b.close()
        await asyncio.wait_for(srv.close(), 15)
