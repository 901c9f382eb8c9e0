"""Downloading a finished job's files: websocket ``fetch`` / ``file_chunk`` and
``GET /jobs/<job_id>/<kind>``, over a real gateway on 127.0.0.1.

The jobs are real (the gain backend of ``test_gateway_support`` decodes,
processes and writes a WAV file); every wait is bounded by a timeout.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clients.python_client import JobDone, ProtocolError, ResonateClient
import resonate_protocol as P
from resonate_protocol import ErrorCode as E
from resonate_stream.events import Finished
from resonate_stream.gateway.server import GatewayServer
from test_gateway_support import GainBackend, RawClient, gain_of, http_get, make_signal

SR = 44100
LIMITS = P.Limits(max_frame_bytes=2 * P.MiB, max_chunk_bytes=256 * 1024, max_upload_bytes=64 * P.MiB, max_jobs=4)
CHUNK = P.FILE_CHUNK_BYTES


class FilesBackend:
    """A real backend that writes small files and lists them in ``Finished.outputs``,
    including entries that must never be served: a file outside the job's folder,
    a symlink pointing out of it, a URL and a file that is deleted after the job."""

    def __init__(self, outside: Path):
        self.outside = outside

    def start(self, job_id, spec, source, emit, cancel) -> None:
        good = spec.out_dir / "notes.json"
        good.write_text('{"ok": true}')
        link = spec.out_dir / "link.wav"
        os.symlink(self.outside, link)
        gone = spec.out_dir / "gone.wav"
        gone.write_bytes(b"RIFF")
        gone.unlink()
        emit(Finished(report={}, outputs={
            "report": str(good), "outside": str(self.outside), "link": str(link),
            "url": "https://example.org/x.wav", "gone": str(gone), "folder": str(spec.out_dir),
        }))


@pytest.fixture
async def server(tmp_path):
    srv = GatewayServer("127.0.0.1", 0, backend=GainBackend(), limits=LIMITS, spool_dir=tmp_path / "spool",
                        ping_interval_s=None)
    await srv.start()
    try:
        yield srv
    finally:
        await asyncio.wait_for(srv.close(), 15)


async def _finished_job(client: ResonateClient, seconds: float = 20.0, **overrides) -> tuple[str, JobDone]:
    """Run a gain job on ``seconds`` of stereo audio; return its id and job_done."""
    x = make_signal(seconds, SR, seed=5)
    job = await client.start_job({"overrides": {"block_frames": 44100, **overrides}}, upload_array=x, sample_rate=SR)
    done = None
    async for ev in client.events(job, timeout=30):
        if isinstance(ev, JobDone):
            done = ev
        elif isinstance(ev, P.Error):
            raise ev.to_exception()
    assert done is not None
    return job, done


# --------------------------------------------------------------------------- #
# Python client
# --------------------------------------------------------------------------- #

async def test_download_writes_the_exact_file_atomically(server, tmp_path):
    async with asyncio.timeout(60):
        async with ResonateClient(server.url) as client:
            job, done = await _finished_job(client)
            server_file = Path(done.outputs["mix"])
            progress: list[tuple[int, int]] = []
            (tmp_path / "dl").mkdir()
            target = tmp_path / "dl" / "got.wav"
            target.write_bytes(b"old content")  # replaced only when the download is complete
            res = await client.download(job, "mix", target, on_progress=lambda d, n: progress.append((d, n)))

    expected = server_file.read_bytes()
    assert len(expected) > 4 * CHUNK  # several pieces
    assert target.read_bytes() == expected
    assert (res.size, res.filename, res.mime, res.reconnects) == (len(expected), "mix.wav", "audio/wav", 0)
    assert [d for d, _ in progress] == sorted({d for d, _ in progress}) and progress[-1] == (res.size, res.size)
    assert len(progress) == -(-res.size // CHUNK)  # pieces of at most 256 KiB
    y, sr = sf.read(str(target), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(y.T, make_signal(20.0, SR, seed=5) * gain_of(-6.0))
    assert [p.name for p in target.parent.iterdir()] == ["got.wav"]  # no temp file left


async def test_download_resumes_by_offset_after_the_connection_drops(server, tmp_path):
    async with asyncio.timeout(60):
        client = ResonateClient(server.url)
        await client.connect()
        job, done = await _finished_job(client)
        dropped = []

        def drop_once(received: int, size: int) -> None:
            if not dropped and received >= 3 * CHUNK and client._ws is not None:
                dropped.append(received)
                client._ws.transport.abort()  # no close handshake: like a dead network

        res = await client.download(job, "mix", tmp_path / "got.wav", on_progress=drop_once)
        await client.close()

    expected = Path(done.outputs["mix"]).read_bytes()
    assert (tmp_path / "got.wav").read_bytes() == expected
    assert res.reconnects == 1
    # it went on from where it was (bytes already written are not fetched again)
    assert dropped[0] <= res.resumed_from[0] < len(expected)
    assert res.resumed_from[0] % CHUNK == 0


async def test_download_errors_are_typed_and_leave_no_file(server, tmp_path):
    async with asyncio.timeout(60):
        async with ResonateClient(server.url) as client:
            job, _ = await _finished_job(client, seconds=2.0)
            tmp_path = tmp_path / "dl"
            tmp_path.mkdir()
            with pytest.raises(ProtocolError) as err:
                await client.download(job, "master", tmp_path / "x.wav")
            assert err.value.code == E.UNKNOWN_OUTPUT and "mix" in err.value.message
            with pytest.raises(ProtocolError) as err:
                await client.download("f" * 32, "mix", tmp_path / "x.wav")
            assert err.value.code == E.UNKNOWN_JOB
            # a job still running has no files yet
            slow = await client.start_job({"overrides": {"block_frames": 4410, "block_delay_s": 0.2}},
                                          upload_array=make_signal(3.0, SR), sample_rate=SR)
            with pytest.raises(ProtocolError) as err:
                await client.download(slow, "mix", tmp_path / "x.wav")
            assert err.value.code == E.OUTPUT_NOT_READY
            await client.cancel(slow)
            # the connection is still good after the errors
            res = await client.download(job, "mix", tmp_path / "ok.wav")
    assert res.size > 0 and not (tmp_path / "x.wav").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.wav"]


# --------------------------------------------------------------------------- #
# Protocol level
# --------------------------------------------------------------------------- #

async def _fetch_all(raw: RawClient, job: str, kind: str, offset: int, ref: str) -> list[P.FileChunk]:
    await raw.send(P.Fetch(job_id=job, kind=kind, offset=offset, ref=ref))
    chunks: list[P.FileChunk] = []
    while True:
        m = await raw.recv_until(lambda m: isinstance(m, (P.FileChunk, P.Error)) and m.ref == ref)
        if isinstance(m, P.Error):
            raise m.to_exception()
        chunks.append(m)
        if m.eof:
            return chunks


async def test_fetch_from_an_offset_sends_the_rest_in_bounded_pieces(server):
    async with asyncio.timeout(60):
        async with ResonateClient(server.url) as client:
            job, done = await _finished_job(client, seconds=5.0)
        expected = Path(done.outputs["mix"]).read_bytes()
        raw = await RawClient.connect(server.url)
        offset = 1234567 % len(expected)
        chunks = await _fetch_all(raw, job, "mix", offset, "a")
        tail = await _fetch_all(raw, job, "mix", len(expected), "b")  # nothing left: one empty, final piece
        await raw.close()

    assert chunks[0].offset == offset
    assert all(c.offset == chunks[i - 1].offset + len(chunks[i - 1].data) for i, c in enumerate(chunks) if i)
    assert all(len(c.data) <= CHUNK for c in chunks) and [c.eof for c in chunks][-1] is True
    assert b"".join(c.data for c in chunks) == expected[offset:]
    assert {(c.size, c.filename, c.mime, c.kind, c.job_id) for c in chunks} == {
        (len(expected), "mix.wav", "audio/wav", "mix", job)}
    assert [(t.offset, t.data, t.eof) for t in tail] == [(len(expected), b"", True)]


async def test_fetch_refusals_carry_the_ref_and_stable_codes(tmp_path):
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"RIFF-secret")
    srv = GatewayServer("127.0.0.1", 0, backend=FilesBackend(outside), spool_dir=tmp_path / "spool",
                        ping_interval_s=None)
    await srv.start()
    try:
        async with asyncio.timeout(30):
            raw = await RawClient.connect(srv.url)
            await raw.send(P.StartJob(input=P.UploadInput(format="encoded", filename="x.wav"), ref="s"))
            acc = await raw.recv_until(lambda m: isinstance(m, P.JobAccepted))
            await raw.send(P.UploadEnd(job_id=acc.job_id))
            await raw.recv_until(lambda m: isinstance(m, P.JobDone))
            job = acc.job_id

            expected = {"outside": E.OUTPUT_UNAVAILABLE, "link": E.OUTPUT_UNAVAILABLE, "url": E.OUTPUT_UNAVAILABLE,
                        "gone": E.OUTPUT_UNAVAILABLE, "folder": E.OUTPUT_UNAVAILABLE, "stem_x": E.UNKNOWN_OUTPUT}
            for kind, code in expected.items():
                await raw.send(P.Fetch(job_id=job, kind=kind, ref=f"r-{kind}"))
                err = await raw.recv_until(lambda m: isinstance(m, (P.Error, P.FileChunk)))
                assert isinstance(err, P.Error) and (err.code, err.ref, err.job_id) == (code, f"r-{kind}", None), err
                assert "secret" not in err.message
            await raw.send(P.Fetch(job_id=job, kind="report", offset=100, ref="far"))
            err = await raw.recv_until(lambda m: isinstance(m, (P.Error, P.FileChunk)))
            assert (err.code, err.ref) == (E.BAD_RANGE, "far")
            await raw.send(P.Fetch(job_id="0" * 32, kind="report", ref="nojob"))
            err = await raw.recv_until(lambda m: isinstance(m, (P.Error, P.FileChunk)))
            assert (err.code, err.ref, err.job_id) == (E.UNKNOWN_JOB, "nojob", "0" * 32)
            # the allowed one still works on the same connection
            chunks = await _fetch_all(raw, job, "report", 0, "ok")
            assert b"".join(c.data for c in chunks) == b'{"ok": true}' and chunks[0].mime == "application/json"
            await raw.close()
    finally:
        await asyncio.wait_for(srv.close(), 15)


async def test_a_client_that_does_not_read_holds_back_the_file_not_server_memory(server):
    async with asyncio.timeout(60):
        async with ResonateClient(server.url) as client:
            job, done = await _finished_job(client, seconds=40.0)  # a 14 MB file
        size = os.path.getsize(done.outputs["mix"])
        raw = await RawClient.connect(server.url)
        raw.ws.transport.pause_reading()  # this client stops reading from its socket
        await raw.send(P.Fetch(job_id=job, kind="mix", ref="slow"))
        await asyncio.sleep(1.0)
        conn = next(c for c in server._connections if c.fetches)
        queued = conn.outbox._q.qsize()
        task = next(iter(conn.fetches.values()))
        assert not task.done()  # the sender waits for the client...
        assert queued <= server.data_slots  # ...with at most data_slots pieces in memory
        raw.ws.transport.resume_reading()
        chunks = await _fetch_all(raw, job, "mix", 0, "again")  # a new fetch of the same file replaces the old
        await raw.close()
    assert sum(len(c.data) for c in chunks) == size and task.done()


# --------------------------------------------------------------------------- #
# HTTP route
# --------------------------------------------------------------------------- #

async def test_http_download_route(tmp_path):
    token = "s3cret-token-123"
    srv = GatewayServer("127.0.0.1", 0, token=token, backend=GainBackend(), limits=LIMITS,
                        spool_dir=tmp_path / "spool", ping_interval_s=None, http_download_max_bytes=2 * P.MiB)
    await srv.start()
    try:
        async with asyncio.timeout(60):
            async with ResonateClient(srv.url, token=token) as client:
                small, done_small = await _finished_job(client, seconds=2.0)
                big, _ = await _finished_job(client, seconds=8.0)  # 2.8 MB > the 2 MiB cap
            host, port = "127.0.0.1", srv.port
            status, headers, body = await http_get(host, port, f"/jobs/{small}/mix?token={token}")
            assert status == 200 and body == Path(done_small.outputs["mix"]).read_bytes()
            assert headers["content-type"] == "audio/wav"
            assert headers["content-disposition"].startswith('attachment; filename="mix.wav"')
            for path, want in [
                (f"/jobs/{small}/mix", 401),  # no token
                (f"/jobs/{small}/mix?token=wrong-token-0", 401),
                (f"/jobs/{big}/mix?token={token}", 413),  # use the websocket fetch instead
                (f"/jobs/{small}/master?token={token}", 404),
                (f"/jobs/{'0' * 32}/mix?token={token}", 404),
                (f"/jobs/{small}/..%2f..%2fetc?token={token}", 404),
            ]:
                status, _, body = await http_get(host, port, path)
                assert status == want, (path, status, body)
            status, _, body = await http_get(host, port, f"/jobs/{big}/mix?token={token}")
            assert b"too_large_for_http" in body and b"fetch" in body
    finally:
        await asyncio.wait_for(srv.close(), 15)
