"""Shared, session-scoped fixtures.

Ray is started only by the tests that ask for it (``ray_local``,
``ray_cluster``); every other test runs with no Ray at all.  One process can
hold one Ray connection at a time, so :class:`RaySessions` switches between a
local instance and a multi-node test cluster (shutting the other down), and
stops whatever runs at the end of the session.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

#: logical CPUs of the local test Ray instance: two separator pools (1 CPU per
#: actor) may live side by side; the machine itself may have fewer cores
RAY_TEST_CPUS = 4
#: DSP separator windows of 2 s (preview overlap 0.1: a window every 1.8 s), many per clip
DSP_SETTINGS = {"separation": {"separator": "dsp", "segment_s": 2.0}, "export": {"bit_depth": 32}}
#: seconds of the synthetic concert clip most Ray tests restore
CLIP_SECONDS = 8.0


class RaySessions:
    """The one Ray connection of this test process: local, or a local multi-node cluster."""

    def __init__(self):
        self.mode: str | None = None
        self.cluster = None

    def local(self) -> None:
        import ray

        from resonate_stream.ray_pipeline import init_ray

        if self.mode == "local" and ray.is_initialized():
            return
        self.stop()
        init_ray(num_cpus=RAY_TEST_CPUS)
        self.mode = "local"

    def multi_node(self, nodes: int = 3):
        """A head plus ``nodes - 1`` worker nodes on this machine, 1 CPU each; returns the Cluster."""
        import ray
        from ray._common.utils import reset_ray_address
        from ray.cluster_utils import Cluster

        from resonate_stream.ray_pipeline import init_ray

        if self.mode == "cluster" and ray.is_initialized():
            return self.cluster
        self.stop()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        self.cluster, self.mode = cluster, "cluster"
        # Cluster advertises itself as "the" cluster of this machine (/tmp/ray/ray_current_cluster),
        # where any other process's bare ray.init() would join it: take that back
        reset_ray_address()
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        init_ray(cluster.address)  # through the project's join path
        return cluster

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None
        self.mode = None


@pytest.fixture(scope="session")
def ray_sessions():
    sessions = RaySessions()
    yield sessions
    sessions.stop()


@pytest.fixture(scope="module")
def ray_local(ray_sessions):
    """A local Ray instance (``RAY_TEST_CPUS`` logical CPUs), shared by consecutive modules."""
    ray_sessions.local()
    return ray_sessions


@pytest.fixture(scope="module")
def stage_actors(ray_local):
    """Warm stem and mix/master actors shared by the jobs of a module (as a server keeps them)."""
    from resonate_stream.ray_pipeline import StageActorPool

    pool = StageActorPool()
    yield pool
    pool.shutdown()


@pytest.fixture(scope="module")
def ray_cluster(ray_sessions):
    """A 3-node Ray cluster on this machine (1 CPU per node); shut down after the module."""
    cluster = ray_sessions.multi_node(3)
    yield cluster
    ray_sessions.stop()


# ----------------------------------------------------------------------------- inputs and runs
@pytest.fixture(scope="session")
def concert_clip(tmp_path_factory) -> Path:
    """A ``CLIP_SECONDS`` s stereo music-like WAV (tones, bass line, clicks, noise), 44.1 kHz."""
    from audio_fixtures import write_sf
    from demucs_fixtures import music_mix

    path = tmp_path_factory.mktemp("ray-inputs") / "concert.wav"
    return write_sf(path, music_mix(CLIP_SECONDS, seed=3), 44100)


@pytest.fixture(scope="session")
def tiny_model_repo(tmp_path_factory) -> tuple[Path, str]:
    """A local Demucs model folder holding a tiny random HTDemucs; returns ``(folder, name)``."""
    from demucs_fixtures import save_model, tiny_htdemucs

    folder = tmp_path_factory.mktemp("demucs-repo")
    save_model(tiny_htdemucs(seed=7, segment=1), folder, "5eed0007")
    return folder, "5eed0007"


@pytest.fixture(scope="session")
def dsp_settings():
    """Balanced preset, DSP separator with 2 s windows, 32-bit float WAV output."""
    from resonate_stream.settings import Settings

    return Settings.from_preset("balanced", DSP_SETTINGS)


class Restored:
    """What one job wrote: the mastered file (bytes + samples), the stems, the report."""

    def __init__(self, finished, master: Path, stems_dir: Path):
        import soundfile as sf

        self.finished = finished
        self.report = finished.report
        self.master_path = master
        self.master_bytes = master.read_bytes()
        self.master = sf.read(str(master), dtype="float32", always_2d=True)[0].T
        self.stems = {p.name.split(".")[-2]: sf.read(str(p), dtype="float32", always_2d=True)[0].T
                      for p in sorted(stems_dir.glob("*.wav"))}


@pytest.fixture(scope="session")
def restore(tmp_path_factory):
    """``restore(input, settings, factory=None, emit=None, cancel=None, cache=None) -> Restored``: one
    ``run_job`` writing the master and the stems (32-bit float WAV) into a fresh folder (separation
    through the stem ``cache`` when given)."""
    from resonate_stream.runner import OutputSpec, check_outputs, run_job
    from resonate_stream.sources import FileSource

    def run(path: Path, settings, factory=None, emit=None, cancel=None, cache=None) -> Restored:
        out = tmp_path_factory.mktemp("restored")
        spec = OutputSpec(out / "master.wav", stems_dir=out / "stems")
        check_outputs(spec)  # creates the stems folder, as process_file does
        done = run_job(FileSource(Path(path)), settings, spec, emit=emit, cancel=cancel, pipeline_factory=factory,
                       cache=cache)
        return Restored(done, spec.master, spec.stems_dir)

    return run


@pytest.fixture(scope="session")
def local_reference(restore):
    """``local_reference(input, settings) -> Restored`` from the in-process runner, cached."""
    cache: dict = {}

    def get(path: Path, settings) -> Restored:
        key = (str(path), json.dumps(settings.to_dict(), sort_keys=True, default=str))
        if key not in cache:
            cache[key] = restore(path, settings)
        return cache[key]

    return get
