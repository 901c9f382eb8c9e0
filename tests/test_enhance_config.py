"""EnhanceConfig / StemEnhanceConfig: presets, dict round trips, validation."""
from __future__ import annotations

import pytest

from engine.audio import STEM_NAMES
from engine.enhance import EnhanceConfig, StemEnhanceConfig, build_stem_chain
from engine.enhance.config import PRESET_NAMES, STEM_FIELD_RANGES
from engine.errors import SettingsError


def test_default_is_balanced_and_presets_are_ordered():
    assert EnhanceConfig() == EnhanceConfig.preset("balanced")
    cons, bal, aggr = (EnhanceConfig.preset(p) for p in PRESET_NAMES)
    for stem in STEM_NAMES:
        for knob in ("noise_reduction", "eq_intensity", "compression", "de_ess", "gate", "harmonics"):
            a, b, c = (getattr(cfg.stem(stem), knob) for cfg in (cons, bal, aggr))
            assert a <= b <= c, (stem, knob)


def test_stem_specific_defaults():
    cfg = EnhanceConfig.preset("balanced")
    assert cfg.vocals.highpass_hz == 80.0 and cfg.vocals.de_ess > 0 and cfg.vocals.noise_reduction > 0
    assert cfg.drums.gate > 0 and cfg.drums.transient_attack_db > 0
    assert cfg.bass.highpass_hz == 30.0 and cfg.bass.harmonics > 0
    assert cfg.other.width > 1.0 and cfg.other.noise_reduction > 0
    names = {s: [st.name for st in build_stem_chain(s, cfg.stem(s)).stages] for s in STEM_NAMES}
    assert names["vocals"] == ["highpass", "noise_reduction", "deesser", "eq", "compressor"]
    assert names["drums"] == ["highpass", "gate", "transient", "eq", "compressor"]
    assert names["bass"] == ["highpass", "eq", "compressor", "exciter"]
    assert names["other"] == ["highpass", "noise_reduction", "eq", "compressor", "width"]


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_dict_round_trip(preset):
    cfg = EnhanceConfig.preset(preset)
    d = cfg.to_dict()
    assert set(d) == {"enabled", *STEM_NAMES}
    assert set(d["vocals"]) == set(STEM_FIELD_RANGES)
    assert EnhanceConfig.from_dict(d) == cfg
    assert StemEnhanceConfig.from_dict(d["bass"]) == cfg.bass


def test_partial_dicts_override_a_base():
    cfg = EnhanceConfig.from_dict({"vocals": {"de_ess": 0.9}, "enabled": False})
    assert cfg.enabled is False and cfg.vocals.de_ess == 0.9
    assert cfg.vocals.noise_reduction == EnhanceConfig.preset("balanced").vocals.noise_reduction
    assert cfg.drums == EnhanceConfig.preset("balanced").drums
    aggr = EnhanceConfig.from_dict({"preset": "aggressive", "bass": {"harmonics": 0}})
    assert aggr.bass.harmonics == 0.0 and aggr.vocals == EnhanceConfig.preset("aggressive").vocals
    assert EnhanceConfig.from_dict(None) == EnhanceConfig()
    assert StemEnhanceConfig.from_dict({}) == StemEnhanceConfig()


@pytest.mark.parametrize("data, key", [
    ({"vocalz": {}}, "enhance.vocalz"),
    ({"vocals": {"deess": 1.0}}, "enhance.vocals.deess"),
    ({"drums": {"gate": 2.0}}, "enhance.drums.gate"),
    ({"bass": {"harmonics": "lots"}}, "enhance.bass.harmonics"),
    ({"other": {"width": True}}, "enhance.other.width"),
    ({"other": {"width": float("nan")}}, "enhance.other.width"),
    ({"enabled": "yes"}, "enhance.enabled"),
    ({"preset": "loud"}, "loud"),
    ({"vocals": {"highpass_hz": 5.0}}, "enhance.vocals.highpass_hz"),
    ({"vocals": [1, 2]}, "enhance.vocals"),
])
def test_bad_settings_name_the_key(data, key):
    with pytest.raises(SettingsError) as info:
        EnhanceConfig.from_dict(data)
    assert key in info.value.message
    assert info.value.code == "bad_settings"


def test_unknown_stem_and_preset():
    with pytest.raises(SettingsError):
        EnhanceConfig.preset("extreme")
    with pytest.raises(SettingsError):
        EnhanceConfig().stem("piano")
    with pytest.raises(SettingsError):
        build_stem_chain("piano", StemEnhanceConfig())
