"""The gateway on Ray under presets that differ per job, through a real socket.

A job with another preset (``aggressive``: render quality, other overlap)
runs on the separator actors that already exist (the window settings travel
with each window), so it never waits for a second pool that cannot fit, and
a concurrent default job is not held up behind it.  A pool for another model
takes what the cluster has free or fails at once with an actionable message.
Stem actors started for concurrent jobs are killed when the jobs end (the
warm pool keeps one job's set).
"""
from __future__ import annotations

import asyncio

import pytest
import soundfile as sf

import resonate_protocol as P
from resonate_stream.gateway.jobs import RunnerBackend
from resonate_stream.gateway.server import GatewayServer
from test_gateway_support import RawClient

pytestmark = pytest.mark.slow

SR = 44100
DSP = {"separation": {"separator": "dsp", "segment_s": 2.0}, "export": {"bit_depth": 32}}


@pytest.fixture(scope="module")
def pools(ray_local):
    from resonate_stream.serve import SeparatorPools
    from resonate_stream.settings import Settings

    p = SeparatorPools()  # sized to the cluster: 3 actors of 1 CPU on the 4-CPU test instance
    p.get(Settings.from_preset(overrides=DSP).separation)
    p.stage_actors()
    yield p
    for pool in p.pools.values():
        pool.shutdown()
    if p.stage_actors() is not None:
        p.stage_actors().shutdown()


@pytest.fixture
def clips(tmp_path):
    from demucs_fixtures import music_mix

    media = tmp_path / "media"
    media.mkdir()
    sf.write(media / "long.wav", music_mix(16.0, seed=1).T, SR, subtype="FLOAT")
    sf.write(media / "short.wav", music_mix(3.0, seed=2).T, SR, subtype="FLOAT")
    return media


async def _start(c: RawClient, path: str, settings: dict, ref: str) -> str:
    await c.send(P.StartJob(input=P.PathInput(path=path), settings=settings, ref=ref))
    acc = await c.recv_until(lambda m: isinstance(m, (P.JobAccepted, P.Error)) and m.ref == ref, timeout=60)
    assert isinstance(acc, P.JobAccepted), acc
    return acc.job_id


async def test_another_preset_shares_the_pool_and_does_not_hold_up_a_default_job(pools, clips, tmp_path):
    backend = RunnerBackend(pipeline_factory=pools.factory)
    srv = GatewayServer("127.0.0.1", 0, backend=backend, allowed_roots=[clips], spool_dir=tmp_path / "spool",
                        ping_interval_s=None)
    await srv.start()
    a = await RawClient.connect(srv.url)
    b = await RawClient.connect(srv.url)
    stage = pools.stage_actors()
    per_job = stage.live
    try:
        slow = await _start(a, "long.wav", {"preset": "aggressive", "overrides": DSP}, "aggr")
        fast = await _start(b, "short.wav", {"overrides": DSP}, "default")
        order: list[str] = []

        async def finish(c: RawClient, job_id: str):
            _, term = await c.collect(job_id, timeout=240)
            order.append(job_id)
            return term

        t_slow = asyncio.create_task(finish(a, slow))
        t_fast = asyncio.create_task(finish(b, fast))
        done_fast = await t_fast
        assert isinstance(done_fast, P.JobDone), done_fast
        assert not t_slow.done(), "the default job should end while the long aggressive one still runs"
        done_slow = await t_slow
        assert isinstance(done_slow, P.JobDone), done_slow
        assert order == [fast, slow]
        # one pool served both, each job with its own window settings
        assert len(pools.pools) == 1
        assert done_slow.report["separation"]["overlap"] == 0.25  # render
        assert done_fast.report["separation"]["overlap"] == 0.1  # preview
        # the second job's stem actors were killed when it ended: one job's set stays warm
        assert stage.live == per_job
        # sequential jobs reuse the warm set: the count stays put
        for i in range(2):
            job = await _start(b, "short.wav", {"overrides": DSP}, f"seq{i}")
            _, term = await b.collect(job, timeout=120)
            assert isinstance(term, P.JobDone), term
            assert stage.live == per_job
    finally:
        await a.close()
        await b.close()
        await asyncio.wait_for(srv.close(), 30)


def test_a_pool_for_another_model_fits_what_is_free_or_fails_at_once(pools):
    import ray

    from resonate_stream.ray_pipeline import RayClusterUnavailableError
    from resonate_stream.settings import SeparationSettings

    free = ray.available_resources().get("CPU", 0)
    assert 1 <= free < 3  # the default pool holds the rest
    other = pools.get(SeparationSettings(separator="dsp", model="other-model"))  # sized down, not waiting
    try:
        assert 1 <= len(other.actors) <= free
        with pytest.raises(RayClusterUnavailableError) as info:
            pools.get(SeparationSettings(separator="dsp", model="third-model"))
        msg = info.value.message
        assert "--workers" in msg and "third-model" in msg
        assert "{" not in msg  # no dump of the cluster's resources
        assert info.value.code == "ray_unavailable"
    finally:
        other.shutdown()


async def test_a_job_with_a_reference_on_ray_writes_what_the_in_process_runner_writes(pools, clips, tmp_path):
    """The Ray path of the gateway takes a reference too (here a server path): its master is the
    in-process runner's with the same reference, byte for byte, and the report names it."""
    from demucs_fixtures import music_mix
    from resonate_stream.runner import OutputSpec, run_job
    from resonate_stream.settings import Settings
    from resonate_stream.sources import FileSource

    sf.write(clips / "studio.wav", music_mix(6.0, seed=9).T, SR, subtype="FLOAT")
    local = tmp_path / "local.wav"
    run_job(FileSource(clips / "short.wav"), Settings.from_preset("balanced", DSP),
            OutputSpec(local, None, None), reference=clips / "studio.wav")
    srv = GatewayServer("127.0.0.1", 0, backend=RunnerBackend(pipeline_factory=pools.factory), allowed_roots=[clips],
                        spool_dir=tmp_path / "spool", ping_interval_s=None)
    await srv.start()
    c = await RawClient.connect(srv.url)
    try:
        await c.send(P.StartJob(input=P.PathInput(path="short.wav"), settings={"overrides": DSP}, ref="r",
                                reference=P.PathInput(path="studio.wav")))
        acc = await c.recv_until(lambda m: isinstance(m, (P.JobAccepted, P.Error)), timeout=60)
        assert isinstance(acc, P.JobAccepted), acc
        _, term = await c.collect(acc.job_id, timeout=240)
        assert isinstance(term, P.JobDone), term
        assert term.report["reference"]["name"] == "studio.wav"
        with open(term.outputs["master"], "rb") as fh:
            assert fh.read() == local.read_bytes()
    finally:
        await c.close()
        await asyncio.wait_for(srv.close(), 30)
