"""Contract 1 with real Demucs classes (tiny random weights) and the real loader.

Streamed, window-by-window separation (windows processed out of order, input
cut in random blocks) must equal ``demucs.apply.apply_model`` on the whole
file with the same segment/overlap, to 1e-4.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from demucs.apply import BagOfModels, apply_model

from demucs_fixtures import (SOURCES, music_mix, save_bag, save_model, tiny_demucs_v2,
                             tiny_hdemucs, tiny_htdemucs)
from engine.errors import DeviceUnavailableError, ModelUnavailableError, SettingsError
from engine.separation import (DemucsSeparator, DspSeparator, StreamingSeparation,
                               WindowPlanner, build_separator, demucs_quality_params,
                               demucs_weights_present, load_demucs_model, resolve_device,
                               stems_from_dict)

SR = 44100
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_ht():
    return tiny_htdemucs(seed=0, segment=1)


def _stream_out_of_order(sep, mix, seed):
    """Planner -> separate (shuffled order) -> stitcher; returns (S, 2, n)."""
    rng = np.random.default_rng(seed)
    geo = sep.geometry
    planner, stitcher = geo.planner(), geo.stitcher()
    windows, pos = [], 0
    while pos < mix.shape[1]:
        n = int(rng.integers(1000, 30000))
        windows += planner.push(mix[:, pos:pos + n])
        pos += n
    windows += planner.finish()
    outs = []
    for i in rng.permutation(len(windows)):
        w = windows[i]
        stitcher.add(w.seq, w.offset, sep.separate(w))
        outs.append(stitcher.pop_ready())
    outs.append(stitcher.finish(mix.shape[1]))
    return np.concatenate(outs, axis=2)


def _whole_file(model, mix, **kw):
    with torch.no_grad():
        return apply_model(model, torch.from_numpy(mix)[None], shifts=0, split=True, **kw)[0].numpy()


@pytest.mark.parametrize("segment,overlap,tp", [(1, 0.25, 1.0), (Fraction(3, 5), 0.5, 2.0)])
def test_streamed_htdemucs_equals_apply_model(tiny_ht, segment, overlap, tp):
    mix = music_mix(3.3, seed=1)
    sep = DemucsSeparator(tiny_ht, segment=segment, overlap=overlap, transition_power=tp)
    assert sep.context_samples == 0  # HTDemucs full windows need no context
    ref = _whole_file(tiny_ht, mix, overlap=overlap, segment=segment, transition_power=tp)
    out = _stream_out_of_order(sep, mix, seed=2)
    assert out.shape == ref.shape == (4, 2, mix.shape[1])
    assert np.abs(ref).max() > 1e-3  # the model does produce something
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("build", [tiny_hdemucs, tiny_demucs_v2])
def test_streamed_hdemucs_and_demucs_v2_equal_apply_model(build):
    model = build(seed=3)
    mix = music_mix(2.6, seed=4)
    sep = DemucsSeparator(model, segment=0.8, overlap=0.25)
    if hasattr(model, "valid_length"):  # Demucs v2 pads to a valid length: needs context
        assert sep.context_samples == model.valid_length(sep.segment_samples) - sep.segment_samples > 0
    ref = _whole_file(model, mix, overlap=0.25, segment=0.8)
    out = _stream_out_of_order(sep, mix, seed=5)
    assert np.abs(ref).max() > 1e-3
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_streamed_bag_of_models_equals_apply_model():
    bag = BagOfModels([tiny_htdemucs(seed=6), tiny_htdemucs(seed=7)],
                      weights=[[1, 0.5, 1, 0], [0.5, 1, 1, 1]])
    mix = music_mix(2.2, seed=8)
    sep = DemucsSeparator(bag, overlap=0.25)
    assert sep.segment_samples == SR
    ref = _whole_file(bag, mix, overlap=0.25, segment=1)
    out = _stream_out_of_order(sep, mix, seed=9)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_streaming_separation_maps_stems_and_stays_aligned(tiny_ht):
    mix = music_mix(2.5, seed=10)
    sep = DemucsSeparator(tiny_ht, overlap=0.25)
    stream = StreamingSeparation(sep)
    first = stream.process(mix[:, :1000])
    assert set(first) == {"vocals", "drums", "bass", "other"}
    assert all(v.shape == (2, 0) for v in first.values())
    parts = [first]
    for start in range(1000, mix.shape[1], 44100):
        parts.append(stream.process(mix[:, start:start + 44100]))
    parts.append(stream.flush())
    stems = {k: np.concatenate([p[k] for p in parts], axis=1) for k in first}
    ref = _whole_file(tiny_ht, mix, overlap=0.25, segment=1)
    got = stems_from_dict(SOURCES, stems)  # back to demucs' drums, bass, other, vocals order
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_shifts_are_deterministic_per_window(tiny_ht):
    mix = music_mix(2.0, seed=11)
    sep = DemucsSeparator(tiny_ht, segment=1, overlap=0.25, shifts=2, seed=5)
    assert sep.segment_samples == SR - SR // 2  # room for the 0.5 s shift in a 1 s model input
    assert sep.context_samples == SR // 2
    windows = WindowPlanner(sep.segment_samples, sep.overlap, sep.context_samples).push(mix)
    assert len(windows) >= 2
    a = sep.separate(windows[1])
    b = sep.separate(windows[1])  # a retry gives the same answer
    np.testing.assert_array_equal(a, b)
    plain = DemucsSeparator(tiny_ht, segment=1, overlap=0.25, shifts=0)
    assert not np.allclose(a, plain.separate(windows[1])[..., :a.shape[2]], atol=1e-6)
    out = StreamingSeparation(sep).process_all(mix, block_size=30000)
    assert all(v.shape == mix.shape and np.all(np.isfinite(v)) for v in out.values())


def test_segment_longer_than_transformer_training_is_refused(tiny_ht):
    with pytest.raises(SettingsError, match="maximum"):
        DemucsSeparator(tiny_ht, segment=2.0)


# ----------------------------------------------------------------------------- loading
def _outputs(model, mix, segment=1):
    return _whole_file(model, mix, overlap=0.25, segment=segment)


def test_loader_roundtrip_local_repo(tmp_path, tiny_ht, monkeypatch):
    sig = "0123abcd"
    path = save_model(tiny_ht, tmp_path, sig)
    assert path.name.startswith(sig + "-") and path.suffix == ".th"  # checksum-suffixed name
    save_bag(tmp_path, "tinyht", [sig])
    mix = music_mix(1.5, seed=12)
    ref = _outputs(tiny_ht, mix)

    bag = load_demucs_model("tinyht", repo=tmp_path)  # a bag, through demucs.pretrained.get_model
    assert isinstance(bag, BagOfModels) and type(bag.models[0]) is type(tiny_ht)
    np.testing.assert_allclose(_outputs(bag, mix), ref, atol=1e-6, rtol=0)

    single = load_demucs_model(sig, repo=str(tmp_path))  # a single signature
    np.testing.assert_allclose(_outputs(single, mix), ref, atol=1e-6, rtol=0)

    monkeypatch.setenv("RESONATE_MODEL_REPO", str(tmp_path))  # default repo from the env
    assert demucs_weights_present("tinyht")
    np.testing.assert_allclose(_outputs(load_demucs_model("tinyht"), mix), ref, atol=1e-6, rtol=0)


def test_loader_corrupt_file_is_reported(tmp_path, tiny_ht):
    path = save_model(tiny_ht, tmp_path, "deadbeef")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailableError, match="checksum"):
        load_demucs_model("deadbeef", repo=tmp_path)


@pytest.mark.parametrize("case", ["missing_name", "empty_folder", "no_folder"])
def test_loader_missing_weights_gives_helpful_error(tmp_path, tiny_ht, case):
    repo = tmp_path / "models"
    if case != "no_folder":
        repo.mkdir()
    if case == "missing_name":
        save_model(tiny_ht, repo, "0123abcd")
    with pytest.raises(ModelUnavailableError) as info:
        load_demucs_model("htdemucs", repo=repo)
    msg = info.value.message
    assert info.value.code == "model_unavailable"
    assert "--model-repo" in msg and "--separator dsp" in msg and "internet" in msg
    assert "htdemucs" in msg
    assert not demucs_weights_present("htdemucs", repo)


def test_loader_offline_uses_torch_hub_cache(tmp_path, tiny_ht, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("RESONATE_MODEL_REPO", raising=False)
    assert not demucs_weights_present("htdemucs")
    with pytest.raises(ModelUnavailableError, match="not in the local cache"):
        load_demucs_model("htdemucs", offline=True)
    # the file name demucs' legacy remote repo downloads htdemucs to (remote/files.txt)
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    from demucs_fixtures import model_package

    torch.save(model_package(tiny_ht), ckpt / "955717e8-8726e21a.th")
    assert demucs_weights_present("htdemucs")
    model = load_demucs_model("htdemucs", offline=True)
    mix = music_mix(1.2, seed=13)
    np.testing.assert_allclose(_outputs(model, mix), _outputs(tiny_ht, mix), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- factory
def test_factory_auto_falls_back_to_dsp_with_note(tmp_path):
    sep, notes = build_separator("auto", model="htdemucs", repo=tmp_path)
    assert isinstance(sep, DspSeparator) and sep.description["separator"] == "dsp"
    assert len(notes) == 1 and "using the weight-free DSP separator" in notes[0]
    assert "htdemucs" in notes[0] and "Model weights" in notes[0]
    with pytest.raises(ModelUnavailableError):
        build_separator("demucs", model="htdemucs", repo=tmp_path)
    sep, notes = build_separator("dsp", quality="render")
    assert isinstance(sep, DspSeparator) and notes == [] and sep.overlap == 0.25
    with pytest.raises(SettingsError):
        build_separator("magic")
    with pytest.raises(SettingsError):
        build_separator("dsp", quality="ultra")


def test_factory_builds_demucs_from_repo_with_quality_preset(tmp_path, tiny_ht):
    save_model(tiny_ht, tmp_path, "0123abcd")
    save_bag(tmp_path, "tinyht", ["0123abcd"])
    sep, notes = build_separator("auto", model="tinyht", repo=tmp_path, quality="render")
    assert isinstance(sep, DemucsSeparator) and notes == []
    render = demucs_quality_params("render")
    assert (sep.overlap, sep.shifts) == (render["overlap"], render["shifts"])
    assert sep.description["separator"] == "demucs" and sep.description["model"] == "tinyht"
    sep, _ = build_separator("demucs", model="tinyht", repo=tmp_path, quality="preview", overlap=0.3)
    assert (sep.overlap, sep.shifts) == (0.3, 0)


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="CUDA"):
            resolve_device("cuda")
    with pytest.raises(DeviceUnavailableError):
        resolve_device("tpu")


def test_separator_survives_pickling_for_remote_workers(tiny_ht):
    import pickle

    sep = DemucsSeparator(tiny_ht, overlap=0.25)
    (w,) = WindowPlanner(sep.segment_samples, sep.overlap, sep.context_samples).push(music_mix(1.2))
    w.context.setflags(write=False)  # Ray hands workers read-only arrays
    clone = pickle.loads(pickle.dumps(sep))
    np.testing.assert_array_equal(clone.separate(w), sep.separate(w))
    assert clone.geometry == sep.geometry
