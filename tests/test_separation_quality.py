"""The streaming separation-quality estimate ranks separations sensibly."""
from __future__ import annotations

import numpy as np

from engine.separation import SeparationQualityMeter, assess_separation_quality

SR = 44100


def _sources(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    vocals = np.tile(0.2 * np.sin(2 * np.pi * 440 * t + 2 * np.sin(2 * np.pi * 3 * t)), (2, 1))
    drums = 0.1 * rng.standard_normal((2, n)) * (np.arange(n) % 11025 < 2000)
    bass = np.tile(0.3 * np.sin(2 * np.pi * 55 * t), (2, 1))
    other = 0.05 * rng.standard_normal((2, n))
    return {k: v.astype(np.float32) for k, v in
            dict(vocals=vocals, drums=drums, bass=bass, other=other).items()}


def test_perfect_separation_beats_copies_of_the_mix():
    src = _sources(3 * SR)
    mix = sum(src.values())
    perfect = assess_separation_quality(mix, src)
    copies = assess_separation_quality(mix, {k: mix for k in src})
    quarter = assess_separation_quality(mix, {k: mix / 4 for k in src})  # consistent but all leak
    assert perfect["overall"] > 0.9 and perfect["reconstruction_snr_db"] > 60
    assert copies["reconstruction_snr_db"] < 0  # sum of stems is 4x the mix
    for name in src:
        assert perfect["stems"][name]["score"] > copies["stems"][name]["score"]
        assert perfect["stems"][name]["score"] > quarter["stems"][name]["score"]
        assert quarter["stems"][name]["leakage"] > 0.99
        assert perfect["stems"][name]["leakage"] < 0.05
    assert copies["overall"] < 0.1 and quarter["overall"] < 0.1
    shares = [perfect["stems"][k]["energy_share"] for k in src]
    assert abs(sum(shares) - 1) < 1e-9


def test_partial_leakage_scores_between():
    src = _sources(2 * SR, seed=1)
    mix = sum(src.values())
    leaky = dict(src)
    leaky["drums"] = src["drums"] + 0.5 * src["vocals"]
    leaky["vocals"] = 0.5 * src["vocals"]
    r = assess_separation_quality(mix, leaky)
    perfect = assess_separation_quality(mix, src)
    assert 0.2 < r["stems"]["drums"]["leakage"] < 0.95
    assert r["reconstruction_snr_db"] > 60  # still sums to the mix
    assert r["stems"]["drums"]["score"] < perfect["stems"]["drums"]["score"]
    assert 0.1 < r["overall"] < perfect["overall"]


def test_streaming_updates_equal_one_shot():
    src = _sources(2 * SR, seed=2)
    mix = sum(src.values())
    meter = SeparationQualityMeter()
    for start in range(0, mix.shape[1], 12345):
        meter.update(mix[:, start:start + 12345], {k: v[:, start:start + 12345] for k, v in src.items()})
    meter.update(mix[:, :0], {k: v[:, :0] for k, v in src.items()})
    a, b = meter.result(), assess_separation_quality(mix, src)
    assert a["samples"] == b["samples"] == mix.shape[1]
    assert abs(a["overall"] - b["overall"]) < 1e-9
    for k in src:
        assert abs(a["stems"][k]["leakage"] - b["stems"][k]["leakage"]) < 1e-9


def test_silent_stem_is_not_penalised():
    src = _sources(SR, seed=3)
    src["bass"] = np.zeros_like(src["bass"])
    mix = sum(src.values())
    r = assess_separation_quality(mix, src)
    assert r["stems"]["bass"]["energy_share"] == 0.0 and r["stems"]["bass"]["leakage"] == 0.0
    assert r["overall"] > 0.9
