"""MBD polish lane with tiny random models of the real AudioCraft classes, loaded through the
unmodified ``MultiBandDiffusion.get_mbd_24khz`` from a Hugging Face cache folder, offline."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("audiocraft", reason="AudioCraft not installed: python -m resonate_stream.audiocraft_install")

from engine.audio import SAMPLE_RATE  # noqa: E402
from engine.errors import ModelUnavailableError  # noqa: E402
from engine.polish.config import PolishConfig  # noqa: E402
from engine.polish.mbd_loader import load_mbd  # noqa: E402
from engine.polish.mbd_polisher import MBDPolisher  # noqa: E402
from engine.polish.streaming import StreamingPolish, inline_polish, polish_whole  # noqa: E402

pytestmark = pytest.mark.slow

#: short windows keep the tiny model's cost down (about 1 s of CPU per window on 2 busy cores)
CFG = dict(mode="mbd", bandwidth_kbps=3.0, segment_s=1.0, overlap=0.25, context_s=0.1, seed=7)


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    from polish_fixtures import write_random_mbd

    return write_random_mbd(tmp_path_factory.mktemp("hf_home"), bws=(3.0,))


@pytest.fixture(scope="module")
def mbd(hf_home):
    return load_mbd(3.0, "cpu", hf_home)


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Stereo test audio: tones below and above the crossover, a little noise, different per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    left = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 15000 * t)
    right = 0.15 * np.sin(2 * np.pi * 660 * t) + 0.05 * np.sin(2 * np.pi * 13000 * t)
    x = np.stack([left, right]) + 0.01 * rng.standard_normal((2, t.size))
    return x.astype(np.float32)


def _stream(lane: StreamingPolish, payload: dict, sizes) -> dict:
    n = next(iter(payload.values())).shape[1]
    parts, start, k = [], 0, 0
    while start < n:
        size = sizes[k % len(sizes)]
        parts.append(lane.process({s: v[:, start:start + size] for s, v in payload.items()}))
        start, k = start + size, k + 1
    parts.extend(lane.drain())
    return {s: np.concatenate([p[s] for p in parts], axis=1) for s in payload}


def test_loaded_through_audiocraft_in_eval_mode(mbd):
    assert type(mbd).__name__ == "MultiBandDiffusion"
    assert all(not dp.model.training for dp in mbd.DPs)
    assert mbd.sample_rate == 24000


def test_streamed_equals_whole_file_and_changes_the_audio(mbd):
    cfg = PolishConfig.from_dict(CFG)
    polisher = MBDPolisher(mbd, cfg, ("vocals", "other"))
    payload = {"vocals": _signal(1.8, 1), "other": _signal(1.8, 2)[::-1].copy()}
    whole = polish_whole(polisher, payload, cfg.blend)
    lane = StreamingPolish(inline_polish(polisher), polisher.signals, cfg.blend)
    streamed = _stream(lane, payload, [12345, 30000, 777])
    for s in payload:
        assert streamed[s].shape == payload[s].shape
        np.testing.assert_allclose(streamed[s], whole[s], atol=2e-5)
        assert np.abs(streamed[s] - payload[s]).max() > 1e-3  # MBD did something
    assert lane.windows_processed == len(range(0, payload["vocals"].shape[1], polisher.geometry.stride))


def test_crossover_keeps_the_input_above_it(mbd):
    cfg = PolishConfig.from_dict({**CFG, "blend": 1.0})
    polisher = MBDPolisher(mbd, cfg, ("mix",))
    x = _signal(1.8, 3)
    lane = StreamingPolish(inline_polish(polisher), ("mix",), cfg.blend)
    y = _stream(lane, {"mix": x}, [SAMPLE_RATE])["mix"]
    # above crossover + transition (12 kHz) the output's spectrum is the input's
    X, Y = np.fft.rfft(x.astype(np.float64)), np.fft.rfft(y.astype(np.float64))
    f = np.fft.rfftfreq(x.shape[1], 1 / SAMPLE_RATE)
    hi, lo = f >= 12500, (f > 100) & (f < 10000)
    err_hi = np.abs(Y[:, hi] - X[:, hi]).max() / np.abs(X[:, hi]).max()
    err_lo = np.abs(Y[:, lo] - X[:, lo]).max() / np.abs(X[:, lo]).max()
    assert err_hi < 1e-3 < err_lo, (err_hi, err_lo)


def test_blended_out_is_the_input_bit_for_bit(mbd):
    cfg = PolishConfig.from_dict({**CFG, "blend": 0.0})
    polisher = MBDPolisher(mbd, cfg, ("mix",))
    x = _signal(0.7, 4)
    y = _stream(StreamingPolish(inline_polish(polisher), ("mix",), cfg.blend), {"mix": x}, [5000])["mix"]
    assert np.array_equal(y, x)


def test_windows_are_seeded_per_window(mbd):
    """Same window, same seed: same answer; another job seed: another draw."""
    from engine.separation.windows import WindowPlanner

    x = _signal(1.3, 5)
    (w, *_) = WindowPlanner(SAMPLE_RATE, 0.25, int(0.1 * SAMPLE_RATE)).push(x)
    a = MBDPolisher(mbd, PolishConfig.from_dict(CFG), ("mix",)).polish(w)
    b = MBDPolisher(mbd, PolishConfig.from_dict(CFG), ("mix",)).polish(w)
    c = MBDPolisher(mbd, PolishConfig.from_dict({**CFG, "seed": 8}), ("mix",)).polish(w)
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


def test_missing_weights_give_model_unavailable_with_instructions(hf_home, tmp_path):
    with pytest.raises(ModelUnavailableError) as e:
        load_mbd(6.0, "cpu", hf_home)  # only 3 kbps was written
    assert e.value.code == "model_unavailable"
    assert "mbd_comp_8.pt" in e.value.message and "resonate models --fetch mbd" in e.value.message
    with pytest.raises(ModelUnavailableError, match="polish.model_dir"):
        load_mbd(3.0, "cpu", tmp_path / "nowhere")
