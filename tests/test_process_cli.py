"""`resonate process` / `info` / `models` end to end, on files the tests make.

Checks what a user cares about: the master meets -14 LUFS / -1 dBTP when
measured independently (pyloudnorm + 4x oversampled peak), outputs have the
input's length, latency is compensated through the whole pipeline, and bad
input gives one typed line, exit status 2 and no file left behind.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyloudnorm as pyln
import pytest
import soundfile as sf

from engine.master.true_peak import true_peak_dbtp
from resonate_stream.cli import main
from audio_fixtures import write_m4a, write_sf
from demucs_fixtures import music_mix

SR = 44100


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Each test gets its own stem cache (never the user's ~/.cache/resonate)."""
    monkeypatch.setenv("RESONATE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """7 s of music-like stereo at 48 kHz (so the decoder resamples)."""
    import soxr

    x = music_mix(7.0, seed=3)
    y = soxr.resample(x.T, SR, 48000).T.astype(np.float32) * 0.5
    return write_sf(tmp_path_factory.mktemp("in") / "song.wav", y, 48000, subtype="PCM_24")


def _measure(path: Path) -> tuple[float, float, int, int]:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return pyln.Meter(sr).integrated_loudness(x), true_peak_dbtp(x.T), x.shape[0], sr


def test_process_meets_loudness_and_peak_targets_and_writes_report_and_stems(song, tmp_path, capsys):
    out = tmp_path / "restored.wav"
    rc = main(["process", str(song), "-o", str(out), "--report", str(tmp_path / "r.json"),
               "--stems", str(tmp_path / "stems"), "-q"])
    assert rc == 0
    lufs, tp, n, sr = _measure(out)
    assert abs(lufs - (-14.0)) <= 0.5
    assert tp <= -1.0 + 1e-3
    assert sr == SR and abs(n - 7.0 * SR) <= 2  # 48 kHz input, 44.1 kHz output of the same duration
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["separation"]["separator"] == "dsp"
    assert any("DSP" in note for note in report["separation"]["notes"])  # says clearly that it fell back
    assert report["metrics_before"]["duration_s"] == pytest.approx(7.0, abs=1e-3)
    assert report["metrics_after"]["integrated_lufs"] == pytest.approx(-14.0, abs=0.5)
    stems = sorted((tmp_path / "stems").iterdir())
    assert [p.name for p in stems] == [f"song.{s}.wav" for s in ("bass", "drums", "other", "vocals")]
    for p in stems:
        assert sf.info(str(p)).frames == n
    assert "separator: dsp" in capsys.readouterr().out


@pytest.mark.parametrize("args,subtype,rate", [
    (["--format", "flac", "--bit-depth", "16"], "PCM_16", SR),
    (["--bit-depth", "32", "--sample-rate", "48000"], "FLOAT", 48000),
    (["--sample-rate", "keep"], "PCM_24", 48000),
])
def test_export_formats(song, tmp_path, args, subtype, rate):
    out = tmp_path / ("x.flac" if "flac" in args else "x.wav")
    assert main(["process", str(song), "-o", str(out), "-q", *args]) == 0
    info = sf.info(str(out))
    assert info.subtype == subtype and info.samplerate == rate
    assert abs(info.frames - 7.0 * rate) <= 3
    lufs, tp, _, _ = _measure(out)
    assert abs(lufs + 14.0) <= 0.5 and tp <= -1.0 + 1e-3  # limited at the export rate, so it holds at 48 kHz too


def test_mp3_export_and_custom_targets(song, tmp_path):
    out = tmp_path / "x.mp3"
    assert main(["process", str(song), "-o", str(out), "-q", "--target-lufs", "-16", "--ceiling-dbtp", "-2"]) == 0
    lufs, tp, n, sr = _measure(out)
    assert abs(lufs + 16.0) <= 0.6  # lossy coding moves loudness slightly
    assert abs(n / sr - 7.0) < 0.1


def test_m4a_input(tmp_path):
    src = write_m4a(tmp_path / "phone.m4a", music_mix(4.0, seed=1) * 0.5, SR)
    out = tmp_path / "o.wav"
    assert main(["process", str(src), "-o", str(out), "-q"]) == 0
    lufs, tp, n, _ = _measure(out)
    assert abs(lufs + 14) <= 0.5 and abs(n - 4.0 * SR) <= 2


def test_click_stays_at_its_time_through_the_whole_pipeline(tmp_path):
    """Latency compensation end to end: enhancement, restoration and limiter delays are removed."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 5 * SR)) * 0.003).astype(np.float32)
    t = int(2.5 * SR) + 123
    x[:, t] = 0.9
    src = write_sf(tmp_path / "click.wav", x, SR, subtype="FLOAT")
    out = tmp_path / "o.wav"
    assert main(["process", str(src), "-o", str(out), "-q", "--bit-depth", "32"]) == 0
    y, _ = sf.read(str(out), dtype="float32", always_2d=True)
    assert y.shape[0] == x.shape[1]
    peak = int(np.argmax(np.abs(y).sum(axis=1)))
    assert abs(peak - t) <= 8, (peak, t)


def _bad(tmp_path: Path, name: str, payload) -> Path:
    p = tmp_path / name
    if isinstance(payload, bytes):
        p.write_bytes(payload)
    else:
        payload(p)
    return p


def _nan_wav(p: Path) -> None:
    x = music_mix(2.0)
    x[:, 30000] = np.nan
    write_sf(p, x, SR, subtype="FLOAT")


def _absurd_rate(p: Path) -> None:
    write_sf(p, music_mix(0.5)[:, :1000], 1000, subtype="PCM_16")


def _truncated(p: Path) -> None:
    full = write_sf(p.with_suffix(".full.wav"), music_mix(2.0), SR, subtype="PCM_16")
    data = full.read_bytes()
    p.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name,payload,code", [
    ("notes.wav", b"these are my concert notes, not audio\n" * 50, "not_audio"),
    ("empty.wav", b"", "empty_audio"),
    ("nan.wav", _nan_wav, "non_finite_samples"),
    ("rate.wav", _absurd_rate, "unsupported_audio"),
    ("cut.wav", _truncated, "truncated_audio"),
    ("missing.wav", None, "file_not_found"),
])
def test_bad_input_gives_one_typed_line_and_no_output(tmp_path, capsys, name, payload, code):
    src = tmp_path / name if payload is None else _bad(tmp_path, name, payload)
    out = tmp_path / "out" / "o.wav"
    out.parent.mkdir()
    rc = main(["process", str(src), "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(f"error [{code}]: "), err
    assert list(out.parent.iterdir()) == []  # nothing half-written, no temp files


def test_unwritable_output_fails_before_work(song, tmp_path, capsys):
    (tmp_path / "no").write_text("a file where a folder should be")  # missing folders are created; this cannot be
    rc = main(["process", str(song), "-o", str(tmp_path / "no" / "such" / "dir" / "o.wav"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error [output_unwritable]")


def test_existing_output_survives_a_failed_run(tmp_path, capsys):
    out = tmp_path / "keep.wav"
    out.write_bytes(b"previous result")
    bad = _bad(tmp_path, "bad.wav", _nan_wav)
    assert main(["process", str(bad), "-o", str(out), "-q", "--overwrite"]) == 2
    assert out.read_bytes() == b"previous result"


def test_bad_settings_are_named(song, tmp_path, capsys):
    assert main(["process", str(song), "-o", str(tmp_path / "o.wav"), "--set", "enhance.vocals.deess=1"]) == 2
    assert "enhance.vocals.deess" in capsys.readouterr().err
    assert main(["process", str(song), "-o", str(tmp_path / "o.flac"), "--bit-depth", "32"]) == 2
    assert "FLAC" in capsys.readouterr().err


def test_demucs_without_weights_says_how_to_get_them(song, tmp_path, capsys):
    rc = main(["process", str(song), "-o", str(tmp_path / "o.wav"), "--separator", "demucs",
               "--model-repo", str(tmp_path), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error [model_unavailable]")
    assert "--separator dsp" in err or "model-repo" in err


def test_info_json(song, capsys):
    assert main(["info", str(song), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["duration_s"] == pytest.approx(7.0, abs=1e-3)
    assert data["source_sample_rate"] == 48000 and data["source_channels"] == 2
    assert -40 < data["integrated_lufs"] < 0


def test_cli_process_exit_status_in_a_real_process(tmp_path):
    bad = _bad(tmp_path, "x.flac", b"\x00\x01garbage" * 100)
    r = subprocess.run([sys.executable, "-m", "resonate_stream", "process", str(bad), "-o", str(tmp_path / "o.wav")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error [") and "Traceback" not in r.stderr


def test_second_run_reuses_cached_stems_with_identical_output(song, tmp_path, capsys):
    a, b, c = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"
    assert main(["process", str(song), "-o", str(a), "-q", "--report", str(tmp_path / "ra.json")]) == 0
    assert main(["process", str(song), "-o", str(b), "-q", "--report", str(tmp_path / "rb.json")]) == 0
    ra, rb = (json.loads((tmp_path / n).read_text()) for n in ("ra.json", "rb.json"))
    assert ra["separation"]["cache"] == "miss" and rb["separation"]["cache"] == "hit"
    assert a.read_bytes() == b.read_bytes()  # cached stems are exact float32
    # other mix settings: separation still comes from the cache, the result differs
    assert main(["process", str(song), "-o", str(c), "-q", "--set", "mix.gains_db.vocals=6",
                 "--report", str(tmp_path / "rc.json")]) == 0
    assert json.loads((tmp_path / "rc.json").read_text())["separation"]["cache"] == "hit"
    assert a.read_bytes() != c.read_bytes()
    capsys.readouterr()
    assert main(["cache", "ls", "--json"]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(entries) == 1
    assert main(["cache", "clear"]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert main(["process", str(song), "-o", str(a), "-q", "-y", "--no-cache", "--report", str(tmp_path / "rd.json")]) == 0
    assert json.loads((tmp_path / "rd.json").read_text())["separation"]["cache"] is None


def test_failed_job_leaves_no_cache_entry(tmp_path, capsys):
    bad = _bad(tmp_path, "nan.wav", _nan_wav)
    assert main(["process", str(bad), "-o", str(tmp_path / "o.wav"), "-q"]) == 2
    capsys.readouterr()
    assert main(["cache", "ls", "--json"]) == 0
    assert capsys.readouterr().out.strip() == ""


def test_plots_are_written(song, tmp_path):
    plots = tmp_path / "plots"
    assert main(["process", str(song), "-o", str(tmp_path / "o.wav"), "-q", "--plots", str(plots)]) == 0
    for name in ("waveform.png", "spectrogram.png"):
        data = (plots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_overview_memory_is_bounded_for_long_input():
    from resonate_stream.plots import OverviewAccumulator

    acc = OverviewAccumulator(max_columns=64)
    block = music_mix(1.0)
    for _ in range(200):  # 200 s of audio
        acc.process(block)
    ov = acc.result()
    assert len(ov["min"]) < 64 and ov["spec_db"].shape[1] < 64
    assert ov["duration_s"] == pytest.approx(200.0)
