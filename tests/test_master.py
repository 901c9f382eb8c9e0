"""True-peak limiter, streamed preview master and exact final master.

The final master is checked with pyloudnorm as the independent loudness meter
and with scipy's resample_poly (via true_peak_dbtp) as the true-peak meter.
"""
from __future__ import annotations

import math

import numpy as np
import pyloudnorm as pyln
import pytest

from engine.audio import db_to_gain
from engine.errors import InputError, NonFiniteAudioError, SettingsError
from engine.master.final import FinalMasterConfig, final_master
from engine.master.limiter import TruePeakLimiter
from engine.master.true_peak import true_peak_dbtp
from engine.master.preview import PreviewMaster
from engine.stage import LatencyAligned, run_in_blocks

SR = 44100


def _lufs(x):
    return pyln.Meter(SR).integrated_loudness(x.T.astype(np.float64))


def _scale_to(x, lufs):
    return (x * db_to_gain(lufs - _lufs(x))).astype(np.float32)


def _loud_signals(seconds=4.0, seed=0):
    """Material driven well over full scale (+12 dB and more)."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    env = (rng.random(n // 50) ** 4).repeat(50)[:n]
    square = np.stack([np.sign(np.sin(2 * np.pi * 440 * t)), np.sign(np.sin(2 * np.pi * 441 * t + 0.5))])
    clicks = np.zeros((2, n))
    clicks[:, 1000::4410] = 8.0
    clicks[1, 1100::4410] = -8.0
    return {
        "noise+12dB": 4.0 * 0.25 * rng.standard_normal((2, n)),
        "square+12dB": 4.0 * square,
        "bursts": 6.0 * env * rng.standard_normal((2, n)),
        "fs4_sine": 4.0 * np.stack([np.sin(np.pi / 2 * np.arange(n) + np.pi / 4)] * 2),
        "hf_sines": 3.0 * np.stack([np.sin(2 * np.pi * 15000 * t) + np.sin(2 * np.pi * 17000 * t + 1)] * 2),
        "clicks": clicks,
    }


# ---------------------------------------------------------------- limiter
@pytest.mark.parametrize("name", sorted(_loud_signals()))
def test_limiter_keeps_true_peak_under_ceiling(name):
    x = _loud_signals()[name].astype(np.float32)
    assert true_peak_dbtp(x) > 10.0
    lim = LatencyAligned(TruePeakLimiter(ceiling_dbtp=-1.0))
    y = run_in_blocks(lim, x, [4096, 1000, 77])
    assert y.shape == x.shape and y.dtype == np.float32
    assert true_peak_dbtp(y) <= -1.0
    assert true_peak_dbtp(y) > -1.5  # limiting, not just turning everything down
    assert lim.stage.max_reduction_db < -10.0


def test_limiter_other_ceiling():
    x = _loud_signals()["noise+12dB"].astype(np.float32)
    y = run_in_blocks(LatencyAligned(TruePeakLimiter(ceiling_dbtp=-3.0, release_ms=200)), x)
    assert -3.05 < true_peak_dbtp(y) <= -3.0


def test_limiter_leaves_quiet_audio_untouched_apart_from_the_delay():
    rng = np.random.default_rng(2)
    x = (0.05 * rng.standard_normal((2, SR))).astype(np.float32)
    lim = TruePeakLimiter()
    y = run_in_blocks(lim, x)
    L = lim.latency
    np.testing.assert_array_equal(y[:, :L], 0.0)
    np.testing.assert_array_equal(y[:, L:], x)
    assert lim.max_reduction_db == 0.0


def test_limiter_latency_is_the_lookahead_and_a_click_stays_in_place():
    lim = TruePeakLimiter(lookahead_ms=5.0)
    assert lim.latency == 220  # round(5 ms * 44.1 kHz)
    x = np.zeros((2, SR // 2), np.float32)
    x[:, 3000] = 2.0  # +6 dBFS click: gets limited
    x[:, 9000] = -0.5  # quiet click
    y = run_in_blocks(LatencyAligned(lim), x, [333, 1, 4096])
    assert y.shape == x.shape
    assert int(np.argmax(np.abs(y[0]))) == 3000
    assert y[0, 3000] > 0.5 and y[0, 9000] < -0.3
    assert true_peak_dbtp(y) <= -1.0


def test_limiter_releases_after_a_peak():
    n = SR * 2
    t = np.arange(n) / SR
    x = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    x2 = np.stack([x, x])
    x2[:, 1000] = 3.0  # one big spike
    y = run_in_blocks(LatencyAligned(TruePeakLimiter(release_ms=80)), x2)
    late = slice(SR, 2 * SR)  # 1 s later the gain is back to unity
    np.testing.assert_allclose(y[:, late], x2[:, late], atol=1e-5)
    assert np.max(np.abs(y[:, 900:1100])) < 0.9


def test_limiter_is_chunk_size_invariant():
    rng = np.random.default_rng(7)
    x = (1.5 * rng.standard_normal((2, SR))).astype(np.float32)
    whole = run_in_blocks(TruePeakLimiter(), x)
    sizes = list(rng.integers(1, 3000, 40)) + [1, 1, 2, 1]
    chunked = run_in_blocks(TruePeakLimiter(), x, sizes)
    ones = run_in_blocks(TruePeakLimiter(), x[:, :2500], [1])
    assert whole.shape == chunked.shape == (2, SR + 220)
    diff = max(float(np.max(np.abs(whole - chunked))), float(np.max(np.abs(whole[:, :2500] - ones[:, :2500]))))
    assert diff == 0.0 or 20 * math.log10(diff) < -90


def test_limiter_rejects_bad_settings():
    with pytest.raises(SettingsError):
        TruePeakLimiter(ceiling_dbtp=3.0)
    with pytest.raises(SettingsError):
        TruePeakLimiter(lookahead_ms=0.5)
    with pytest.raises(SettingsError):
        TruePeakLimiter(release_ms=0)
    with pytest.raises(ValueError):
        TruePeakLimiter().process(np.zeros((3, 10), np.float32))


# ---------------------------------------------------------------- preview
def _music_like(seconds, lufs, seed=0):
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    beat = np.exp(-(t % 0.5) * 12)
    x = (np.stack([np.sin(2 * np.pi * 110 * t), np.sin(2 * np.pi * 110 * t + 0.3)]) * (0.5 + 0.5 * beat)
         + 0.3 * rng.standard_normal((2, n)) * beat + 0.05 * rng.standard_normal((2, n)))
    return _scale_to(x, lufs)


def test_preview_rides_a_quiet_concert_up_to_target():
    x = _music_like(40.0, -30.0)
    pm = PreviewMaster(target_lufs=-14.0, ceiling_dbtp=-1.0)
    assert pm.latency == 220
    y = run_in_blocks(LatencyAligned(pm), x, [4096, 333, 10000])
    assert y.shape == x.shape
    assert abs(_lufs(y[:, 20 * SR:]) - (-14.0)) < 1.5
    assert true_peak_dbtp(y) <= -1.0
    assert 10.0 < pm.gain_db <= 24.0


def test_preview_turns_a_loud_one_down_and_is_chunk_size_invariant():
    x = _music_like(12.0, -6.0, seed=1)
    a = run_in_blocks(PreviewMaster(), x)
    b = run_in_blocks(PreviewMaster(), x, [1, 2, 997, 4410, 13, 20000])
    diff = float(np.max(np.abs(a - b)))
    assert diff == 0.0 or 20 * math.log10(diff) < -90
    assert _lufs(a[:, 8 * SR:]) < -10.0
    assert true_peak_dbtp(a) <= -1.0


def test_preview_on_silence_stays_silent():
    pm = PreviewMaster()
    y = run_in_blocks(pm, np.zeros((2, SR * 3), np.float32), [5000])
    assert not np.any(y) and pm.gain_db == 0.0


# ---------------------------------------------------------------- final master
def _reader(x, sizes=(30000, 4410, 777)):
    def read():
        pos, i = 0, 0
        while pos < x.shape[1]:
            k = sizes[i % len(sizes)]
            yield x[:, pos:pos + k]
            pos += k
            i += 1
    return read


def _master(x, cfg=None):
    outs = []
    report = final_master(_reader(x), outs.append, cfg)
    y = np.concatenate(outs, axis=1) if outs else np.zeros((x.shape[0], 0), np.float32)
    return y, report


def _final_inputs():
    rng = np.random.default_rng(11)
    n = SR * 15
    t = np.arange(n) / SR
    quiet = _music_like(15.0, -32.0, seed=3)
    # loud and peaky: sparse spikes far above a quiet bed: the limiter works hard
    spikes = np.where(rng.random((1, n)) < 0.001, 0.9, 0.0) * rng.standard_normal((2, n))
    peaky = _scale_to(spikes + 0.05 * np.sin(2 * np.pi * 220 * t), -8.0)
    # dynamic: loud and quiet sections 25 dB apart, with drum hits that need limiting
    env = np.where((t // 2.5) % 2 == 0, 1.0, db_to_gain(-25))
    hits = np.zeros((2, n))
    hits[:, ::11025] = 1.0
    hits = np.apply_along_axis(lambda h: np.convolve(h, np.exp(-np.arange(2000) / 150.0)
                                                     * np.sin(np.arange(2000) * 0.05))[:n], 1, hits)
    dynamic = _scale_to(env * (_music_like(15.0, -20.0, seed=4) + 0.8 * hits), -26.0)
    return {"quiet": quiet, "loud_peaky": peaky, "dynamic": dynamic}


FINAL_INPUTS = _final_inputs()


@pytest.mark.parametrize("name", sorted(FINAL_INPUTS))
def test_final_master_meets_target_by_independent_meter(name):
    x = FINAL_INPUTS[name]
    y, rep = _master(x)
    assert y.shape == x.shape and y.dtype == np.float32
    assert abs(_lufs(y) - (-14.0)) < 0.5, rep
    assert true_peak_dbtp(y) <= -1.0
    assert abs(rep["output_lufs"] - (-14.0)) <= 0.2, rep
    assert rep["output_true_peak_dbtp"] <= -1.0
    assert abs(rep["input_lufs"] - _lufs(x)) < 0.1
    assert rep["iterations"] <= 5 and rep["target_met"]
    if name != "quiet":
        assert rep["limiter_max_reduction_db"] < -3.0  # the limiter path was exercised
    assert set(rep) >= {"input_lufs", "gain_db", "output_lufs", "output_true_peak_dbtp", "iterations"}


def test_final_master_configurable_target():
    x = FINAL_INPUTS["dynamic"]
    y, rep = _master(x, FinalMasterConfig(target_lufs=-16.0, ceiling_dbtp=-2.0))
    assert abs(_lufs(y) - (-16.0)) < 0.5
    assert true_peak_dbtp(y) <= -2.0
    assert rep["target_lufs"] == -16.0 and rep["ceiling_dbtp"] == -2.0


def test_final_master_unlimited_gain_is_exact_and_single_pass():
    x = _music_like(10.0, -40.0, seed=9)  # +10 dB leaves its peaks far below the ceiling
    y, rep = _master(x, FinalMasterConfig(target_lufs=-30.0))
    assert rep["iterations"] == 1 and rep["passes"] == 2
    np.testing.assert_allclose(y, x * np.float32(db_to_gain(rep["gain_db"])), rtol=1e-6, atol=1e-9)
    assert abs(_lufs(y) + 30.0) < 0.1


def test_final_master_silence_gets_no_gain_and_a_note():
    x = np.zeros((2, SR * 3), np.float32)
    y, rep = _master(x)
    assert y.shape == x.shape and not np.any(y)
    assert rep["gain_db"] == 0.0 and rep["input_lufs"] is None and rep["output_lufs"] is None
    assert rep["notes"] and "silent" in rep["notes"][0]


def test_final_master_caps_the_gain_for_a_too_quiet_mix():
    x = _music_like(6.0, -55.0, seed=5)
    y, rep = _master(x)
    assert rep["gain_db"] == 30.0
    assert not rep["target_met"]
    assert abs(_lufs(y) - (-25.0)) < 0.5
    assert any("capped" in n for n in rep["notes"])


def test_final_master_empty_input():
    y, rep = _master(np.zeros((2, 0), np.float32))
    assert y.shape[1] == 0 and rep["samples"] == 0 and rep["notes"]


def test_final_master_rejects_bad_stored_mix():
    x = _music_like(3.0, -20.0)
    bad = x.copy()
    bad[1, 5000] = np.nan
    with pytest.raises(NonFiniteAudioError):
        _master(bad)
    calls = []

    def shrinking():  # a file that changes between passes
        calls.append(1)
        n = x.shape[1] - 1000 * (len(calls) - 1)
        yield x[:, :n]

    with pytest.raises(InputError):
        final_master(shrinking, lambda b: None)


def test_final_master_config_from_dict():
    cfg = FinalMasterConfig.from_dict({"target_lufs": -16, "ceiling_dbtp": -2})
    assert cfg.target_lufs == -16
    with pytest.raises(SettingsError):
        FinalMasterConfig.from_dict({"target": -16})
    with pytest.raises(SettingsError):
        FinalMasterConfig(target_lufs=5.0)
