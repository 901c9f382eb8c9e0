"""Presets, overrides and their documentation."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from engine.enhance.config import EnhanceConfig, StemEnhanceConfig
from engine.errors import SettingsError
from engine.master.config import MasterConfig
from engine.mix import MixConfig
from engine.restore.config import RestoreConfig
from resonate_stream.presets import preset_names
from resonate_stream.settings import ExportSettings, SeparationSettings, Settings, load_overrides_file

ROOT = Path(__file__).resolve().parents[1]
PRESETS = preset_names()


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_and_validates(name):
    s = Settings.from_preset(name)
    assert s.preset == name
    assert isinstance(s.enhance, EnhanceConfig)
    assert isinstance(s.restore, RestoreConfig)
    assert isinstance(s.mix, MixConfig)
    assert isinstance(s.master, MasterConfig)


def test_presets_differ_in_strength():
    weak, mid, strong = (Settings.from_preset(n).enhance for n in ("conservative", "balanced", "aggressive"))
    assert weak.vocals.noise_reduction < mid.vocals.noise_reduction < strong.vocals.noise_reduction


def test_overrides_deep_merge_and_unknown_keys_are_named(tmp_path):
    s = Settings.from_preset("balanced", {"enhance": {"vocals": {"de_ess": 0.9}}, "mix": {"gains_db": {"bass": 3}}})
    assert s.enhance.vocals.de_ess == 0.9
    assert s.enhance.vocals.noise_reduction == Settings.from_preset("balanced").enhance.vocals.noise_reduction
    assert s.mix.gains_db["bass"] == 3
    for bad, word in [({"enhance": {"vocals": {"deess": 1}}}, "deess"), ({"mixx": {}}, "mixx"),
                      ({"restore": {"dereverb": "magic"}}, "dereverb"), ({"master": {"target_lufs": 3}}, "target_lufs"),
                      ({"export": {"format": "flac", "bit_depth": 32}}, "FLAC")]:
        with pytest.raises(SettingsError, match=word):
            Settings.from_preset("balanced", bad)
    with pytest.raises(SettingsError, match="preset"):
        Settings.from_preset("loud")
    f = tmp_path / "s.yaml"
    f.write_text("restore:\n  dereverb: spectral\n")
    assert Settings.from_preset("balanced", load_overrides_file(f)).restore.dereverb == "spectral"
    f.write_text("- not a mapping\n")
    with pytest.raises(SettingsError):
        load_overrides_file(f)


def test_settings_round_trip_through_plain_data():
    s = Settings.from_preset("aggressive", {"separation": {"separator": "dsp"}})
    assert Settings.from_dict(s.to_dict()) == s


def test_every_setting_is_documented():
    text = (ROOT / "docs" / "settings.md").read_text()
    for cls in (SeparationSettings, StemEnhanceConfig, RestoreConfig, MixConfig, MasterConfig, ExportSettings):
        for f in fields(cls):
            assert f"{f.name}" in text, f"docs/settings.md does not document {cls.__name__}.{f.name}"
