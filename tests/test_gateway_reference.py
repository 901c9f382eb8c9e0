"""Reference matching through the gateway over a real websocket on 127.0.0.1: the reference
upload stream's rules, a bad reference refused with ``bad_reference``, and a real job whose
master is matched to a reference (closer in tonal balance to the clean track than without)."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import resonate_protocol as P
from resonate_protocol import ErrorCode as E
from clients.python_client import Error, Info, JobDone, ResonateClient
from resonate_stream.gateway.server import GatewayServer
from test_gateway_support import GainBackend, RawClient, gain_of, join_audio, make_signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.restoration_metrics import tonal_balance_error  # noqa: E402
from reference_signals import SR, coloured, music_like  # noqa: E402

LIMITS = P.Limits(max_frame_bytes=1 * P.MiB, max_chunk_bytes=64 * 1024, max_upload_bytes=8 * P.MiB,
                  max_reference_bytes=256 * 1024)
RUN_LIMITS = P.Limits(max_frame_bytes=2 * P.MiB, max_chunk_bytes=256 * 1024, max_upload_bytes=32 * P.MiB,
                      max_reference_bytes=8 * P.MiB)
DSP = {"separation": {"separator": "dsp", "segment_s": 2.0}, "export": {"bit_depth": 32}}


@pytest.fixture
async def gain_server(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    srv = GatewayServer("127.0.0.1", 0, backend=GainBackend(), limits=LIMITS, allowed_roots=[media],
                        spool_dir=tmp_path / "spool", ping_interval_s=None, upload_idle_timeout_s=5.0)
    await srv.start()
    try:
        yield srv
    finally:
        await asyncio.wait_for(srv.close(), 15)


@pytest.fixture
async def runner_server(tmp_path):
    from resonate_stream.gateway.jobs import RunnerBackend

    media = tmp_path / "media"
    media.mkdir()
    srv = GatewayServer("127.0.0.1", 0, backend=RunnerBackend(), limits=RUN_LIMITS, allowed_roots=[media],
                        spool_dir=tmp_path / "spool", output_dir=tmp_path / "out", ping_interval_s=None)
    await srv.start()
    try:
        yield srv
    finally:
        await asyncio.wait_for(srv.close(), 15)


async def _send_stream(c: RawClient, job: str, data: bytes, stream: str, piece: int = 50_000) -> None:
    i = 0
    for a in range(0, len(data), piece):
        await c.send(P.UploadChunk(job_id=job, index=i, data=data[a:a + piece], stream=stream))
        i += 1
    await c.send(P.UploadEnd(job_id=job, chunks=i, size=len(data), stream=stream))


def test_the_gateway_announces_reference_matching():
    from resonate_stream.gateway.connection import FEATURES

    assert "reference" in FEATURES


async def test_reference_stream_rules_on_a_real_socket(gain_server):
    """The input and the reference are two upload streams of one job, each with its own order:
    interleaved, they both arrive and the job runs; too big a reference ends its job with
    upload_too_large; a reference chunk to a job without one is refused, the job goes on."""
    x = make_signal(1.0, SR)
    data = P.audio_to_bytes(x)
    ref_bytes = b"R" * 120_000
    c = await RawClient.connect(gain_server.url)
    try:
        await c.send(P.StartJob(
            input=P.UploadInput(format="pcm_f32le", sample_rate=SR, channels=2, size=len(data)),
            settings={"preset": "test", "overrides": {}}, ref="a",
            reference=P.UploadInput(format="encoded", filename="studio.wav", size=len(ref_bytes))))
        acc = await c.recv_until(lambda m: isinstance(m, (P.JobAccepted, P.Error)))
        assert isinstance(acc, P.JobAccepted), acc
        job = gain_server.jobs[acc.job_id]
        assert job.spec.reference is not None and job.spec.reference.path.name == "studio.wav"
        # interleave: reference chunk 0, input chunk 0, reference chunk 1, ...
        i = 0
        for a in range(0, max(len(data), len(ref_bytes)), 40_000):
            for stream, buf in (("reference", ref_bytes), ("input", data)):
                if a < len(buf):
                    await c.send(P.UploadChunk(job_id=acc.job_id, index=i, data=buf[a:a + 40_000], stream=stream))
            i += 1
        for stream, buf in (("reference", ref_bytes), ("input", data)):
            await c.send(P.UploadEnd(job_id=acc.job_id, size=len(buf), stream=stream))
        audio, term = await c.collect(acc.job_id)
        assert isinstance(term, P.JobDone), term
        np.testing.assert_allclose(join_audio(audio), x * gain_of(-6.0), atol=1e-6)

        # a reference larger than max_reference_bytes (256 KiB) although the input limit is 8 MiB
        await c.send(P.StartJob(input=P.UploadInput(format="pcm_f32le", sample_rate=SR, channels=2),
                                settings={"preset": "test"}, ref="b",
                                reference=P.UploadInput(format="encoded", filename="big.wav")))
        acc = await c.recv_until(lambda m: isinstance(m, P.JobAccepted))
        for i in range(5):
            await c.send(P.UploadChunk(job_id=acc.job_id, index=i, data=b"x" * 60_000, stream="reference"))
        _, term = await c.collect(acc.job_id)
        assert isinstance(term, P.Error) and term.code == E.UPLOAD_TOO_LARGE and "reference" in term.message
        # declared too big: refused at start_job
        await c.send(P.StartJob(input=P.UploadInput(format="encoded"), ref="c",
                                reference=P.UploadInput(format="encoded", size=LIMITS.max_reference_bytes + 1)))
        err = await c.recv_until(lambda m: isinstance(m, P.Error))
        assert err.code == E.UPLOAD_TOO_LARGE and err.ref == "c" and err.job_id is None

        # no reference declared: a reference chunk is refused, the job itself goes on
        job_id = await c.start_upload_job(x, SR, overrides={"gain_db": 0.0}, ref="d")
        await c.send(P.UploadChunk(job_id=job_id, index=0, data=b"zz", stream="reference"))
        err = await c.recv_until(lambda m: isinstance(m, P.Error))
        assert err.code == E.BAD_UPLOAD and err.job_id is None and "reference" in err.message
        await c.upload(job_id, data, [], max_piece=60_000)
        audio, term = await c.collect(job_id)
        assert isinstance(term, P.JobDone), term
        np.testing.assert_allclose(join_audio(audio), x, atol=1e-6)
    finally:
        await c.close()


async def test_a_reference_upload_keeps_the_input_upload_alive(gain_server):
    """Upload activity on either stream counts for the job: a reference sent first for longer than
    the idle timeout does not time out the input waiting behind it (and the reverse)."""
    x = make_signal(0.5, SR)
    data = P.audio_to_bytes(x)
    c = await RawClient.connect(gain_server.url)
    try:
        await c.send(P.StartJob(
            input=P.UploadInput(format="pcm_f32le", sample_rate=SR, channels=2, size=len(data)),
            settings={"preset": "test"}, ref="a", reference=P.UploadInput(format="encoded", filename="s.wav")))
        acc = await c.recv_until(lambda m: isinstance(m, P.JobAccepted))
        job = gain_server.jobs[acc.job_id]
        for i in range(4):  # 4 x 1.5 s = 6 s of reference data, more than the 5 s idle timeout
            await c.send(P.UploadChunk(job_id=acc.job_id, index=i, data=b"r" * 1000, stream="reference"))
            await asyncio.sleep(1.5)
        await c.send(P.UploadEnd(job_id=acc.job_id, stream="reference"))
        await c.upload(acc.job_id, data, [], max_piece=60_000)
        _, term = await c.collect(acc.job_id)
        assert isinstance(term, P.JobDone), term
        assert job.reference_upload is not None and not job.reference_upload.path.exists()  # cleaned up
    finally:
        await c.close()


def _write(path: Path, x: np.ndarray) -> Path:
    sf.write(str(path), x.T, SR, subtype="FLOAT")
    return path


@pytest.mark.parametrize("content,code_word", [(b"this is not audio" * 200, "reference recording"),
                                               (None, "silent")])
async def test_a_bad_reference_is_refused_with_bad_reference(runner_server, tmp_path, content, code_word):
    """Junk bytes or a silent file as reference: the job ends with error bad_reference before any
    audio, the connection and the server carry on (a job on it and on another connection runs)."""
    ref = tmp_path / "studio.wav"
    if content is None:
        _write(ref, np.zeros((2, SR), np.float32))
    else:
        ref.write_bytes(content)
    x = music_like(1.0, seed=5)
    async with asyncio.timeout(120):
        async with ResonateClient(runner_server.url) as client, ResonateClient(runner_server.url) as other:
            bad = await client.start_job({"preset": "balanced", "overrides": DSP}, upload_array=x,
                                         sample_rate=SR, reference=ref)
            good = await other.start_job({"preset": "balanced", "overrides": DSP}, upload_array=x, sample_rate=SR)
            evs = [ev async for ev in client.events(bad, timeout=60)]
            assert not any(type(ev).__name__ == "AudioBlock" for ev in evs)
            last = evs[-1]
            assert isinstance(last, Error) and last.code == E.BAD_REFERENCE, last
            assert code_word in last.message and "Traceback" not in last.message
            assert await client.ping() >= 0.0
            done = [ev async for ev in other.events(good, timeout=60)][-1]
            assert isinstance(done, JobDone) and "reference" not in done.report


def _tonal_error(master: str, clean: np.ndarray) -> float:
    y, sr = sf.read(master, dtype="float32", always_2d=True)
    assert sr == SR
    n = min(y.shape[0], clean.shape[1])
    return tonal_balance_error(clean[:, :n], y.T[:, :n], SR)


@pytest.mark.slow
async def test_a_streamed_job_with_a_reference_is_matched_to_it(runner_server, tmp_path):
    """A phone-coloured section of a track, restored on the real runner behind the gateway, once
    plain and once with a different (clean) section of the same track as reference uploaded on
    the reference stream: the matched master reports the reference and its tonal balance is
    much closer to the clean original."""
    track = music_like(16.0, seed=11)
    clean, other = track[:, :8 * SR], track[:, 8 * SR:]
    gig = _write(tmp_path / "gig.wav", coloured(clean))
    ref = _write(tmp_path / "studio take.wav", other)
    settings = {"preset": "balanced", "overrides": DSP}
    results = {}
    async with asyncio.timeout(400):
        async with ResonateClient(runner_server.url) as client:
            for name, kwargs in (("plain", {}), ("matched", {"reference": ref})):
                job = await client.start_job(settings, upload_path=gig, **kwargs)
                evs = [ev async for ev in client.events(job, timeout=200)]
                assert isinstance(evs[-1], JobDone), evs[-1]
                results[name] = (evs[-1], [ev for ev in evs if isinstance(ev, Info)])
    plain, matched = results["plain"][0], results["matched"][0]
    assert "reference" not in plain.report
    assert matched.report["reference"]["name"] == "studio take.wav"
    infos = [i for i in results["matched"][1] if (i.data or {}).get("kind") == "reference"]
    assert len(infos) == 1 and infos[0].data["name"] == "studio take.wav"
    e_in = tonal_balance_error(clean, coloured(clean), SR)
    e_plain = _tonal_error(plain.outputs["master"], clean)
    e_matched = _tonal_error(matched.outputs["master"], clean)
    print(f"tonal error vs clean: input {e_in:.2f} dB, no reference {e_plain:.2f} dB, "
          f"with reference {e_matched:.2f} dB")
    assert e_matched < 0.7 * e_plain and e_matched < e_in
