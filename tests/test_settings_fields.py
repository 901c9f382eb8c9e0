"""Every setting is checked once, at the boundary: `--set`, a settings file, or a client's start_job.

A wrong type or an out-of-range value in any section gives ``SettingsError``
(``bad_settings``) naming the dotted field and what it accepts; the CLI prints
one line ``error [bad_settings]: ...`` and exits 2, never a traceback.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.config import PipelineConfig
from engine.config_fields import Section
from engine.enhance.config import EnhanceConfig, StemEnhanceConfig
from engine.errors import SettingsError
from engine.master.config import MasterConfig
from engine.master.final import FinalMasterConfig
from engine.master.preview import PreviewMaster
from resonate_stream.cached_separation import separation_key
from resonate_stream.cli import build_parser, main
from resonate_stream.gateway.jobs import JobSpec, RunnerBackend
from resonate_stream.presets import preset_names, read_preset
from resonate_stream.settings import Settings, parse_set_option

ROOT = Path(__file__).resolve().parents[1]

#: (--set text, field named in the message, what the message says it accepts): a wrong type
#: and an out-of-range value for every section and every kind of field
BAD = [
    ("separation.separator=magic", "separation.separator", "one of auto, demucs, dsp"),
    ("separation.separator=3", "separation.separator", "one of auto, demucs, dsp"),
    ("separation.model=3", "separation.model", "a non-empty text"),
    ("separation.model_repo=[1, 2]", "separation.model_repo", "null (torch-hub cache) or a non-empty text"),
    ("separation.device=gpu", "separation.device", "one of auto, cpu, cuda, mps"),
    ("separation.quality=true", "separation.quality", "one of preview, render"),
    ("separation.segment_s=long", "separation.segment_s", "null (default) or a number in [0.5, 60]"),
    ("separation.segment_s=100", "separation.segment_s", "null (default) or a number in [0.5, 60]"),
    ("separation.overlap=1", "separation.overlap", "a number in [0, 1)"),
    ("separation.shifts=2.5", "separation.shifts", "an integer in [0, 10]"),
    ("separation.shifts=11", "separation.shifts", "an integer in [0, 10]"),
    ("separation.shifts=true", "separation.shifts", "an integer in [0, 10]"),
    ("enhance.enabled=yes", "enhance.enabled", "true or false"),
    ("enhance.vocals.noise_reduction=lots", "enhance.vocals.noise_reduction", "a number in [0, 1]"),
    ("enhance.vocals.noise_reduction=1.5", "enhance.vocals.noise_reduction", "a number in [0, 1]"),
    ("enhance.drums.highpass_hz=5", "enhance.drums.highpass_hz", "0 (off) or a number in [10, 500]"),
    ("enhance.other.width=.nan", "enhance.other.width", "a number in [0, 2]"),
    ("enhance.bass=3", "enhance.bass", "a mapping of settings"),
    ("enhance=on", "enhance", "a mapping of settings"),
    ("restore.high_band=much", "restore.high_band", "a number in [0, 2]"),
    ("restore.high_band=3", "restore.high_band", "a number in [0, 2]"),
    ("restore.dereverb=magic", "restore.dereverb", "one of off, spectral, wpe"),
    ("restore.dereverb=1", "restore.dereverb", "one of off, spectral, wpe"),
    ("restore.rt60_s=auto", "restore.rt60_s", "null (estimate) or a number in [0.05, 20]"),
    ("restore.rt60_s=30", "restore.rt60_s", "null (estimate) or a number in [0.05, 20]"),
    ("mix.gains_db.vocals=loud", "mix.gains_db.vocals", "a number in [-60, 60]"),
    ("mix.gains_db.vocals=100", "mix.gains_db.vocals", "a number in [-60, 60]"),
    ("mix.gains_db=3", "mix.gains_db", "a mapping of stem name to a number in [-60, 60]"),
    ("mix.mute.drums=yes", "mix.mute.drums", "true or false"),
    ("mix.auto_level=1", "mix.auto_level", "true or false"),
    ("mix.smoothing_s=-1", "mix.smoothing_s", "a number in [0, 600]"),
    ("master.target_lufs=loud", "master.target_lufs", "a number in [-40, -5]"),
    ("master.target_lufs=3", "master.target_lufs", "a number in [-40, -5]"),
    ("master.target_lufs=-60", "master.target_lufs", "a number in [-40, -5]"),
    ("master.ceiling_dbtp=1", "master.ceiling_dbtp", "a number in [-12, 0]"),
    ("master.limiter_lookahead_ms=0.5", "master.limiter_lookahead_ms", "a number in [2, 50]"),
    ("master.limiter_release_ms=fast", "master.limiter_release_ms", "a number in [1, 2000]"),
    ("export.format=aiff", "export.format", "one of wav, flac, mp3, ogg, opus"),
    ("export.mp3_bitrate=100", "export.mp3_bitrate", "one of None, 32, 40"),
    ("export.bit_depth=20", "export.bit_depth", "one of 16, 24, 32"),
    ("export.bit_depth='24'", "export.bit_depth", "one of 16, 24, 32"),
    ("export.sample_rate=22050", "export.sample_rate", "one of 44100, 48000, keep"),
    ("adaptive=sometimes", "adaptive", "true or false"),
    ("adaptive=1", "adaptive", "true or false"),
    ("mixx.gain=1", "unknown setting mixx", "known: "),
    ("master.target=-14", "unknown setting master.target", "known: target_lufs"),
]
IDS = [b[0] for b in BAD]


def _override(text: str) -> dict:
    return parse_set_option(text)


@pytest.mark.parametrize("text, name, accepts", BAD, ids=IDS)
def test_bad_overrides_name_the_field_and_its_range(text, name, accepts):
    with pytest.raises(SettingsError) as info:
        Settings.from_preset("balanced", _override(text))
    assert info.value.code == "bad_settings"
    assert name in info.value.message and accepts in info.value.message, info.value.message


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("in") / "in.wav"
    sf.write(p, np.zeros((4410, 2), np.float32), 44100)
    return p


@pytest.mark.parametrize("text, name, accepts", BAD, ids=IDS)
def test_cli_set_gives_one_error_line_and_exit_2(text, name, accepts, wav, tmp_path, capsys):
    rc = main(["process", str(wav), "-o", str(tmp_path / "o.wav"), "-q", "--set", text])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error [bad_settings]: "), err
    assert name in lines[0] and accepts in lines[0]
    assert not (tmp_path / "o.wav").exists()


def test_cli_in_a_real_process_prints_no_traceback(wav, tmp_path):
    r = subprocess.run([sys.executable, "-m", "resonate_stream", "process", str(wav), "-o", str(tmp_path / "o.wav"),
                        "--set", "master.target_lufs=loud"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip() == "error [bad_settings]: master.target_lufs must be a number in [-40, -5], got 'loud'"
    assert "Traceback" not in r.stderr


def test_cli_flags_and_settings_file_are_checked_alike(wav, tmp_path, capsys):
    f = tmp_path / "over.yaml"
    f.write_text("master:\n  ceiling_dbtp: high\n")
    assert main(["process", str(wav), "-o", str(tmp_path / "o.wav"), "--settings", str(f)]) == 2
    assert "master.ceiling_dbtp must be a number in [-12, 0], got 'high'" in capsys.readouterr().err
    assert main(["process", str(wav), "-o", str(tmp_path / "o.wav"), "--target-lufs", "-3"]) == 2
    assert "master.target_lufs must be a number in [-40, -5], got -3.0" in capsys.readouterr().err


@pytest.mark.parametrize("text, name, accepts", BAD, ids=IDS)
def test_start_job_settings_are_checked_by_the_same_function(text, name, accepts, tmp_path):
    """What a client sends in ``start_job.settings``, as the gateway's job backend builds it."""
    spec = JobSpec(job_id="j", settings={"preset": "balanced", "overrides": _override(text)}, out_dir=tmp_path)
    with pytest.raises(SettingsError) as info:
        RunnerBackend().settings_for(spec)
    assert name in info.value.message and accepts in info.value.message
    with pytest.raises(SettingsError) as again:  # the same check through plain data
        Settings.from_dict({"preset": "balanced", **_override(text)})
    assert again.value.message == info.value.message


def test_start_job_output_options_reach_the_one_export_section(tmp_path):
    from resonate_protocol import OutputOptions

    def spec(overrides, output=None):
        return JobSpec(job_id="j", settings={"preset": "balanced", "overrides": overrides}, out_dir=tmp_path,
                       output=output)

    s = RunnerBackend().settings_for(spec({"export": "wav"}, OutputOptions(format="flac", bit_depth=16)))
    assert (s.export.format, s.export.bit_depth, s.export.sample_rate) == ("flac", 16, 44100)
    s = RunnerBackend().settings_for(spec({"export": {"sample_rate": 48000}}, OutputOptions(format="mp3")))
    assert (s.export.format, s.export.sample_rate) == ("mp3", 48000)
    with pytest.raises(SettingsError, match="export must be a mapping of settings"):
        RunnerBackend().settings_for(spec({"export": "wav"}))
    with pytest.raises(SettingsError, match="export.sample_rate must be one of 44100, 48000, keep, got 22050"):
        RunnerBackend().settings_for(spec({}, OutputOptions(sample_rate=22050)))


@pytest.mark.parametrize("data, words", [
    ({"preset": "loud"}, "preset must be one of aggressive, balanced, conservative, got 'loud'"),
    ({"preset": 3}, "preset must be one of"),
    ([("master", {})], "settings must be a mapping"),
])
def test_bad_plain_settings(data, words):
    with pytest.raises(SettingsError, match=words.replace("[", r"\[").replace("(", r"\(")):
        Settings.from_dict(data)


def test_overrides_cannot_rename_the_preset():
    with pytest.raises(SettingsError, match="preset"):
        Settings.from_preset("balanced", {"preset": "aggressive"})


async def test_a_bad_start_job_setting_over_a_real_socket_is_bad_settings(tmp_path, wav):
    """A client's start_job with a wrong type: the job ends with bad_settings naming the field."""
    import resonate_protocol as P
    from resonate_stream.gateway.server import GatewayServer
    from test_gateway_support import RawClient

    srv = GatewayServer("127.0.0.1", 0, backend=RunnerBackend(), allowed_roots=[wav.parent],
                        output_dir=tmp_path / "out", ping_interval_s=None)
    await srv.start()
    c = await RawClient.connect(srv.url)
    try:
        await c.send(P.StartJob(input=P.PathInput(path="in.wav"), ref="bad",
                                settings={"preset": "balanced", "overrides": {"master": {"target_lufs": "loud"}}}))
        acc = await c.recv_until(lambda m: isinstance(m, (P.JobAccepted, P.Error)))
        err = acc if isinstance(acc, P.Error) else (await c.collect(acc.job_id))[1]
        assert isinstance(err, P.Error) and err.code == "bad_settings", err
        assert err.message == "master.target_lufs must be a number in [-40, -5], got 'loud'"
    finally:
        await c.close()
        await srv.close()


# ------------------------------------------------------------------------ presets
def test_the_presets_are_the_yaml_files_and_nothing_else():
    files = sorted(p.stem for p in (ROOT / "resonate_stream" / "presets").glob("*.yaml"))
    assert list(preset_names()) == files
    choices = next(a.choices for a in build_parser()._subparsers._group_actions[0].choices["process"]._actions
                   if a.dest == "preset")
    assert list(choices) == files
    assert not hasattr(EnhanceConfig, "preset")  # no second preset table in the engine


def _leaves(d: dict, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict) and k not in ("targets_db", "gains_db", "mute"):
            yield from _leaves(v, prefix + (k,))
        else:
            yield prefix + (k,), v


@pytest.mark.parametrize("name", preset_names())
def test_every_value_of_a_preset_file_reaches_the_settings(name):
    plain = Settings.from_preset(name).to_dict()
    for path, value in _leaves(read_preset(name)):
        got = plain
        for k in path:
            got = got[k]
        assert got == value, path


# ------------------------------------------------------------------ plain data
def test_settings_are_plain_data_and_canonical(wav):
    a = Settings.from_preset("balanced", {"separation": {"segment_s": 10, "shifts": 2.0},
                                          "master": {"target_lufs": -16}})
    b = Settings.from_preset("balanced", {"separation": {"segment_s": 10.0, "shifts": 2},
                                          "master": {"target_lufs": -16.0}})
    assert a == b and a.to_dict() == b.to_dict()
    assert type(a.separation.segment_s) is float and type(a.separation.shifts) is int
    assert repr(a.to_dict()) == repr(b.to_dict())  # same types too: the stem cache key is stable
    assert separation_key(wav, {"settings": a.separation.__dict__}) == \
        separation_key(wav, {"settings": b.separation.__dict__})
    assert Settings.from_dict(a.to_dict()) == a


def test_yaml_12_scalars_in_set_and_files(tmp_path):
    assert Settings.from_preset("balanced", parse_set_option("restore.dereverb=off")).restore.dereverb == "off"
    assert Settings.from_preset("aggressive", parse_set_option("adaptive=false")).adaptive is False
    assert parse_set_option("mix.gains_db.vocals=-2.5") == {"mix": {"gains_db": {"vocals": -2.5}}}
    with pytest.raises(SettingsError, match="SECTION.KEY=VALUE"):
        parse_set_option("master.target_lufs")


def test_the_typed_tree_reaches_the_stages_unchanged():
    s = Settings.from_preset("aggressive")
    cfg = s.pipeline_config((100.0, 8000.0))
    assert isinstance(cfg, PipelineConfig) and cfg.band_limits_hz == (100.0, 8000.0)
    assert cfg.enhance is s.enhance and cfg.restore is s.restore and cfg.mix is s.mix and cfg.master is s.master


def test_one_valid_range_for_the_master_levels():
    for bad in (-50.0, 0.0):
        msgs = []
        for make in (lambda: MasterConfig(target_lufs=bad), lambda: FinalMasterConfig(target_lufs=bad),
                     lambda: PreviewMaster(target_lufs=bad)):
            with pytest.raises(SettingsError) as info:
                make()
            msgs.append(info.value.message)
        assert all("target_lufs must be a number in [-40, -5]" in m for m in msgs), msgs


# ------------------------------------------------------------------------- docs
#: every section of Settings (found from its fields, so a new section cannot go undocumented) + the per-stem one
SECTIONS = [(f.name, f.metadata["check"].cls) for f in fields(Settings) if isinstance(f.metadata["check"], Section)]
SECTIONS.append(("enhance.<stem>", StemEnhanceConfig))


def test_docs_state_every_field_and_its_valid_range():
    text = (ROOT / "docs" / "settings.md").read_text()
    rows = [(f"{where}.{f.name}", f.metadata["check"]) for where, cls in SECTIONS for f in fields(cls)]
    rows += [(f.name, f.metadata["check"]) for f in fields(Settings) if not isinstance(f.metadata["check"], Section)]
    for name, check in rows:
        if isinstance(check, Section):
            continue
        row = f"| `{name}` | {check.accepts()} |"
        assert row in text, f"docs/settings.md lacks the row {row}"


def test_set_export_format_must_agree_with_the_output_extension(wav, tmp_path, capsys):
    rc = main(["process", str(wav), "-o", str(tmp_path / "o.wav"), "-q", "--set", "export.format=flac"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error [bad_settings]: export.format is flac but the output is wav"), err
    assert not (tmp_path / "o.wav").exists()
