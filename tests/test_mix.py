"""StemMixer: settings, chunk-size invariance, auto-level targets, mute and user gains."""
from __future__ import annotations

import numpy as np
import pyloudnorm as pyln
import pytest

from engine.audio import db_to_gain
from engine.errors import SettingsError
from engine.mix import DEFAULT_TARGETS_DB, MixConfig, StemMixer

SR = 44100


def _stem(rng, lufs, seconds, colour=0.0):
    """Stereo noise at a given pyloudnorm loudness; ``colour`` tilts its spectrum."""
    n = int(SR * seconds)
    x = rng.standard_normal((2, n))
    if colour:
        x = np.cumsum(x, axis=1) * colour + x  # add some low-frequency weight
        x -= x.mean(axis=1, keepdims=True)
    cur = pyln.Meter(SR).integrated_loudness(x.T)
    return (x * db_to_gain(lufs - cur)).astype(np.float32)


def _stems(seconds=20.0, levels=(-30.0, -15.0, -20.0, -25.0), seed=0):
    rng = np.random.default_rng(seed)
    names = ("vocals", "drums", "bass", "other")
    return {s: _stem(rng, lv, seconds, colour=0.02 * i) for i, (s, lv) in enumerate(zip(names, levels))}


def _mix_in_blocks(mixer, stems, sizes=None):
    n = next(iter(stems.values())).shape[1]
    if sizes is None:
        return mixer.process(stems)
    outs, pos, i = [], 0, 0
    while pos < n:
        k = sizes[i % len(sizes)]
        outs.append(mixer.process({s: v[:, pos:pos + k] for s, v in stems.items()}))
        pos += k
        i += 1
    return np.concatenate(outs, axis=1)


def _lufs(x):
    return pyln.Meter(SR).integrated_loudness(x.T.astype(np.float64))


# ------------------------------------------------------------------ settings
def test_config_round_trip_and_defaults():
    cfg = MixConfig()
    assert cfg.targets_db == DEFAULT_TARGETS_DB == {"vocals": 0.0, "drums": -3.0, "bass": -6.0, "other": -8.0}
    d = MixConfig(gains_db={"drums": 2.5}, mute={"bass": True}, auto_level=False).to_dict()
    back = MixConfig.from_dict(d)
    assert back == MixConfig(gains_db={"drums": 2.5}, mute={"bass": True}, auto_level=False)
    # partial targets keep the defaults of the other stems
    assert MixConfig.from_dict({"targets_db": {"vocals": 2}}).targets_db["bass"] == -6.0


@pytest.mark.parametrize("bad", [
    {"volume": 3},
    {"gains_db": {"drums": "loud"}},
    {"gains_db": {"drums": float("nan")}},
    {"mute": {"vocals": "yes"}},
    {"auto_level": 1},
    {"max_auto_gain_db": -3},
    {"targets_db": [0, -3]},
])
def test_bad_settings_raise_settings_error(bad):
    with pytest.raises(SettingsError) as e:
        MixConfig.from_dict(bad)
    assert e.value.code == "bad_settings"


# --------------------------------------------------------------- streaming
def test_mix_is_chunk_size_invariant_while_gains_move():
    stems = _stems(seconds=6.0)
    whole = StemMixer(MixConfig(gains_db={"bass": 3.0}))
    a = _mix_in_blocks(whole, stems)
    b = _mix_in_blocks(StemMixer(MixConfig(gains_db={"bass": 3.0})), stems, sizes=[1, 3, 517, 4410, 9999, 2, 7000])
    assert a.shape == b.shape == (2, 6 * SR)
    assert a.dtype == np.float32
    # the auto gains really moved during the signal
    assert max(abs(v) for v in whole.auto_gains_db().values()) > 3.0
    diff = np.max(np.abs(a - b))
    assert diff == 0.0 or 20 * np.log10(diff) < -90
    assert StemMixer().flush().shape == (2, 0)
    assert StemMixer.latency == 0


def test_auto_level_reaches_relative_targets_after_settling():
    """Stems 15 dB apart come out at 0 / -3 / -6 / -8 dB relative (within 1 dB)."""
    stems = _stems(seconds=20.0)
    solo = {}
    for s in stems:  # solo each stem by muting the others (mute does not move the others' gains)
        mixer = StemMixer(MixConfig(mute={k: k != s for k in stems}, max_auto_boost_db=12.0))
        solo[s] = _lufs(_mix_in_blocks(mixer, stems, sizes=[8192])[:, -8 * SR:])
    for s in stems:
        rel = solo[s] - solo["vocals"]
        assert abs(rel - DEFAULT_TARGETS_DB[s]) < 1.0, (s, rel, solo)
    # the wanted gains average 0 dB, so the overall level is not pushed around
    gains = mixer.auto_gains_db()
    assert abs(np.mean(list(gains.values()))) < 0.5
    # the report names every stem
    assert set(mixer.stem_gains_db()) == set(stems)


def test_auto_gain_is_bounded():
    stems = _stems(seconds=15.0, levels=(-50.0, -10.0, -10.0, -10.0))
    mixer = StemMixer(MixConfig(max_auto_boost_db=12.0))
    _mix_in_blocks(mixer, stems, sizes=[44100])
    g = mixer.auto_gains_db()
    assert g["vocals"] <= 12.0 + 1e-9 and g["vocals"] > 11.0  # wanted ~+30 dB, capped at +12


def test_quiet_stem_is_boosted_at_most_max_auto_boost_by_default():
    """A stem far below its target (often leakage) is not pulled up into the mix."""
    stems = _stems(seconds=15.0, levels=(-40.0, -10.0, -10.0, -10.0))
    mixer = StemMixer()
    _mix_in_blocks(mixer, stems, sizes=[44100])
    g = mixer.auto_gains_db()
    assert 3.0 < g["vocals"] <= 4.0 + 1e-9
    assert min(g.values()) >= -12.0 - 1e-9


def test_silent_stem_keeps_neutral_gain():
    stems = _stems(seconds=10.0, levels=(-20.0, -20.0, -20.0, -20.0))
    stems["vocals"] = np.zeros_like(stems["vocals"])
    stems["other"] = (stems["other"] * 1e-4).astype(np.float32)  # about -100 LUFS: silent too
    mixer = StemMixer()
    _mix_in_blocks(mixer, stems, sizes=[4096])
    g = mixer.auto_gains_db()
    assert g["vocals"] == 0.0 and g["other"] == 0.0
    # the two audible stems still sit 3 dB apart (drums -3, bass -6)
    assert abs((g["drums"] - g["bass"]) - 3.0) < 0.3


def test_mute_removes_a_stem_exactly():
    stems = _stems(seconds=5.0)
    full = StemMixer().process(stems)
    no_vocals = StemMixer(MixConfig(mute={"vocals": True})).process(stems)
    vocals_only = StemMixer(MixConfig(mute={"drums": True, "bass": True, "other": True})).process(stems)
    np.testing.assert_allclose(full - no_vocals, vocals_only, atol=1e-6)
    assert np.max(np.abs(vocals_only)) > 0.01
    plain = StemMixer(MixConfig(auto_level=False, mute={"vocals": True})).process(stems)
    np.testing.assert_allclose(plain, stems["drums"] + stems["bass"] + stems["other"], atol=1e-6)
    assert StemMixer(MixConfig(mute={"vocals": True})).stem_gains_db()["vocals"] == float("-inf")


def test_user_gain_shifts_a_stem_by_its_db():
    stems = _stems(seconds=12.0)
    solo = {k: k != "drums" for k in stems}
    base = StemMixer(MixConfig(mute=solo)).process(stems)
    up = StemMixer(MixConfig(mute=solo, gains_db={"drums": 6.0})).process(stems)
    assert abs((_lufs(up[:, -5 * SR:]) - _lufs(base[:, -5 * SR:])) - 6.0) < 0.05
    # without auto-level the gain is exact, sample for sample
    plain = StemMixer(MixConfig(auto_level=False, gains_db={"drums": -6.0})).process(stems)
    expect = stems["vocals"] + stems["drums"] * db_to_gain(-6) + stems["bass"] + stems["other"]
    np.testing.assert_allclose(plain, expect, atol=1e-6)


def test_setting_change_mid_stream_ramps_without_a_jump():
    stems = _stems(seconds=2.0)
    mixer = StemMixer(MixConfig(auto_level=False))
    first = mixer.process({s: v[:, :SR] for s, v in stems.items()})
    mixer.set_config(MixConfig(auto_level=False, mute={"vocals": True, "drums": True, "bass": True, "other": True}))
    second = mixer.process({s: v[:, SR:] for s, v in stems.items()})
    assert np.max(np.abs(second[:, -SR // 2:])) == 0.0  # fully muted after the 100 ms ramp
    assert np.max(np.abs(second[:, :100])) > 0.0  # but not cut off at once
    assert first.shape == (2, SR)


def test_mismatched_stems_are_rejected():
    mixer = StemMixer()
    mixer.process({"vocals": np.zeros((2, 10), np.float32), "drums": np.zeros((2, 10), np.float32)})
    with pytest.raises(ValueError):
        mixer.process({"vocals": np.zeros((2, 10), np.float32)})
    with pytest.raises(ValueError):
        StemMixer().process({"vocals": np.zeros((2, 10), np.float32), "drums": np.zeros((2, 9), np.float32)})
