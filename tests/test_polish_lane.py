"""The MBD polish lane in the job graph (in process) and over real Ray actors (tiny random models of
the real AudioCraft classes, loaded through ``get_mbd_24khz`` from a temporary HF cache, offline)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("audiocraft", reason="AudioCraft not installed: python -m resonate_stream.audiocraft_install")

from engine.graph import LocalPipeline  # noqa: E402
from engine.polish.config import PolishConfig  # noqa: E402
from engine.polish.factory import build_polisher, provenance  # noqa: E402
from engine.polish.streaming import StreamingPolish, inline_polish  # noqa: E402

pytestmark = pytest.mark.slow
SR = 44100


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    from polish_fixtures import write_random_mbd

    return write_random_mbd(tmp_path_factory.mktemp("hf_home"), bws=(3.0,))


@pytest.fixture(scope="module")
def polish_cfg(hf_home):
    return PolishConfig.from_dict(dict(mode="mbd", bandwidth_kbps=3.0, segment_s=1.0, overlap=0.25, context_s=0.1,
                                       seed=3, device="cpu", model_dir=str(hf_home)))


@pytest.fixture(scope="module")
def settings():
    from resonate_stream.settings import Settings

    return Settings.from_preset("balanced", {"separation": {"separator": "dsp", "segment_s": 1.0}})


@pytest.fixture(scope="module")
def cfg(settings):
    return settings.pipeline_config((20.0, 20000.0))


def separator(settings):
    from resonate_stream.runner import build_separator_for

    return build_separator_for(settings)[0]


@pytest.fixture(scope="module")
def in_process(settings, cfg, polish_cfg):
    """The polished job in this process: (input, plain output, polished output, pipeline description)."""
    x = mono_music(1.6)
    plain = run(LocalPipeline(separator(settings), cfg), x)
    pipeline = LocalPipeline(separator(settings), dataclasses.replace(cfg, polish=polish_cfg))
    return x, plain, run(pipeline, x), pipeline.polish_description


def mono_music(seconds: float) -> np.ndarray:
    """A phone-like mono recording on two channels (the polisher skips the silent side)."""
    from demucs_fixtures import music_mix

    x = music_mix(seconds, seed=5)
    return np.repeat(x.mean(axis=0, keepdims=True), 2, axis=0).astype(np.float32)


def run(pipeline, x: np.ndarray, block: int = 20000) -> dict:
    blocks = []
    for start in range(0, x.shape[1], block):
        blocks += pipeline.process(x[:, start:start + block])
    blocks += list(pipeline.flush())
    out = {"mix": np.concatenate([b.mix for b in blocks], axis=1)}
    for name in ("vocals", "drums", "bass", "other"):
        out[name] = np.concatenate([b.stems[name] for b in blocks if b.stems], axis=1)
    return out


def test_graph_polishes_every_stem_before_the_mix(in_process):
    x, plain, polished, description = in_process
    for k in plain:
        assert polished[k].shape == plain[k].shape == x.shape
        assert np.all(np.isfinite(polished[k]))
    assert np.abs(polished["vocals"] - plain["vocals"]).max() > 1e-4  # MBD ran on the stems
    d = description
    assert (d["polish"], d["bandwidth_kbps"], d["device"]) == ("mbd", 3.0, "cpu")
    assert provenance(d).startswith("restored; polished by MBD (facebook/multiband-diffusion mbd_comp_4, 3 kbps, cpu")


def test_graph_over_ray_with_polish_actors_equals_in_process(ray_local, settings, cfg, polish_cfg, in_process):
    from resonate_stream.polish_pool import PolishPool
    from resonate_stream.ray_pipeline import RayPipeline, SeparatorPool

    x, _, expected, _ = in_process
    pool = SeparatorPool(settings.separation, n_actors=1, threads=1)
    polish_pool = PolishPool(polish_cfg, n_actors=2, threads=1)
    try:
        pipeline = RayPipeline(pool, dataclasses.replace(cfg, polish=polish_cfg), polish_pool=polish_pool)
        got = run(pipeline, x)
        pipeline.close()
        assert pipeline.polish_description["actors"] == 2
    finally:
        pool.shutdown()
        polish_pool.shutdown()
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], atol=1e-5)


def test_process_file_with_polish_reports_what_ran(tmp_path, polish_cfg):
    import soundfile as sf

    from resonate_stream.runner import process_file
    from resonate_stream.settings import Settings

    src = tmp_path / "in.wav"
    sf.write(src, mono_music(1.6).T, SR, subtype="FLOAT")
    settings = Settings.from_preset("balanced", {"separation": {"separator": "dsp", "segment_s": 1.0},
                                                 "polish": polish_cfg.to_dict()})
    done = process_file(src, tmp_path / "out.wav", settings, use_cache=False)
    out, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == SR and out.shape[0] == int(1.6 * SR)
    assert done.report["polish"]["polish"] == "mbd" and done.report["polish"]["bandwidth_kbps"] == 3.0
    assert done.report["provenance"].startswith("restored; polished by MBD")
    plain = process_file(src, tmp_path / "plain.wav", Settings.from_preset(
        "balanced", {"separation": {"separator": "dsp", "segment_s": 1.0}}), use_cache=False)
    assert plain.report["polish"] is None and plain.report["provenance"] == "restored"


@pytest.fixture(scope="module")
def on_mix(settings, cfg, polish_cfg, in_process):
    """``polish.per_stem: false`` in this process: (mix polish config, plain output, output)."""
    x, plain, _, _ = in_process
    mix_cfg = dataclasses.replace(polish_cfg, per_stem=False)
    pipeline = LocalPipeline(separator(settings), dataclasses.replace(cfg, polish=mix_cfg))
    assert pipeline.polish_on_mix and pipeline.polish.signals == ("mix",)
    return mix_cfg, plain, run(pipeline, x), pipeline


def test_polish_on_the_mix_polishes_the_mixer_output_once(on_mix):
    """per_stem: false: stems -> mixer -> MBD over the mix (streamed == whole-file windows) -> preview master."""
    from engine.polish.streaming import polish_whole

    mix_cfg, plain, got, pipeline = on_mix
    for name in ("vocals", "drums", "bass", "other"):
        np.testing.assert_array_equal(got[name], plain[name])  # the stems are not polished
    polisher = build_polisher(mix_cfg, ("mix",))
    expected = polish_whole(polisher, {"mix": plain["mix"]}, mix_cfg.blend)["mix"]
    assert np.abs(got["mix"] - plain["mix"]).max() > 1e-4  # MBD ran on the mix
    np.testing.assert_allclose(got["mix"], expected, atol=1e-5)
    assert pipeline.stem_gains_db() is not None and pipeline.polish_description["per_stem"] is False


def test_polish_on_the_mix_over_ray_equals_in_process(ray_local, settings, cfg, in_process, on_mix):
    from resonate_stream.polish_pool import PolishPool
    from resonate_stream.ray_pipeline import RayPipeline, SeparatorPool

    x = in_process[0]
    mix_cfg, _, expected, _ = on_mix
    pool = SeparatorPool(settings.separation, n_actors=1, threads=1)
    polish_pool = PolishPool(mix_cfg, n_actors=1, threads=1)
    try:
        pipeline = RayPipeline(pool, dataclasses.replace(cfg, polish=mix_cfg), polish_pool=polish_pool)
        got = run(pipeline, x)
        pipeline.close()
    finally:
        pool.shutdown()
        polish_pool.shutdown()
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], atol=1e-5)


def test_polish_lane_over_ray_equals_in_process(ray_local, polish_cfg):
    from resonate_stream.polish_pool import PolishPool
    from resonate_stream.ray_lanes import PoolWindows

    x = {"vocals": mono_music(1.6)}
    x["vocals"][1] *= 0.5  # a side channel too
    local = build_polisher(polish_cfg, ("vocals",))
    expected = _stream(StreamingPolish(inline_polish(local), ("vocals",), polish_cfg.blend), x)
    pool = PolishPool(polish_cfg, stems=("vocals",), n_actors=2, threads=1)
    try:
        assert pool.description["actors"] == 2 and pool.description["polish"] == "mbd"
        windows = PoolWindows(pool, max_in_flight=4)
        got = _stream(StreamingPolish(windows, pool.signals, polish_cfg.blend), x)
        assert sum(windows.windows_per_actor) == 3
    finally:
        pool.shutdown()
    np.testing.assert_allclose(got["vocals"], expected["vocals"], atol=1e-5)
    assert np.abs(got["vocals"] - x["vocals"]).max() > 1e-4


def test_polish_pool_without_weights_fails_fast_with_model_unavailable(ray_local, polish_cfg, tmp_path):
    from engine.errors import ModelUnavailableError
    from resonate_stream.polish_pool import PolishPool

    with pytest.raises(ModelUnavailableError, match="not found"):
        PolishPool(dataclasses.replace(polish_cfg, model_dir=str(tmp_path)), stems=("vocals",), n_actors=1,
                   threads=1, start_timeout_s=120)


def test_models_listing_shows_mbd_presence_and_licence(hf_home, tmp_path):
    from resonate_stream.polish_models import list_mbd

    rows = {r["name"]: r for r in list_mbd(hf_home)}
    assert set(rows) == {"mbd-1.5kbps", "mbd-3kbps", "mbd-6kbps"}
    assert rows["mbd-3kbps"]["present"] and not rows["mbd-6kbps"]["present"]
    assert "--fetch mbd-6kbps" in rows["mbd-6kbps"]["where"]
    assert all("CC-BY-NC" in r["licence"] for r in rows.values())
    assert not any(r["present"] for r in list_mbd(tmp_path))


def _stream(lane: StreamingPolish, payload: dict, block: int = 15000) -> dict:
    n = next(iter(payload.values())).shape[1]
    parts = [lane.process({s: v[:, i:i + block] for s, v in payload.items()}) for i in range(0, n, block)]
    parts.extend(lane.drain())
    return {s: np.concatenate([p[s] for p in parts], axis=1) for s in payload}
