"""Closed-loop tonal balance: a fitted model recovers a known tilt; gains capped; no boost in noise."""
from __future__ import annotations

import numpy as np
import pytest

from engine.errors import SettingsError
from engine.restore.tonal import (BAND_CENTRES_HZ, TonalCorrector, TonalModel, TonalProfile, correction_db,
                                  plan_corrector)
from engine.stage import LatencyAligned, run_in_blocks

SR = 44100
C = np.asarray(BAND_CENTRES_HZ)
OCT = np.log2(C / 700.0)


def _profile(level_db, snr_db=30.0, seconds=10.0) -> TonalProfile:
    level = np.asarray(level_db, dtype=float)
    return TonalProfile(tuple(level), tuple(level - snr_db), seconds)


def _tilted_pairs(tilts, seed=0):
    rng = np.random.default_rng(seed)
    measured, clean = [], []
    for t in tilts:
        base = -3.0 * OCT + rng.normal(0.0, 1.0, C.size)  # the clean music's own shape
        clean.append(_profile(base))
        measured.append(_profile(base + t * OCT))
    return measured, clean


def test_fitted_model_recovers_a_known_tilt():
    tilts = np.random.default_rng(1).uniform(2.0, 4.0, 18)  # a phone-like +2..+4 dB/oct colouring
    measured, clean = _tilted_pairs(tilts)
    model = TonalModel.fit(measured, clean, [20000.0] * len(tilts))
    m, c = _tilted_pairs([3.0], seed=7)
    g = correction_db(m[0], model, 20000.0, max_db=12.0)
    inside = (C >= 100) & (C <= 8000)
    before = np.mean(np.abs(m[0].relative_db() - c[0].relative_db())[inside])
    after = np.mean(np.abs(m[0].relative_db() + g - c[0].relative_db())[inside])
    assert after < 0.5 * before, (before, after)


def test_gains_are_capped_and_no_boost_without_signal():
    nb = C.size
    model = TonalModel(tuple([30.0] * nb), tuple([1.0] * nb), tuple([1.0] * nb), trained_on=10)
    level = -3.0 * OCT
    g = correction_db(_profile(level), model, 20000.0, max_db=9.0)
    assert np.all(np.abs(g) <= 9.0 + 1e-9)
    # bands whose level is only 2 dB over the noise: cut allowed, boost never
    snr = np.where(C > 3000, 2.0, 30.0)
    prof = TonalProfile(tuple(level), tuple(level - snr), 10.0)
    big = TonalModel(tuple(np.where(C > 3000, 12.0, 0.0)), tuple([1.0] * nb), tuple([1.0] * nb), trained_on=10)
    g = correction_db(prof, big, 20000.0)
    assert np.all(g[C > 3000] <= 0.0)
    # wholly above the detected band edge: untouched
    g = correction_db(_profile(level), big, 4000.0)
    assert np.all(g[C * 2 ** (-1 / 6) > 4000.0] == 0.0)


def test_corrector_applies_its_gains_and_reports():
    rng = np.random.default_rng(3)
    x = (0.05 * rng.standard_normal((2, 3 * SR))).astype(np.float32)
    gains = np.clip(3.0 * OCT, -6.0, 6.0)
    st = TonalCorrector(gains)
    y = run_in_blocks(LatencyAligned(st), x, [4096, 333])
    px, py = TonalProfile.from_signal(x), TonalProfile.from_signal(y)
    change = np.asarray(py.level_db) - np.asarray(px.level_db)
    inside = (C >= 200) & (C <= 10000)
    assert np.max(np.abs(change - gains)[inside]) < 1.0
    rep = st.report()
    assert rep["gain_db_per_band"][0] == round(float(gains[0]), 2) and not rep["backed_off"]
    assert np.max(np.abs(np.asarray(rep["realised_change_db_per_band"]) - gains)[inside]) < 1.0


def test_planner_backs_off_on_a_short_head_and_model_round_trip(tmp_path):
    nb = C.size
    model = TonalModel(tuple([1.0] * nb), tuple([1.0] * nb), tuple([0.5] * nb), trained_on=3)
    short = plan_corrector(_profile(-3.0 * OCT, seconds=0.5), 8000.0, 1.0, 9.0, 6.0, model)
    assert short.backed_off and np.all(short.gains_db == 0.0)
    assert plan_corrector(_profile(-3.0 * OCT), 8000.0, 0.0, 9.0, 6.0, model) is None
    model.save(tmp_path / "m.json")
    assert TonalModel.load(tmp_path / "m.json") == model
    with pytest.raises(SettingsError):
        TonalModel.load(tmp_path / "missing.json")
    with pytest.raises(SettingsError):
        TonalCorrector([1.0, 2.0])


def test_no_boost_below_the_detected_low_edge():
    nb = C.size
    big = TonalModel(tuple(np.where(C < 300, 12.0, 0.0)), tuple([1.0] * nb), tuple([1.0] * nb), trained_on=10)
    g = correction_db(_profile(-3.0 * OCT), big, 20000.0, low_edge_hz=336.0)
    assert np.all(g[C * 2 ** (1 / 6) < 336.0] == 0.0)  # wholly below the band: untouched
    assert np.all(g[C * 2 ** (-1 / 6) < 336.0] <= 0.0)  # reaching below it: never boosted
    assert np.max(correction_db(_profile(-3.0 * OCT), big, 20000.0)[C < 250]) > 6.0  # without the edge: boosted


def test_a_correction_within_the_models_error_is_not_made():
    nb = C.size
    want = np.where(C > 3000, 4.0, 0.0)  # the model wants +4 dB above 3 kHz
    sure = TonalModel(tuple(want), tuple([1.0] * nb), tuple([1.0] * nb), trained_on=10, sigma=tuple([0.5] * nb))
    unsure = TonalModel(tuple(want), tuple([1.0] * nb), tuple([1.0] * nb), trained_on=10,
                        sigma=tuple(np.where(C > 6000, 5.0, 0.5)))
    gs = correction_db(_profile(-3.0 * OCT), sure, 20000.0, max_db=12.0, doubt=1.0)
    gu = correction_db(_profile(-3.0 * OCT), unsure, 20000.0, max_db=12.0, doubt=1.0)
    band = (C > 3000) & (C <= 6000)
    assert np.allclose(gs[C > 3000], 3.5, atol=0.3)  # shrunk by sigma, still made
    assert np.allclose(gu[band], gs[band])
    assert np.all(gu[C > 6000] == 0.0)  # 4 dB asked, 5 dB of doubt: nothing
    g0 = correction_db(_profile(-3.0 * OCT), unsure, 20000.0, max_db=12.0, doubt=0.0)
    assert np.allclose(g0[C > 3000], 4.0, atol=0.3)  # no doubt: the whole correction


def test_fit_records_the_models_error_and_it_round_trips(tmp_path):
    tilts = np.random.default_rng(2).uniform(2.0, 4.0, 18)
    measured, clean = _tilted_pairs(tilts)
    model = TonalModel.fit(measured, clean, [20000.0] * len(tilts))
    sig = model.uncertainty_db()
    inside = (C >= 100) & (C <= 8000)
    # about the 1 dB per-band scatter of the music (less inside the body the levels are relative to)
    assert np.all(sig[inside] > 0.0) and np.all(sig[inside] < 3.0) and 0.4 < np.mean(sig[inside]) < 1.5
    model.save(tmp_path / "m.json")
    assert TonalModel.load(tmp_path / "m.json") == model
