"""The governor: the whole job's long-term spectrum measured inside, bands that ended further from
the plausible target than the input pulled back in the final file."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine.restore.governor import SpectrumAccumulator, plan_governor
from engine.restore.tonal import BAND_CENTRES_HZ, TonalModel, TonalProfile
from resonate_stream.runner import process_file
from resonate_stream.settings import Settings
from audio_fixtures import write_sf
from demucs_fixtures import music_mix

SR = 44100
C = np.asarray(BAND_CENTRES_HZ)
NB = C.size
#: a model that knows nothing (weight 0): the input's own levels are the target
UNSURE = TonalModel(tuple([0.0] * NB), tuple([1.0] * NB), tuple([0.0] * NB), trained_on=10)


def _feed(acc: SpectrumAccumulator, x: np.ndarray, sizes) -> TonalProfile:
    i, k = 0, 0
    while i < x.shape[1]:
        n = sizes[k % len(sizes)]
        acc.update(x[:, i:i + n])
        i, k = i + n, k + 1
    return acc.profile()


def test_accumulator_is_chunk_size_invariant_and_agrees_with_the_head_profile():
    x = (music_mix(6.0, seed=4) * 0.5).astype(np.float32)
    a = _feed(SpectrumAccumulator(SR), x, [44100])
    b = _feed(SpectrumAccumulator(SR), x, [777, 5000, 13])
    # the same frames on the same grid (sums in another order: float rounding only)
    assert np.allclose(a.level_db, b.level_db, atol=1e-9) and np.allclose(a.noise_db, b.noise_db, atol=1e-9)
    ref = TonalProfile.from_signal(x)
    audible = np.asarray(ref.level_db) > -90
    assert np.max(np.abs(np.asarray(a.level_db) - np.asarray(ref.level_db))[audible]) < 1.5
    assert a.seconds == pytest.approx(6.0, abs=1e-3)


def _profile(rel_db, snr_db=30.0, seconds=10.0) -> TonalProfile:
    lv = np.asarray(rel_db, dtype=float) - 20.0
    return TonalProfile(tuple(lv), tuple(lv - snr_db), seconds)


def test_a_band_pushed_away_from_the_target_is_pulled_back_by_the_excess():
    base = -3.0 * np.log2(C / 700.0)
    harmed = base + np.where(np.isclose(C, 3174.8, atol=1), 6.0, 0.0) + np.where(np.isclose(C, 500, atol=1), 0.5, 0)
    plan = plan_governor(_profile(base), _profile(harmed), (60.0, 12000.0), UNSURE, tol_db=1.0)
    k = int(np.argmin(np.abs(C - 3174.8)))
    assert plan.backed_off and plan.gains_db[k] == pytest.approx(-5.0, abs=0.3)  # the excess over the tolerance
    others = np.arange(NB) != k
    assert np.all(plan.gains_db[others] == 0.0)  # 0.5 dB at 500 Hz is within the tolerance
    rep = plan.report()
    assert rep["bands_pulled_back"] == 1 and rep["backed_off"]
    assert plan.corrector() is not None


def test_nothing_is_touched_outside_the_band_or_in_noise_or_when_the_move_helps():
    base = -3.0 * np.log2(C / 700.0)
    moved = base + np.where(C > 8000, 12.0, 0.0)  # above the detected edge: the extension's business
    assert not plan_governor(_profile(base), _profile(moved), (60.0, 8000.0), UNSURE).backed_off
    noisy = TonalProfile(tuple(base - 20), tuple(base - 22), 10.0)  # 2 dB SNR everywhere: nothing to judge
    assert not plan_governor(noisy, _profile(base + 6.0 * (C > 1000)), (60.0, 20000.0), UNSURE).backed_off
    # the model is sure the clean music has 6 dB more at 4 kHz: moving there is not harm
    k = int(np.argmin(np.abs(C - 4000.0)))
    a = np.zeros(NB)
    a[k] = 6.0
    sure = TonalModel(tuple(a), tuple([1.0] * NB), tuple([1.0] * NB), trained_on=10, sigma=tuple([0.5] * NB))
    better = base + np.where(np.arange(NB) == k, 6.0, 0.0)
    assert not plan_governor(_profile(base), _profile(better), (60.0, 20000.0), sure).backed_off
    short = plan_governor(_profile(base, seconds=1.0), _profile(base + 9.0 * (C > 1000)), (60.0, 20000.0), UNSURE)
    assert not short.backed_off and short.notes


def _rel(path) -> np.ndarray:
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    acc = SpectrumAccumulator(sr)
    acc.update(y.T)
    return acc.profile().relative_db()


def test_a_job_whose_stages_harm_a_band_is_pulled_back_in_the_final_file(tmp_path):
    src = write_sf(tmp_path / "in.wav", music_mix(8.0, seed=21) * 0.4, SR, subtype="FLOAT")
    harm = {"separation": {"separator": "dsp"}, "export": {"bit_depth": 32},
            "enhance": {"bass": {"harmonics": 1.0}, "other": {"harmonics": 1.0}},  # a low-band bump
            "restore": {"tonal": 0.0, "high_band": 0.0, "sub_bass": 0.0, "governor_tol_db": 0.5}}
    off = Settings.from_preset("balanced", {**harm, "restore": {**harm["restore"], "governor": False}})
    on = Settings.from_preset("balanced", harm)
    r_off = process_file(src, tmp_path / "off.wav", off, use_cache=False).report
    r_on = process_file(src, tmp_path / "on.wav", on, use_cache=False).report
    assert r_off["governor"] is None
    gov = r_on["governor"]
    assert gov["backed_off"] and gov["bands_pulled_back"] >= 1
    pulled = np.asarray(gov["gain_db_per_band"]) != 0.0
    x_in, x_off, x_on = _rel(src), _rel(tmp_path / "off.wav"), _rel(tmp_path / "on.wav")
    # in the bands it pulled back the final file is closer to the input than without it
    assert np.mean(np.abs(x_on - x_in)[pulled]) < np.mean(np.abs(x_off - x_in)[pulled]) - 0.3
    assert r_on["master"]["target_met"]
    y_on, _ = sf.read(str(tmp_path / "on.wav"))
    y_off, _ = sf.read(str(tmp_path / "off.wav"))
    assert y_on.shape == y_off.shape  # same length: the filter's latency is removed
