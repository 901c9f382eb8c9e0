"""The ``polish`` settings section and the AudioCraft install helpers (no AudioCraft needed)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from engine.errors import SettingsError
from engine.polish.config import PolishConfig
from resonate_stream import audiocraft_install
from resonate_stream.settings import Settings


def test_polish_is_off_by_default_and_validated_with_the_settings():
    assert Settings.from_preset("balanced").polish.mode == "off"
    s = Settings.from_preset("balanced", {"polish": {"mode": "mbd", "bandwidth_kbps": 3, "blend": 0.5}})
    cfg = s.polish
    assert (cfg.mode, cfg.bandwidth_kbps, cfg.blend, cfg.per_stem) == ("mbd", 3.0, 0.5, True)
    assert cfg.strictness_for("vocals") > cfg.strictness_for("drums")  # vocals gentler
    assert Settings.from_dict(s.to_dict()).polish == cfg
    with pytest.raises(SettingsError, match=r"polish\.blend"):
        Settings.from_preset("balanced", {"polish": {"blend": 2}})


@pytest.mark.parametrize("bad, field", [({"mode": "jasco"}, "polish.mode"), ({"bandwidth_kbps": 12}, "polish.bandwidth_kbps"),
                                        ({"strictness": 1.5}, "polish.strictness"), ({"blend": "x"}, "polish.blend"),
                                        ({"per_stem": 1}, "polish.per_stem"), ({"speed": 1}, "polish.speed"),
                                        ({"crossover_hz": 11500, "transition_hz": 1000}, "polish.crossover_hz"),
                                        ({"seed": -1}, "polish.seed"), ({"device": "tpu"}, "polish.device")])
def test_settings_errors_name_the_field(bad, field):
    with pytest.raises(SettingsError, match=field.replace(".", r"\.")):
        PolishConfig.from_dict(bad)


def test_install_source_is_the_vendor_wheel_else_the_pinned_commit(tmp_path, monkeypatch):
    monkeypatch.setenv(audiocraft_install.VENDOR_ENV, str(tmp_path))
    monkeypatch.setattr(audiocraft_install, "vendor_dirs", lambda: [tmp_path])
    assert audiocraft_install.audiocraft_source() == audiocraft_install.AUDIOCRAFT_GIT
    assert "896ec7c47f5e5d1e5aa1e4b260c4405328bf009d" in audiocraft_install.AUDIOCRAFT_GIT
    wheel = tmp_path / "audiocraft-1.4.0a2-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert audiocraft_install.audiocraft_source() == str(wheel)
    assert audiocraft_install.audiocraft_source(tmp_path / "empty") == audiocraft_install.AUDIOCRAFT_GIT


def test_install_refuses_a_vendor_folder_without_the_wheel(tmp_path):
    with pytest.raises(audiocraft_install.InstallFailed, match="no audiocraft"):
        audiocraft_install.install(tmp_path)


def test_installed_audiocraft_imports_with_the_projects_torch():
    pytest.importorskip("audiocraft", reason="AudioCraft not installed: python -m resonate_stream.audiocraft_install")
    import torch

    out = subprocess.run([sys.executable, "-m", "resonate_stream.audiocraft_install", "--check-only"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"AudioCraft ready (torch, audiocraft): {torch.__version__}" in out.stdout


def test_no_installed_tests_package_shadows_the_projects():
    """flashy (an AudioCraft need) ships a top-level ``tests`` package; the install step removes it."""
    from pathlib import Path

    import tests

    root = Path(__file__).resolve().parent
    assert all(Path(p).resolve() == root for p in tests.__path__), list(tests.__path__)


def test_cli_polish_without_weights_is_model_unavailable(tmp_path, capsys, monkeypatch):
    """``resonate process --polish mbd`` with no MBD weights: one line, model_unavailable, exit 2, no file."""
    import numpy as np
    import soundfile as sf

    from resonate_stream.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = tmp_path / "in.wav"
    sf.write(str(src), np.zeros((44100, 2), np.float32) + 0.01, 44100)
    empty = tmp_path / "hf"
    empty.mkdir()
    rc = main(["process", str(src), "-o", str(tmp_path / "o.wav"), "-q", "--separator", "dsp", "--polish", "mbd",
               "--set", f"polish.model_dir={empty}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error [model_unavailable]: "), err
    assert not (tmp_path / "o.wav").exists()


def test_models_lists_demucs_and_mbd_with_the_licence(capsys, monkeypatch, tmp_path):
    from resonate_stream.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "--model-repo", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("htdemucs ") and "Demucs" in line for line in lines)
    mbd = [line for line in lines if line.startswith("mbd-6kbps ")]
    assert len(mbd) == 1 and "MBD polish" in mbd[0] and "CC-BY-NC" in mbd[0]
