"""The Python client library against a real gateway on 127.0.0.1."""
from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import pytest
import soundfile as sf

from clients.python_client import (
    Info,
    AudioBlock,
    ConnectionLost,
    Error,
    JobDone,
    Progress,
    ProtocolError,
    ResonateClient,
)
from clients.file_stream import stream_to_file
import resonate_protocol as P
from resonate_protocol import ErrorCode as E
from resonate_stream.gateway.server import GatewayServer
from test_gateway_support import GainBackend, gain_of, make_signal

SR = 44100
LIMITS = P.Limits(max_frame_bytes=2 * P.MiB, max_chunk_bytes=256 * 1024, max_upload_bytes=32 * P.MiB, max_jobs=4)


@pytest.fixture
async def server(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    srv = GatewayServer("127.0.0.1", 0, backend=GainBackend(), limits=LIMITS, allowed_roots=[media],
                        spool_dir=tmp_path / "spool", ping_interval_s=None)
    await srv.start()
    try:
        yield srv
    finally:
        await asyncio.wait_for(srv.close(), 15)


def _digest(path) -> tuple[str, np.ndarray]:
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == SR
    return hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest(), y.T


async def test_events_of_an_uploaded_array(server):
    x = make_signal(2.0, SR)
    async with asyncio.timeout(20):
        async with ResonateClient(server.url) as client:
            assert client.limits == LIMITS
            assert await client.ping() >= 0.0
            job = await client.start_job({"preset": "test", "overrides": {"block_frames": 8820}},
                                         upload_array=x, sample_rate=SR, chunk_bytes=100_000)
            blocks, progress, done = [], [], None
            async for ev in client.events(job, timeout=10):
                if isinstance(ev, AudioBlock):
                    blocks.append(ev)
                elif isinstance(ev, Progress):
                    progress.append(ev)
                elif isinstance(ev, JobDone):
                    done = ev
            await client.upload_done(job)
    assert done is not None and done.report["frames"] == x.shape[1]
    assert [b.seq for b in blocks] == list(range(10))
    assert [b.offset for b in blocks] == [i * 8820 for i in range(10)]
    assert all(b.audio.dtype == np.float32 and b.audio.shape == (2, 8820) for b in blocks)
    np.testing.assert_array_equal(np.concatenate([b.audio for b in blocks], axis=1), x * gain_of(-6.0))
    assert progress and progress[-1].done == pytest.approx(2.0) and progress[-1].unit == "s"


async def test_two_clients_two_jobs_concurrently(server, tmp_path):
    x1, x2 = make_signal(2.0, SR, seed=11), make_signal(1.5, SR, seed=12)
    wav = tmp_path / "upload.wav"
    sf.write(wav, x2.T, SR, subtype="FLOAT")

    async def run(upload_kwargs, out_name, gain_db):
        async with ResonateClient(server.url) as client:
            job = await client.start_job({"overrides": {"gain_db": gain_db, "block_delay_s": 0.01}},
                                         **upload_kwargs)
            return await stream_to_file(client, job, tmp_path / out_name)

    async with asyncio.timeout(30):
        r1, r2 = await asyncio.gather(
            run(dict(upload_array=x1, sample_rate=SR), "one.wav", -3.0),
            run(dict(upload_path=wav), "two.wav", -12.0),  # an encoded (WAV) upload
        )
    _, y1 = _digest(r1.path)
    _, y2 = _digest(r2.path)
    np.testing.assert_array_equal(y1, x1 * gain_of(-3.0))
    np.testing.assert_array_equal(y2, x2 * gain_of(-12.0))
    assert r1.frames == x1.shape[1] and r2.frames == x2.shape[1]
    assert server.backend.started == 2


async def test_dropped_connection_resumes_without_gaps_or_duplicates(server, tmp_path):
    x = make_signal(3.0, SR, seed=21)
    settings = {"overrides": {"block_frames": 4410, "block_delay_s": 0.01}}  # 30 blocks

    async with asyncio.timeout(30):
        # reference: an uninterrupted run
        async with ResonateClient(server.url) as client:
            job = await client.start_job(settings, upload_array=x, sample_rate=SR)
            ref = await stream_to_file(client, job, tmp_path / "ref.wav")
        assert ref.reconnects == 0 and ref.blocks == 30

        # the same job, with the network dropping twice mid-stream
        client = ResonateClient(server.url)
        await client.connect()
        job = await client.start_job(settings, upload_array=x, sample_rate=SR)
        await client.upload_done(job)
        seen: list[int] = []

        def drop_sometimes(ev):
            if isinstance(ev, AudioBlock):
                seen.append(ev.seq)
                if ev.seq in (4, 17) and client._ws is not None:
                    client._ws.transport.abort()  # no close handshake: like a dead network

        res = await stream_to_file(client, job, tmp_path / "resumed.wav", on_event=drop_sometimes)
        await client.close()

    assert res.reconnects == 2
    assert seen == list(range(30))  # every block exactly once, in order
    d_ref, y_ref = _digest(ref.path)
    d_res, y_res = _digest(res.path)
    assert d_res == d_ref
    np.testing.assert_array_equal(y_res, x * gain_of(-6.0))
    assert res.time_to_first_audio_s is not None and 0 < res.time_to_first_audio_s < 10
    assert not list(tmp_path.glob(".*.part*"))  # temp files renamed away


async def test_events_raise_connection_lost_then_resume(server):
    x = make_signal(2.0, SR)
    async with asyncio.timeout(20):
        client = ResonateClient(server.url)
        await client.connect()
        job = await client.start_job({"overrides": {"block_frames": 4410, "block_delay_s": 0.02}},
                                     upload_array=x, sample_rate=SR)
        got = []
        with pytest.raises(ConnectionLost):
            async for ev in client.events(job, timeout=10):
                if isinstance(ev, AudioBlock):
                    got.append(ev)
                    if len(got) == 3:
                        await client._ws.close()  # a clean close counts too
        await client.reconnect()
        assert await client.resume(job) == len(got)
        async for ev in client.events(job, timeout=10):
            if isinstance(ev, AudioBlock):
                got.append(ev)
        await client.close()
    assert [b.seq for b in got] == list(range(20))
    np.testing.assert_array_equal(np.concatenate([b.audio for b in got], axis=1), x * gain_of(-6.0))


async def test_cancel_and_stems(server):
    x = make_signal(3.0, SR)
    async with asyncio.timeout(20):
        async with ResonateClient(server.url) as client:
            job = await client.start_job({"overrides": {"block_delay_s": 0.2}}, upload_array=x, sample_rate=SR,
                                         send_stems=True)
            last = None
            async for ev in client.events(job, timeout=10):
                if isinstance(ev, AudioBlock):
                    assert set(ev.stems) == {"dry", "wet"}
                    np.testing.assert_array_equal(ev.stems["wet"], ev.audio)
                    await client.cancel(job)
                last = ev
            assert isinstance(last, Error) and last.code == E.CANCELLED


async def test_client_errors_are_typed(server, tmp_path):
    async with asyncio.timeout(20):
        async with ResonateClient(server.url) as client:
            with pytest.raises(ProtocolError) as info:
                await client.start_job(input_path=str(tmp_path / "outside.wav"))
            assert info.value.code == E.PATH_NOT_ALLOWED
            with pytest.raises(ProtocolError) as info:
                await client.resume("9" * 32, 0)
            assert info.value.code == E.UNKNOWN_JOB
            # a job that fails in the backend: not audio
            bogus = tmp_path / "notes.txt"
            bogus.write_text("this is not audio")
            job = await client.start_job(upload_path=bogus)
            with pytest.raises(ProtocolError) as info:
                async for _ in client.events(job, timeout=10, raise_errors=True):
                    pass
            assert info.value.code == "not_audio"


async def test_wrong_token_is_refused_by_the_client():
    srv = GatewayServer("127.0.0.1", 0, token="right-token-0001", backend=GainBackend(), ping_interval_s=None)
    await srv.start()
    try:
        async with asyncio.timeout(10):
            with pytest.raises(ProtocolError) as info:
                await ResonateClient(srv.url, token="wrong-token-0001").connect()
            assert info.value.code == E.UNAUTHORIZED
            async with ResonateClient(srv.url, token="right-token-0001") as client:
                assert client.welcome is not None
    finally:
        await asyncio.wait_for(srv.close(), 15)


@pytest.mark.slow
async def test_real_runner_end_to_end(tmp_path):
    """The real in-process runner behind the gateway (RunnerBackend with no arguments):
    PCM upload in, restored preview streamed back, final FLAC master and report written."""
    pytest.importorskip("resonate_stream.runner")
    from resonate_stream.gateway.jobs import RunnerBackend

    srv = GatewayServer("127.0.0.1", 0, backend=RunnerBackend(), limits=LIMITS, ping_interval_s=None,
                        spool_dir=tmp_path / "spool", output_dir=tmp_path / "out")
    await srv.start()
    x = make_signal(2.0, SR, seed=31)
    infos = []
    try:
        async with asyncio.timeout(60):
            async with ResonateClient(srv.url) as client:
                job = await client.start_job({"preset": "balanced"}, upload_array=x, sample_rate=SR,
                                             output={"format": "flac", "bit_depth": 24})
                res = await stream_to_file(client, job, tmp_path / "preview.wav",
                                           on_event=lambda ev: infos.append(ev) if isinstance(ev, Info) else None)
    finally:
        await asyncio.wait_for(srv.close(), 15)
    assert res.frames == x.shape[1]  # sample-aligned with the input, nothing lost or doubled
    y, sr = sf.read(str(res.path), dtype="float32", always_2d=True)
    assert sr == SR and y.shape == (x.shape[1], 2) and np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0.01
    master = res.done.outputs["master"]
    assert master.endswith(".flac") and sf.info(master).format == "FLAC"
    assert (tmp_path / "out" / job / "report.json").is_file()
    assert any("separator" in i.message for i in infos)


async def test_served_jobs_reuse_the_stem_cache(tmp_path):
    """``build_server`` gives the gateway a stem cache: a second job on the same
    server-side file reads its stems from the cache, and its master is byte-identical."""
    from resonate_stream.serve import build_server

    media = tmp_path / "media"
    media.mkdir()
    sf.write(str(media / "clip.wav"), make_signal(3.0, SR, seed=5).T, SR, subtype="FLOAT")
    srv = build_server("127.0.0.1", 0, local_ray=False, allow=[media], output_dir=tmp_path / "out",
                       cache_dir=tmp_path / "cache", ping_interval_s=None)
    await srv.start()
    masters, caches = [], []
    try:
        async with asyncio.timeout(120):
            async with ResonateClient(srv.url) as client:
                for n in range(2):
                    job = await client.start_job({"preset": "balanced",
                                                  "overrides": {"separation": {"separator": "dsp"}}},
                                                 input_path=str(media / "clip.wav"))
                    res = await stream_to_file(client, job, tmp_path / f"preview{n}.wav")
                    masters.append(open(res.done.outputs["master"], "rb").read())
                    caches.append(res.done.report["separation"]["cache"])
    finally:
        await asyncio.wait_for(srv.close(), 15)
    assert caches == ["miss", "hit"]
    assert masters[0] == masters[1]
