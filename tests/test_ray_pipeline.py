"""The Ray pipeline (real actors on a local Ray) against the in-process runner.

Contract: a job streamed through the separator actor pool and the stateful
stem / mix actors writes the same file as ``resonate process`` in one process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.separation import n_windows
from resonate_stream.events import AudioChunk, ProgressEvent
from resonate_stream.ray_pipeline import RayPipeline, SeparatorPool, ray_pipeline_factory
from resonate_stream.runner import JobCancelled
from resonate_stream.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dsp_pool(ray_local, dsp_settings):
    pool = SeparatorPool(dsp_settings.separation, n_actors=2, threads=1)
    yield pool
    pool.shutdown()


class RecordingRayPipeline(RayPipeline):
    """Keeps the pipeline object so a test can read its counters after the job."""

    last: "RecordingRayPipeline | None" = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingRayPipeline.last = self
        self.lane_backlog = 0

    def process(self, block):
        out = super().process(block)
        self.lane_backlog = max(self.lane_backlog, self.backlog)
        return out


def recording_factory(pool, **options):
    return lambda settings, cfg: RecordingRayPipeline(pool, cfg, **options)


def test_dsp_job_through_ray_writes_the_same_file(dsp_pool, stage_actors, dsp_settings, concert_clip, restore,
                                                  local_reference):
    ref = local_reference(concert_clip, dsp_settings)
    before = list(dsp_pool.windows_per_actor)
    got = restore(concert_clip, dsp_settings, ray_pipeline_factory(dsp_pool, stage_actors=stage_actors))
    windows = [b - a for a, b in zip(before, dsp_pool.windows_per_actor)]
    assert stage_actors.idle == {"stem": 4, "mix": 1}  # the job gave its warm actors back

    assert got.master_bytes == ref.master_bytes  # byte-identical WAV
    assert set(got.stems) == {"vocals", "drums", "bass", "other"}
    for name, stem in ref.stems.items():
        assert np.array_equal(got.stems[name], stem), name
    assert got.report["separation"]["runner"] == "ray" and got.report["separation"]["actors"] == 2
    # every window went to some actor, and both actors worked
    assert sum(windows) == n_windows(ref.master.shape[1], dsp_pool.geometry["geometry"].stride)
    assert all(n > 0 for n in windows), windows


def test_second_run_over_ray_reuses_the_cached_stems(dsp_pool, stage_actors, dsp_settings, concert_clip, restore,
                                                    local_reference, tmp_path):
    from resonate_stream.cache import StemCache

    cache = StemCache(tmp_path / "cache")
    factory = ray_pipeline_factory(dsp_pool, stage_actors=stage_actors)
    first = restore(concert_clip, dsp_settings, factory, cache=cache)
    windows = sum(dsp_pool.windows_per_actor)
    second = restore(concert_clip, dsp_settings, factory, cache=cache)
    assert first.report["separation"]["cache"] == "miss" and second.report["separation"]["cache"] == "hit"
    assert sum(dsp_pool.windows_per_actor) == windows  # the second run separated nothing
    assert second.report["separation"]["runner"] == "ray"
    ref = local_reference(concert_clip, dsp_settings)  # resonate process, no cache
    assert first.master_bytes == second.master_bytes == ref.master_bytes
    for name, stem in ref.stems.items():
        assert np.array_equal(second.stems[name], stem), name
    # the key names the separator, not where it ran: stems separated over Ray serve an in-process run
    local = restore(concert_clip, dsp_settings, cache=cache)
    assert local.report["separation"]["cache"] == "hit" and local.master_bytes == ref.master_bytes
    assert stage_actors.idle == {"stem": 4, "mix": 1}


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    from audio_fixtures import write_sf
    from demucs_fixtures import music_mix

    return write_sf(tmp_path_factory.mktemp("short") / "short.wav", music_mix(6.0, seed=4), 44100)


def test_a_cancelled_job_leaves_the_warm_actors_usable(dsp_pool, stage_actors, dsp_settings, concert_clip, restore,
                                                        local_reference):
    cancel = threading.Event()

    def cancel_after_3s(event):
        if isinstance(event, ProgressEvent) and event.stage == "input" and event.done >= 3:
            cancel.set()

    factory = ray_pipeline_factory(dsp_pool, stage_actors=stage_actors)
    with pytest.raises(JobCancelled):
        restore(concert_clip, dsp_settings, factory, emit=cancel_after_3s, cancel=cancel)
    assert stage_actors.idle == {"stem": 4, "mix": 1}
    got = restore(concert_clip, dsp_settings, factory)  # the same actors, reset by start()
    assert got.master_bytes == local_reference(concert_clip, dsp_settings).master_bytes


def test_demucs_job_through_two_actors_equals_in_process(ray_local, tiny_model_repo, short_clip, restore,
                                                         local_reference):
    # stem and mix/master actors started for this job alone (no StageActorPool)
    repo, name = tiny_model_repo
    settings = Settings.from_preset("balanced", {
        "separation": {"separator": "demucs", "model": name, "model_repo": str(repo), "device": "cpu"},
        "export": {"bit_depth": 32}})
    pool = SeparatorPool(settings.separation, n_actors=2, threads=1)
    try:
        ref = local_reference(short_clip, settings)
        got = restore(short_clip, settings, recording_factory(pool))
    finally:
        pool.shutdown()
    assert got.report["separation"]["separator"] == "demucs" == ref.report["separation"]["separator"]
    assert got.report["separation"]["model"] == name
    stats = RecordingRayPipeline.last.stats()
    assert all(n > 0 for n in stats["windows_per_actor"]) and sum(stats["windows_per_actor"]) >= 6, stats
    # torch runs 1 thread per actor and the default thread count in-process: float sums
    # may differ in the last bits; anything beyond that would be a streaming bug
    if got.master_bytes != ref.master_bytes:
        assert got.master.shape == ref.master.shape
        np.testing.assert_allclose(got.master, ref.master, atol=1e-5, rtol=0)
    for stem, x in ref.stems.items():
        np.testing.assert_allclose(got.stems[stem], x, atol=1e-5, rtol=0, err_msg=stem)


def test_windows_in_flight_stay_bounded_with_a_slow_consumer(stage_actors, concert_clip, restore):
    # 0.5 s windows (a new one every 0.45 s): each 1 s block releases 2-3 windows at once
    settings = Settings.from_preset("balanced", {"separation": {"separator": "dsp", "segment_s": 0.5},
                                                 "export": {"bit_depth": 32}})
    pool = SeparatorPool(settings.separation, n_actors=2, threads=1)
    chunks = []

    def slow_listener(event):
        if isinstance(event, AudioChunk):
            chunks.append(event.audio.shape[1])
            time.sleep(0.05)  # a listener that takes its time with every block

    try:
        got = restore(concert_clip, settings, recording_factory(pool, inflight_per_actor=1, stage_actors=stage_actors),
                      emit=slow_listener)
    finally:
        pool.shutdown()
    pipe = RecordingRayPipeline.last
    stats = pipe.stats()
    assert stats["max_windows_in_flight"] == 2  # 1 per actor * 2 actors
    assert stats["peak_windows_in_flight"] == 2  # reached (the producer is faster) and never exceeded
    assert sum(stats["windows_per_actor"]) == n_windows(got.master.shape[1], pool.geometry["geometry"].stride) >= 15
    assert pipe.lane_backlog <= RayPipeline.MAX_BLOCKS_QUEUED + 2  # the in-order lanes stay short too
    assert sum(chunks) == got.master.shape[1]  # the slow listener still heard every sample


_INIT_PROBE = """
import json, os, sys
from resonate_stream.ray_pipeline import init_ray
results = {}
def attempt(key, address):
    try:
        init_ray(address, connect_timeout_s=2.0)
        results[key] = None
    except Exception as e:
        results[key] = [type(e).__name__, getattr(e, "code", None), str(e)]
attempt("refused", "127.0.0.1:1")
attempt("unknown_host", "no-such-ray-head.invalid:6379")
attempt("malformed", "my-cluster")
class _Mac:
    sysname = "Darwin"
os.uname = lambda: _Mac()
os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
attempt("mac_without_flag", "127.0.0.1:1")
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "1"
attempt("mac_with_flag", "127.0.0.1:1")
import ray
results["ray_initialized"] = ray.is_initialized()
print(json.dumps(results))
"""


def test_init_ray_errors_are_clear():
    # in a fresh process: this one may already hold a Ray connection (init_ray is then a no-op)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", _INIT_PROBE], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["refused"][:2] == ["RayClusterUnavailableError", "ray_unavailable"]
    assert "127.0.0.1:1" in r["refused"][2] and "ray start --head" in r["refused"][2]
    assert r["unknown_host"][:2] == ["RayClusterUnavailableError", "ray_unavailable"]
    assert r["malformed"][:2] == ["SettingsError", "bad_settings"] and "HOST:PORT" in r["malformed"][2]
    # macOS (os.uname patched: the branch logic, not a real Mac)
    assert r["mac_without_flag"][:2] == ["SettingsError", "bad_settings"]
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1" in r["mac_without_flag"][2]
    assert r["mac_with_flag"][0] == "RayClusterUnavailableError"  # past the check, on to the address
    assert r["ray_initialized"] is False


# last in this module: it leaves an idle input-lane actor in the shared warm pool
def test_declip_job_through_ray_writes_the_same_file(dsp_pool, stage_actors, dsp_settings, restore, local_reference,
                                                     tmp_path):
    from dataclasses import replace

    from audio_fixtures import write_sf
    from stage_signals import harmonic_music

    clipped = write_sf(tmp_path / "clipped.wav", np.clip(harmonic_music(6.0, seed=2), -0.5, 0.5), 44100,
                       subtype="FLOAT")
    settings = replace(dsp_settings, restore=replace(dsp_settings.restore, declip="auto"))
    ref = local_reference(clipped, settings)
    got = restore(clipped, settings, ray_pipeline_factory(dsp_pool, stage_actors=stage_actors))
    assert got.master_bytes == ref.master_bytes
    for name, stem in ref.stems.items():
        assert np.array_equal(got.stems[name], stem), name
    (declip,) = got.report["stages"]["input"]
    assert declip == ref.report["stages"]["input"][0] and declip["repaired"] and declip["clipped_samples"] > 0
    assert stage_actors.idle == {"stem": 4, "mix": 1, "input": 1}  # the input lane's actor was given back
