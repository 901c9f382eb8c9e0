"""The restoration benchmark's harness: cases, leave-one-out folds, meters, band-limited scoring."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loudness_meters import (ffmpeg_ebur128, have_ffmpeg, parse_ebur128_summary,  # noqa: E402
                                        project_meter)
from benchmarks.phone_sim import hard_clip  # noqa: E402
from benchmarks.restoration_cases import PROFILES, SOURCES, case_list  # noqa: E402
from benchmarks.restoration_eval import loo_folds  # noqa: E402
from benchmarks.restoration_metrics import score  # noqa: E402

SR = 44100


def test_at_least_20_cases_two_different_degradations_per_source():
    cases = case_list()
    assert len(cases) >= 20
    for s in SOURCES:
        profiles = [c.profile.name for c in cases if c.source.name == s.name]
        assert len(profiles) >= 2 and len(set(profiles)) == len(profiles)
    assert {c.profile.name for c in cases} == {p.name for p in PROFILES}
    assert len({c.name for c in cases}) == len(cases)


def test_case_params_are_deterministic_and_differ_between_cases():
    a, b = case_list()[:2]
    assert a.params(7, 60.0, 20.0) == a.params(7, 60.0, 20.0)
    assert a.params(7, 60.0, 20.0)["start_s"] != b.params(7, 60.0, 20.0)["start_s"]
    assert a.params(7, 10.0, 20.0)["start_s"] == 0.0  # shorter than the excerpt: from the start


def test_case_filter():
    assert all("clip" in c.name for c in case_list(["clip"]))
    assert case_list(["no-such-case"]) == []


def test_loo_folds_never_train_on_the_held_out_source():
    cases = case_list()
    folds = loo_folds(cases)
    assert len(folds) == len(SOURCES)
    for held, train, test in folds:
        assert test and all(c.source.name == held for c in test)
        assert all(c.source.name != held for c in train)
        assert len(train) + len(test) == len(cases)


def test_hard_clip_overload():
    x = np.sin(np.linspace(0, 40 * np.pi, 4000))[None, :].astype(np.float32)
    y = hard_clip(x, 6.0)
    assert np.max(np.abs(y)) == pytest.approx(0.99, abs=1e-6)
    # samples at the ceiling: |sin| above half its peak (6 dB) two thirds of the time
    assert np.mean(np.abs(y) >= 0.99 - 1e-6) == pytest.approx(2 / 3, abs=0.02)
    assert hard_clip(x, 0.0) is x


def test_score_stops_at_max_hz_for_band_limited_references():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((2, 4 * SR)) * 0.1
    from scipy import signal

    sos = signal.butter(8, 7000, fs=SR, output="sos")
    low = signal.sosfilt(sos, ref, axis=1)  # a reference with nothing above 7 kHz
    # an estimate that differs from it only above 7.2 kHz scores as perfect up to 7.2 kHz
    est = low + signal.sosfilt(signal.butter(8, 9000, "high", fs=SR, output="sos"), ref, axis=1)
    s = score(low, est, SR, max_hz=7200.0)
    assert s["tonal_error_db"] < 0.3
    assert s["hf_energy_db"] is None
    full = score(low, est, SR)
    assert full["tonal_error_db"] > 5.0 and full["hf_energy_db"] > 20.0


SUMMARY = """[Parsed_ebur128_0 @ 0x5] Summary:

  Integrated loudness:
    I:         -14.1 LUFS
    Threshold: -24.3 LUFS

  Loudness range:
    LRA:         5.0 LU

  True peak:
    Peak:       -0.9 dBFS
"""


def test_parse_ebur128_summary():
    assert parse_ebur128_summary("noise\n" + SUMMARY) == {"lufs": -14.1, "true_peak_dbtp": -0.9}
    assert parse_ebur128_summary("no summary here") is None


def _sine_file(tmp_path: Path, amp: float) -> Path:
    t = np.arange(3 * SR) / SR
    x = (amp * np.sin(2 * np.pi * 997 * t)).astype(np.float32)
    p = tmp_path / "sine.wav"
    sf.write(p, np.stack([x, x], axis=1), SR, subtype="FLOAT")
    return p


def test_project_meter_on_a_sine(tmp_path):
    m = project_meter(_sine_file(tmp_path, 0.5))
    assert m["true_peak_dbtp"] == pytest.approx(20 * np.log10(0.5), abs=0.05)
    # BS.1770: a 1 kHz sine at 0 dBFS in one channel is -3.01 LUFS; here -6.02 dBFS in two channels
    assert m["lufs"] == pytest.approx(-6.02 - 3.01 + 3.01, abs=0.1)


@pytest.mark.skipif(not have_ffmpeg(), reason="ffmpeg is not installed")
def test_ffmpeg_meter_agrees_with_ours_on_a_sine(tmp_path):
    p = _sine_file(tmp_path, 0.5)
    ff, own = ffmpeg_ebur128(p), project_meter(p)
    assert ff["lufs"] == pytest.approx(own["lufs"], abs=0.1)
    assert ff["true_peak_dbtp"] == pytest.approx(own["true_peak_dbtp"], abs=0.1)
