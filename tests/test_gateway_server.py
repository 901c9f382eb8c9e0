"""The gateway over a real websocket on 127.0.0.1, driven at the protocol level.

Every test starts a real :class:`GatewayServer` on a free port with the real
:class:`GainBackend` (tests/test_gateway_support.py), talks msgpack frames over a
real socket, and bounds every wait with a timeout.
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import msgpack
import numpy as np
import pytest
import soundfile as sf
from websockets.exceptions import ConnectionClosed, InvalidStatus

from engine.errors import SettingsError
import resonate_protocol as P
from resonate_protocol import ErrorCode as E
from resonate_stream.gateway.server import GatewayServer, is_loopback_host
from test_gateway_support import GainBackend, RawClient, gain_of, http_get, join_audio, make_signal

SR = 44100
LIMITS = P.Limits(max_frame_bytes=1 * P.MiB, max_chunk_bytes=512 * 1024, max_upload_bytes=4 * P.MiB, max_jobs=4)


@pytest.fixture
def media(tmp_path) -> Path:
    d = tmp_path / "media"
    d.mkdir()
    return d


@pytest.fixture
async def server(tmp_path, media):
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<h1>Resonate</h1>")
    (tmp_path / "secret.txt").write_text("do not serve")
    srv = GatewayServer(
        "127.0.0.1", 0, backend=GainBackend(), limits=LIMITS, allowed_roots=[media], web_root=web,
        spool_dir=tmp_path / "spool", hello_timeout_s=2.0, ping_interval_s=None,
    )
    await srv.start()
    try:
        yield srv
    finally:
        await asyncio.wait_for(srv.close(), 15)


def _expect_error(msg, code: str) -> P.Error:
    assert isinstance(msg, P.Error), msg
    assert msg.code == code, msg
    return msg


# --------------------------------------------------------------------------- #
# HTTP on the same port
# --------------------------------------------------------------------------- #

async def test_health_endpoint_answers_plain_http(server):
    status, headers, body = await http_get("127.0.0.1", server.port, "/health")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["status"] == "ok" and doc["protocol"] == 1 and doc["max_jobs"] == LIMITS.max_jobs


async def test_static_files_are_served_and_confined(server):
    status, headers, body = await http_get("127.0.0.1", server.port, "/")
    assert status == 200 and body == b"<h1>Resonate</h1>" and headers["content-type"].startswith("text/html")
    for bad in ("/../secret.txt", "/%2e%2e/secret.txt", "/nope.js"):
        status, _, body = await http_get("127.0.0.1", server.port, bad)
        assert status == 404 and b"do not serve" not in body


# --------------------------------------------------------------------------- #
# jobs
# --------------------------------------------------------------------------- #

async def test_upload_in_pieces_round_trip(server):
    x = make_signal(2.0, SR)
    data = P.audio_to_bytes(x)
    c = await RawClient.connect(server.url)
    try:
        job = await c.start_upload_job(x, SR, overrides={"block_frames": 11025})
        # cut at odd byte positions: in the middle of samples and frames
        await c.upload(job, data, [3, 1001, 50_000, 50_001, 300_003, 512_000])
        audio, term = await c.collect(job)
    finally:
        await c.close()
    assert isinstance(term, P.JobDone), term
    assert [m.seq for m in audio] == list(range(len(audio))) == list(range(8))
    offsets = np.cumsum([0] + [m.frames for m in audio])
    assert [m.offset for m in audio] == offsets[:-1].tolist()
    assert offsets[-1] == x.shape[1]
    assert all(m.sample_rate == SR and m.channels == 2 for m in audio)
    y = join_audio(audio)
    np.testing.assert_array_equal(y, x * gain_of(-6.0))
    # the final file the backend wrote is the same audio
    mix, sr = sf.read(term.outputs["mix"], dtype="float32", always_2d=True)
    assert sr == SR
    np.testing.assert_array_equal(mix.T, y)
    assert term.report["frames"] == x.shape[1]


async def test_path_input_inside_allowed_root(server, media):
    x = make_signal(1.0, SR, seed=3)
    sf.write(media / "gig.wav", x.T, SR, subtype="FLOAT")
    c = await RawClient.connect(server.url)
    try:
        for path in (str(media / "gig.wav"), "gig.wav"):  # absolute, and relative to the first root
            await c.send(P.StartJob(input=P.PathInput(path=path), ref="p"))
            acc = await c.recv_until(lambda m: isinstance(m, (P.JobAccepted, P.Error)))
            assert isinstance(acc, P.JobAccepted), acc
            audio, term = await c.collect(acc.job_id)
            assert isinstance(term, P.JobDone)
            np.testing.assert_array_equal(join_audio(audio), x * gain_of(-6.0))
    finally:
        await c.close()


async def test_path_outside_allowed_roots_is_refused(server, media, tmp_path):
    outside = tmp_path / "private.wav"
    sf.write(outside, make_signal(0.2, SR).T, SR)
    (media / "link.wav").symlink_to(outside)
    c = await RawClient.connect(server.url)
    try:
        cases = [
            (str(outside), E.PATH_NOT_ALLOWED),
            (str(media / ".." / "private.wav"), E.PATH_NOT_ALLOWED),
            ("../private.wav", E.PATH_NOT_ALLOWED),
            (str(media / "link.wav"), E.PATH_NOT_ALLOWED),  # symlink escaping the root
            ("/etc/passwd", E.PATH_NOT_ALLOWED),
            (str(media / "missing.wav"), E.INPUT_NOT_FOUND),
        ]
        for i, (path, code) in enumerate(cases):
            await c.send(P.StartJob(input=P.PathInput(path=path), ref=f"r{i}"))
            err = _expect_error(await c.recv(), code)
            assert err.ref == f"r{i}" and err.job_id is None and not err.fatal
        assert server.backend.started == 0
        await c.send(P.Ping(data=1))
        assert await c.recv() == P.Pong(data=1)
    finally:
        await c.close()


async def test_two_jobs_on_one_connection_interleave(server):
    x1, x2 = make_signal(1.0, SR, seed=1), make_signal(1.5, SR, seed=2)
    c = await RawClient.connect(server.url)
    try:
        j1 = await c.start_upload_job(x1, SR, ref="a")
        j2 = await c.start_upload_job(x2, SR, ref="b", overrides={"gain_db": 0.0})
        await c.upload(j2, P.audio_to_bytes(x2), [100_000])
        await c.upload(j1, P.audio_to_bytes(x1), [7])
        got: dict = {j1: [], j2: []}
        done: dict = {}
        async with asyncio.timeout(15):
            while len(done) < 2:
                m = await c.recv()
                if isinstance(m, P.Audio):
                    got[m.job_id].append(m)
                elif isinstance(m, (P.JobDone, P.Error)):
                    done[m.job_id] = m
    finally:
        await c.close()
    assert all(isinstance(m, P.JobDone) for m in done.values())
    np.testing.assert_array_equal(join_audio(got[j1]), x1 * gain_of(-6.0))
    np.testing.assert_array_equal(join_audio(got[j2]), x2)


async def test_malformed_frames_fail_only_themselves(server):
    x = make_signal(2.0, SR)
    c = await RawClient.connect(server.url)
    try:
        job = await c.start_upload_job(x, SR, overrides={"block_delay_s": 0.05})
        await c.upload(job, P.audio_to_bytes(x), [200_000])
        bad = [
            (b"\xc1 not msgpack", E.MALFORMED_FRAME),
            ("a text frame", E.MALFORMED_FRAME),
            (msgpack.packb({"type": "format_disk", "v": 1}), E.UNKNOWN_MESSAGE),
            (msgpack.packb({"type": "ping", "v": 99}), E.UNSUPPORTED_VERSION),
            (msgpack.packb({"type": "resume", "v": 1, "job_id": job, "from_seq": "zero"}), E.BAD_FIELD),
            (P.encode(P.Hello()), E.UNEXPECTED_MESSAGE),
        ]
        errors, others = [], []
        for frame, _ in bad:
            await c.send_raw(frame)
        async with asyncio.timeout(10):
            while len(errors) < len(bad):
                m = await c.recv()
                (errors if isinstance(m, P.Error) else others).append(m)
        assert [e.code for e in errors] == [code for _, code in bad]
        assert all(e.job_id is None and not e.fatal for e in errors)
        # the job carries on to the end, every block intact
        audio = [m for m in others if isinstance(m, P.Audio)]
        more, term = await c.collect(job)
        assert isinstance(term, P.JobDone), term
        np.testing.assert_array_equal(join_audio(audio + more), x * gain_of(-6.0))
    finally:
        await c.close()


async def test_oversize_frames(server):
    c = await RawClient.connect(server.url)
    try:
        # above max_frame_bytes: a clear error, the connection stays usable
        await c.send_raw(b"\x00" * (LIMITS.max_frame_bytes + 10))
        _expect_error(await c.recv(), E.FRAME_TOO_LARGE)
        await c.send(P.Ping(data="still here"))
        assert await c.recv() == P.Pong(data="still here")
        # far above: the websocket layer refuses it and closes with 1009 (message too big)
        await c.send_raw(b"\x00" * (2 * LIMITS.max_frame_bytes + 10))
        with pytest.raises(ConnectionClosed) as info:
            await c.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    finally:
        await c.close()


async def test_oversize_uploads(server):
    c = await RawClient.connect(server.url)
    try:
        # declared size above the limit: refused before the job exists
        await c.send(P.StartJob(input=P.UploadInput(format="encoded", size=LIMITS.max_upload_bytes + 1), ref="big"))
        err = _expect_error(await c.recv(), E.UPLOAD_TOO_LARGE)
        assert err.ref == "big" and err.job_id is None
        # undeclared size, too many bytes: the job ends with upload_too_large
        await c.send(P.StartJob(input=P.UploadInput(format="encoded"), ref="u"))
        acc = await c.recv_until(lambda m: isinstance(m, P.JobAccepted))
        piece = b"\x00" * LIMITS.max_chunk_bytes
        for i in range(LIMITS.max_upload_bytes // len(piece) + 1):
            await c.send(P.UploadChunk(job_id=acc.job_id, index=i, data=piece))
        _, term = await c.collect(acc.job_id)
        _expect_error(term, E.UPLOAD_TOO_LARGE)
        assert term.job_id == acc.job_id
        # one chunk above max_chunk_bytes: chunk_too_large, ends that job
        await c.send(P.StartJob(input=P.UploadInput(format="encoded"), ref="c"))
        acc = await c.recv_until(lambda m: isinstance(m, P.JobAccepted))
        await c.send_raw(msgpack.packb({"type": "upload_chunk", "v": 1, "job_id": acc.job_id, "index": 0,
                                        "data": b"\x00" * (LIMITS.max_chunk_bytes + 1)}, use_bin_type=True))
        _, term = await c.collect(acc.job_id)
        _expect_error(term, E.CHUNK_TOO_LARGE)
    finally:
        await c.close()


async def test_oversized_chunk_frame_ends_its_job_at_once(server):
    c = await RawClient.connect(server.url)
    try:
        await c.send(P.StartJob(input=P.UploadInput(format="encoded"), ref="c"))
        acc = await c.recv_until(lambda m: isinstance(m, P.JobAccepted))
        big = msgpack.packb({"type": "upload_chunk", "v": 1, "job_id": acc.job_id, "index": 0,
                             "data": b"\x00" * (LIMITS.max_frame_bytes + 1)}, use_bin_type=True)
        await c.send_raw(big)
        _, term = await c.collect(acc.job_id, timeout=5)  # not after the 60 s upload idle timeout
        _expect_error(term, E.FRAME_TOO_LARGE)
    finally:
        await c.close()


async def test_long_blocks_are_split_below_the_frame_limit(server):
    x = make_signal(3.0, SR, seed=9)  # one 3 s block = 1 058 400 bytes of samples, above 1 MiB
    c = await RawClient.connect(server.url)
    try:
        for stems in (False, True):
            job = await c.start_upload_job(x, SR, overrides={"block_frames": 10 * SR}, send_stems=stems)
            await c.upload(job, P.audio_to_bytes(x), [])
            frames = []
            async with asyncio.timeout(15):
                while True:
                    raw = await asyncio.wait_for(c.ws.recv(), 5)
                    m = P.decode_server_message(raw, c.limits)
                    if isinstance(m, P.Audio):
                        assert len(raw) <= LIMITS.max_frame_bytes
                        frames.append(m)
                    elif isinstance(m, (P.JobDone, P.Error)):
                        assert isinstance(m, P.JobDone), m
                        break
            assert len(frames) >= (4 if stems else 2)
            assert [m.seq for m in frames] == list(range(len(frames)))
            assert [m.offset for m in frames] == np.cumsum([0] + [m.frames for m in frames])[:-1].tolist()
            np.testing.assert_array_equal(join_audio(frames), x * gain_of(-6.0))
            if stems:
                dry = np.concatenate([P.decode_stems(m)["dry"] for m in frames], axis=1)
                np.testing.assert_array_equal(dry, x)
    finally:
        await c.close()


async def test_bad_upload_index_fails_only_that_job(server):
    x = make_signal(1.0, SR)
    data = P.audio_to_bytes(x)
    c = await RawClient.connect(server.url)
    try:
        good = await c.start_upload_job(x, SR, ref="good")
        bad = await c.start_upload_job(x, SR, ref="bad")
        await c.send(P.UploadChunk(job_id=bad, index=0, data=data[:1000]))
        await c.send(P.UploadChunk(job_id=bad, index=2, data=data[1000:2000]))  # skipped index 1
        await c.upload(good, data, [4096])
        results = {}
        async with asyncio.timeout(10):
            while len(results) < 2:
                m = await c.recv()
                if isinstance(m, (P.JobDone, P.Error)) and m.job_id:
                    results[m.job_id] = m
        _expect_error(results[bad], E.BAD_UPLOAD)
        assert isinstance(results[good], P.JobDone)
    finally:
        await c.close()


async def test_upload_size_mismatch_at_end(server):
    x = make_signal(0.5, SR)
    c = await RawClient.connect(server.url)
    try:
        job = await c.start_upload_job(x, SR)  # declares size = len(data)
        await c.send(P.UploadChunk(job_id=job, index=0, data=P.audio_to_bytes(x)[:1024]))
        await c.send(P.UploadEnd(job_id=job, chunks=1, size=1024))
        _, term = await c.collect(job)
        _expect_error(term, E.BAD_UPLOAD)
    finally:
        await c.close()


async def test_cancel_stops_the_job(server):
    x = make_signal(3.0, SR)
    c = await RawClient.connect(server.url)
    try:
        job = await c.start_upload_job(x, SR, overrides={"block_delay_s": 0.2})
        await c.upload(job, P.audio_to_bytes(x), [])
        await c.recv_until(lambda m: isinstance(m, P.Audio))
        await c.send(P.Cancel(job_id=job))
        audio, term = await c.collect(job)
        _expect_error(term, E.CANCELLED)
        assert term.job_id == job
        assert len(audio) < 10  # far fewer than the 12 blocks of the whole input
        await c.send(P.Cancel(job_id="f" * 32))
        err = _expect_error(await c.recv(), E.UNKNOWN_JOB)
        assert err.job_id == "f" * 32
    finally:
        await c.close()
    async with asyncio.timeout(5):  # the worker thread really ends
        while server.running_jobs():
            await asyncio.sleep(0.02)


async def test_a_client_that_reads_gets_every_pong_however_fast_it_pings(server):
    """1000 pings sent at once while reading: every pong arrives, in order (issue 10: the reply
    cap applies to what the client has not read, not to what the server has not yet written)."""
    c = await RawClient.connect(server.url)
    try:
        async def pings():
            for i in range(1000):
                await c.ws.send(P.encode(P.Ping(data=i)))

        sender = asyncio.create_task(pings())
        got = [(await c.recv(10)).data for _ in range(1000)]
        await sender
        assert got == list(range(1000))
    finally:
        await c.close()


async def test_too_many_jobs(tmp_path):
    # no room to wait either (max_queued=0): the queue is full at once, so the job is refused
    srv = GatewayServer("127.0.0.1", 0, backend=GainBackend(), ping_interval_s=None,
                        limits=P.Limits(max_frame_bytes=P.MiB, max_chunk_bytes=1024, max_jobs=1, max_queued=0))
    await srv.start()
    c = await RawClient.connect(srv.url)
    try:
        await c.start_upload_job(make_signal(0.5, SR), SR, ref="one")  # waits for its upload: stays running
        await c.send(P.StartJob(input=P.UploadInput(format="encoded"), ref="two"))
        err = _expect_error(await c.recv_until(lambda m: isinstance(m, P.Error)), E.TOO_MANY_JOBS)
        assert err.ref == "two"
    finally:
        await c.close()
        await asyncio.wait_for(srv.close(), 15)


async def test_resume_replays_from_disk_exactly_once(server):
    x = make_signal(3.0, SR, seed=5)
    c1 = await RawClient.connect(server.url)
    job = await c1.start_upload_job(x, SR, overrides={"block_delay_s": 0.03})
    await c1.upload(job, P.audio_to_bytes(x), [123_457])
    first = []
    async with asyncio.timeout(10):
        while len(first) < 3:
            m = await c1.recv()
            if isinstance(m, P.Audio):
                first.append(m)
    c1.ws.transport.abort()  # the network drops, no close handshake
    await asyncio.sleep(0.2)
    c2 = await RawClient.connect(server.url)
    try:
        await c2.send(P.Resume(job_id=job, from_seq=first[-1].seq + 1))
        acc = await c2.recv_until(lambda m: isinstance(m, (P.JobAccepted, P.Error)))
        assert acc == P.JobAccepted(job_id=job, resumed_from=3)
        rest, term = await c2.collect(job)
    finally:
        await c2.close()
    assert isinstance(term, P.JobDone)
    seqs = [m.seq for m in first + rest]
    assert seqs == list(range(len(seqs)))  # every block once, no gap
    np.testing.assert_array_equal(join_audio(first + rest), x * gain_of(-6.0))


async def test_resume_after_the_job_ended_and_unknown_job(server):
    x = make_signal(1.0, SR)
    c = await RawClient.connect(server.url)
    try:
        job = await c.start_upload_job(x, SR)
        await c.upload(job, P.audio_to_bytes(x), [])
        audio, term = await c.collect(job)
        assert isinstance(term, P.JobDone)
        await c.send(P.Resume(job_id=job, from_seq=2))
        await c.recv_until(lambda m: isinstance(m, P.JobAccepted))
        again, term2 = await c.collect(job)
        assert [m.seq for m in again] == list(range(2, len(audio)))
        assert [m.data for m in again] == [m.data for m in audio[2:]]
        assert term2 == term
        await c.send(P.Resume(job_id="0" * 32, from_seq=0))
        err = _expect_error(await c.recv(), E.UNKNOWN_JOB)
        assert err.job_id == "0" * 32
    finally:
        await c.close()


async def test_slow_client_does_not_hold_the_job_or_memory(server):
    """A client that reads nothing: the job still finishes (output goes to the disk spool),
    and everything arrives intact when the client reads later."""
    x = make_signal(4.0, SR, seed=7)
    c = await RawClient.connect(server.url)
    try:
        job = await c.start_upload_job(x, SR, overrides={"block_frames": 4410})  # 40 blocks
        await c.upload(job, P.audio_to_bytes(x), [])
        async with asyncio.timeout(10):
            while server.jobs[job].state != "done":
                await asyncio.sleep(0.02)
        spool = server.jobs[job].spool
        assert spool.count == 40 and spool.nbytes > x.nbytes  # all output is on disk
        await asyncio.sleep(0.1)
        conn = next(iter(server._connections))
        assert conn.outbox._q.qsize() <= server.data_slots + 1  # only a few frames wait in memory
        audio, term = await c.collect(job)
    finally:
        await c.close()
    assert isinstance(term, P.JobDone)
    np.testing.assert_array_equal(join_audio(audio), x * gain_of(-6.0))


async def test_ack_window_limits_blocks_in_flight(server):
    x = make_signal(1.0, SR)
    c = await RawClient.connect(server.url, ack_window=2)
    try:
        job = await c.start_upload_job(x, SR, overrides={"block_frames": 4410})  # 10 blocks
        await c.upload(job, P.audio_to_bytes(x), [])
        audio: list = []

        async def audio_for(seconds: float) -> list:
            got = []
            try:
                async with asyncio.timeout(seconds):
                    while True:
                        m = await c.recv()
                        if isinstance(m, P.Audio):
                            got.append(m)
            except TimeoutError:
                pass
            return got

        audio += await audio_for(0.6)
        assert [m.seq for m in audio] == [0, 1]  # the window is full
        await c.send(P.Ack(job_id=job, seq=1))
        audio += await audio_for(0.6)
        assert [m.seq for m in audio] == [0, 1, 2, 3]
        await c.send(P.Ack(job_id=job, seq=3))
        for _ in range(20):
            more = await audio_for(0.3)
            audio += more
            if more:
                await c.send(P.Ack(job_id=job, seq=audio[-1].seq))
            if len(audio) == 10:
                break
        assert [m.seq for m in audio] == list(range(10))
    finally:
        await c.close()


async def test_runner_backend_adapter_feeds_run_job(tmp_path, media):
    """RunnerBackend (the integration point of resonate_stream.runner.run_job) hands the runner a
    FileSource for path inputs and encoded uploads, a BlockSource decoded by the engine's
    PcmPushDecoder for PCM uploads, and an OutputSpec inside the job's folder."""
    pytest.importorskip("resonate_stream.sources")
    pytest.importorskip("engine.io.pcm")
    seen = []

    def run_job(source, settings, outputs, *, emit, cancel, pipeline_factory):
        """A real (tiny) runner: gain on the engine's decoded blocks, streamed and written."""
        from resonate_stream.events import AudioChunk, Finished

        seen.append((type(source).__name__, source.info.name, settings, outputs))
        g = gain_of(float(settings.get("overrides", {}).get("gain_db", -6.0)))
        seq = offset = 0
        written = []
        for block in source.blocks():
            if cancel.is_set():
                return
            y = block * g
            emit(AudioChunk(seq=seq, offset=offset, sample_rate=SR, audio=y))
            written.append(y)
            seq, offset = seq + 1, offset + y.shape[1]
        sf.write(outputs.master, np.concatenate(written, axis=1).T, SR, subtype="FLOAT")
        emit(Finished(report={"frames": offset}, outputs={"master": str(outputs.master)}))

    from resonate_stream.gateway.jobs import RunnerBackend

    backend = RunnerBackend(run_job=run_job, make_settings=lambda spec: spec.settings, block_seconds=0.25)
    srv = GatewayServer("127.0.0.1", 0, backend=backend, allowed_roots=[media], limits=LIMITS, ping_interval_s=None)
    await srv.start()
    x = make_signal(1.0, SR)
    sf.write(media / "in.wav", x.T, SR, subtype="FLOAT")
    c = await RawClient.connect(srv.url)
    try:
        job = await c.start_upload_job(x, SR, overrides={"gain_db": 0.0})
        await c.upload(job, P.audio_to_bytes(x), [5, 77_777])
        audio, term = await c.collect(job)
        assert isinstance(term, P.JobDone), term
        assert [m.frames for m in audio] == [11025] * 4  # the engine's 0.25 s blocks
        np.testing.assert_allclose(join_audio(audio), x, atol=1e-7)
        wav = (media / "in.wav").read_bytes()
        await c.send(P.StartJob(input=P.UploadInput(format="encoded", filename="my gig.wav", size=len(wav)),
                                ref="e"))
        acc = await c.recv_until(lambda m: isinstance(m, P.JobAccepted))
        await c.upload(acc.job_id, wav, [1000])
        audio, term = await c.collect(acc.job_id)
        assert isinstance(term, P.JobDone), term
        np.testing.assert_allclose(join_audio(audio), x * gain_of(-6.0), atol=1e-7)
        assert Path(term.outputs["master"]).name == "my_gig.restored.wav"
        await c.send(P.StartJob(input=P.PathInput(path="in.wav"), settings={"preset": "live"}, ref="p"))
        acc = await c.recv_until(lambda m: isinstance(m, P.JobAccepted))
        _, term = await c.collect(acc.job_id)
        assert isinstance(term, P.JobDone), term
    finally:
        await c.close()
        await asyncio.wait_for(srv.close(), 15)
    assert [(k, n) for k, n, _, _ in seen] == [("BlockSource", "upload"), ("FileSource", "my gig.wav"),
                                               ("FileSource", "in.wav")]
    assert seen[2][2] == {"preset": "live"}
    assert seen[2][3].report.name == "report.json" and seen[2][3].stream_stems is False


# --------------------------------------------------------------------------- #
# handshake and security
# --------------------------------------------------------------------------- #

def test_non_loopback_host_needs_a_token():
    for host in ("0.0.0.0", "", "192.168.1.20", "::", "example.com"):
        with pytest.raises(SettingsError) as info:
            GatewayServer(host, 0, backend=GainBackend())
        assert "token" in info.value.message
    GatewayServer("0.0.0.0", 0, backend=GainBackend(), token="a-long-secret")  # fine with a token
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    with pytest.raises(SettingsError):
        GatewayServer("0.0.0.0", 0, backend=GainBackend(), token="short")


async def test_token_is_checked():
    srv = GatewayServer("127.0.0.1", 0, token="correct-horse-battery", backend=GainBackend(), ping_interval_s=None)
    await srv.start()
    try:
        # wrong token in hello: fatal error, then close 1008
        c = await RawClient.connect(srv.url, hello=False)
        await c.send(P.Hello(token="wrong-token-123"))
        err = _expect_error(await c.recv(), E.UNAUTHORIZED)
        assert err.fatal
        with pytest.raises(ConnectionClosed) as info:
            await c.recv()
        assert info.value.rcvd.code == 1008
        # no token at all
        c = await RawClient.connect(srv.url, hello=False)
        await c.send(P.Hello())
        _expect_error(await c.recv(), E.UNAUTHORIZED)
        await c.close()
        # wrong token in the header or query: the upgrade itself is refused
        with pytest.raises(InvalidStatus) as info:
            await RawClient.connect(srv.url, headers={"Authorization": "Bearer nope-nope-nope"})
        assert info.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            await RawClient.connect(srv.url + "?token=nope-nope-nope")
        # right token, each way
        for c in (
            await RawClient.connect(srv.url, token="correct-horse-battery"),
            await RawClient.connect(srv.url, headers={"Authorization": "Bearer correct-horse-battery"}),
            await RawClient.connect(srv.url + "?token=correct-horse-battery"),
        ):
            await c.send(P.Ping(data=7))
            assert await c.recv() == P.Pong(data=7)
            await c.close()
    finally:
        await asyncio.wait_for(srv.close(), 15)


async def test_hello_must_come_first(server):
    c = await RawClient.connect(server.url, hello=False)
    await c.send(P.Ping())
    err = _expect_error(await c.recv(), E.HANDSHAKE_REQUIRED)
    assert err.fatal
    with pytest.raises(ConnectionClosed):
        await c.recv()
    # silence: closed after hello_timeout_s
    c = await RawClient.connect(server.url, hello=False)
    _expect_error(await c.recv(timeout=5), E.HANDSHAKE_REQUIRED)


async def test_cross_origin_browser_connections_are_refused(server):
    with pytest.raises(InvalidStatus) as info:
        await RawClient.connect(server.url, headers={"Origin": "https://evil.example"})
    assert info.value.response.status_code == 403
    c = await RawClient.connect(server.url, headers={"Origin": f"http://127.0.0.1:{server.port}"})
    await c.close()


async def test_websocket_on_other_paths_is_404(server):
    with pytest.raises(InvalidStatus) as info:
        await RawClient.connect(f"ws://127.0.0.1:{server.port}/other")
    assert info.value.response.status_code == 404


async def test_spool_is_removed_when_the_server_closes(tmp_path):
    srv = GatewayServer("127.0.0.1", 0, backend=GainBackend(), ping_interval_s=None)
    await srv.start()
    spool = srv.spool_dir
    c = await RawClient.connect(srv.url)
    x = make_signal(0.5, SR)
    job = await c.start_upload_job(x, SR)
    await c.upload(job, P.audio_to_bytes(x), [])
    await c.collect(job)
    await c.close()
    await asyncio.wait_for(srv.close(), 15)
    assert spool is not None and not os.path.exists(spool)
