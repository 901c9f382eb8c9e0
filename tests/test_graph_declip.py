"""The de-clipper in the job's graph (``restore.declip``): the input lane before separation.

* through ``process_file``: a clipped recording restored with ``declip: auto``
  is closer to the unclipped source on the clipped samples than with ``off``,
  and the report's ``stages.input`` says what was repaired;
* an unclipped recording gives the very same file with ``auto`` as with
  ``off`` (the de-clipper passes it bit-exactly and its look-ahead is
  compensated to the sample), so the output stays aligned with the input;
* the graph with the input lane is chunk-size invariant, and does not depend
  on where its windows and lanes run (late, out of order);
* the setting is validated at the boundary.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio_fixtures import write_sf
from engine.errors import SettingsError
from engine.graph import GraphPipeline, JobGraph, LocalPipeline, lanes_per_job
from engine.separation import DspSeparator, StreamingSeparation
from resonate_stream.runner import process_file
from resonate_stream.settings import Settings
from stage_signals import harmonic_music
from test_graph import LateLane, ShuffledWindows, run

SR = 44100
CLIP = 0.5


def plain_settings(declip: str) -> Settings:
    """DSP separation and as little processing as possible around the de-clipper (enhancement,
    tonal correction and band extension off, equal stem gains, a quiet master so the limiter
    stays out of it): what comes out is the (de-clipped) input, separated and summed."""
    return Settings.from_preset("balanced", {
        "separation": {"separator": "dsp", "segment_s": 2.0}, "export": {"bit_depth": 32},
        "enhance": {"enabled": False}, "restore": {"tonal": 0.0, "high_band": 0.0, "sub_bass": 0.0, "declip": declip},
        "mix": {"auto_level": False}, "master": {"target_lufs": -30.0}})


def read(path) -> np.ndarray:
    return sf.read(str(path), dtype="float32", always_2d=True)[0].T


@pytest.fixture(scope="module")
def clipped_recording(tmp_path_factory):
    """``(clean, path of the clipped WAV)``: 6 s of harmonic music hard-clipped at 0.5."""
    clean = harmonic_music(6.0, seed=2)
    path = tmp_path_factory.mktemp("declip") / "clipped.wav"
    return clean, write_sf(path, np.clip(clean, -CLIP, CLIP), SR, subtype="FLOAT")


def clipped_error_db(y: np.ndarray, clean: np.ndarray, clipped: np.ndarray) -> float:
    """Error of ``y`` vs ``clean`` on the clipped samples (dB re their energy), after the gain that
    best matches ``y`` to ``clean`` on the reliable samples (the master changed the level)."""
    mask = np.abs(clipped) >= CLIP - 1e-6
    g = np.sum(y[~mask] * clean[~mask]) / np.sum(y[~mask] ** 2)
    e = g * y - clean
    return float(10 * np.log10(np.sum(e[mask] ** 2) / np.sum(clean[mask] ** 2)))


def test_declip_auto_repairs_the_clipped_samples_and_reports_it(clipped_recording, tmp_path):
    clean, src = clipped_recording
    clipped = read(src)
    outs, reports = {}, {}
    for mode in ("off", "auto"):
        done = process_file(src, tmp_path / f"{mode}.wav", plain_settings(mode), use_cache=False)
        outs[mode], reports[mode] = read(tmp_path / f"{mode}.wav"), done.report
    assert outs["auto"].shape == outs["off"].shape == clean.shape  # as long as the input
    off, auto = clipped_error_db(outs["off"], clean, clipped), clipped_error_db(outs["auto"], clean, clipped)
    assert auto <= off - 6.0, (off, auto)

    assert "input" not in reports["off"]["stages"]  # off: no input lane at all
    (declip,) = reports["auto"]["stages"]["input"]
    n_clipped = int(np.count_nonzero(np.abs(clipped) >= CLIP - 1e-6))
    assert declip["stage"] == "declip" and declip["detected"] and declip["repaired"]
    assert abs(declip["clip_level"] - CLIP) < 0.01
    # every clipped sample after the detector's first 0.5 s of statistics is re-estimated
    assert 0.8 * n_clipped <= declip["clipped_samples"] <= n_clipped
    assert reports["auto"]["settings"]["restore"]["declip"] == "auto"


def test_unclipped_recording_is_the_same_file_with_declip_on(tmp_path):
    x = harmonic_music(4.0, seed=5) * np.float32(0.7)
    src = write_sf(tmp_path / "clean.wav", x, SR, subtype="FLOAT")
    stems = {}
    for mode in ("off", "auto"):
        process_file(src, tmp_path / f"{mode}.wav", plain_settings(mode), stems_dir=tmp_path / f"stems_{mode}",
                     use_cache=False)
        stems[mode] = {p.name: read(p) for p in (tmp_path / f"stems_{mode}").iterdir()}
    # bit-identical: nothing repaired, and the de-clipper's frame of look-ahead removed to the sample
    assert (tmp_path / "auto.wav").read_bytes() == (tmp_path / "off.wav").read_bytes()
    assert stems["auto"].keys() == stems["off"].keys() and len(stems["off"]) == 4
    for name, s in stems["off"].items():
        assert np.array_equal(stems["auto"][name], s), name


@pytest.fixture(scope="module")
def declip_cfg():
    return Settings.from_preset("balanced", {"restore": {"declip": "auto"}}).pipeline_config((20.0, 20000.0))


@pytest.fixture(scope="module")
def clipped_music():
    return np.clip(harmonic_music(5.3, seed=11), -0.6, 0.6).astype(np.float32)


def separator():
    return DspSeparator(segment=1.0)


def test_graph_with_declip_does_not_depend_on_block_sizes(declip_cfg, clipped_music):
    pipeline = LocalPipeline(separator(), declip_cfg)
    assert pipeline.input_lane is not None and "input" in pipeline.lanes
    whole = run(pipeline, clipped_music, [clipped_music.shape[1]])
    assert pipeline.stage_reports()["input"][0]["repaired"]
    for sizes in ([SR], [1000, 70001, 3], [2047, 2049]):
        got = run(LocalPipeline(separator(), declip_cfg), clipped_music, sizes)
        for k, v in whole.items():
            assert np.array_equal(got[k], v), (sizes, k)
    assert all(v.shape == clipped_music.shape for v in whole.values())  # every sample, aligned


def test_graph_with_declip_does_not_depend_on_where_lanes_run(declip_cfg, clipped_music):
    ref = run(LocalPipeline(separator(), declip_cfg), clipped_music, [SR])
    sep = separator()
    elsewhere = GraphPipeline(JobGraph(declip_cfg), StreamingSeparation(windows=ShuffledWindows(sep)), LateLane,
                              sep.description)
    got = run(elsewhere, clipped_music, [SR])
    for k, v in ref.items():
        assert np.array_equal(got[k], v), k


def test_declip_setting_is_checked_and_sizes_the_lanes():
    with pytest.raises(SettingsError, match="restore.declip must be one of off, auto"):
        Settings.from_preset("balanced", {"restore": {"declip": "on"}})
    on = Settings.from_preset("balanced", {"restore": {"declip": "auto"}}).pipeline_config((20.0, 20000.0))
    off = Settings.from_preset("balanced", {"restore": {"declip": "off"}}).pipeline_config((20.0, 20000.0))
    assert lanes_per_job(cfg=on) == {"stem": 4, "mix": 1, "input": 1}
    assert lanes_per_job(cfg=off) == lanes_per_job() == {"stem": 4, "mix": 1}
    assert JobGraph(off).input_spec() is None and JobGraph(off).input_description == {}
    assert JobGraph(on).input_description == {"declip": "auto"}


def test_stems_cached_without_declip_never_serve_a_declip_job(clipped_recording, tmp_path):
    _, src = clipped_recording
    states = []
    for mode in ("off", "auto", "auto"):
        done = process_file(src, tmp_path / f"{len(states)}.wav", plain_settings(mode), cache_dir=tmp_path / "cache")
        states.append(done.report["separation"]["cache"])
    # the stems of the de-clipped input are another entry; the second de-clip job reads its own
    assert states == ["miss", "miss", "hit"]
