"""`resonate` as people expect it (issue 10): never lose a file, odd input, honest output.

Through the real entry point: ``main(argv)`` with captured output, or a
subprocess where the exact bytes on stderr matter.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from resonate_stream.cli import build_parser, main
from resonate_stream.cli_summary import before_after_lines, cache_table, info_table
from audio_fixtures import sine, write_sf
from demucs_fixtures import music_mix

SR = 44100


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESONATE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """1.5 s of music-like stereo at 44.1 kHz."""
    return write_sf(tmp_path_factory.mktemp("in") / "song.wav", music_mix(1.5, seed=5) * 0.5, SR, subtype="PCM_16")


def _err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


# --------------------------------------------------------------------------- data loss


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
@pytest.mark.parametrize("overwrite", [[], ["-y"]])
def test_output_that_is_the_input_is_refused(tmp_path, capsys, how, overwrite):
    src = write_sf(tmp_path / "rec.wav", sine(440, 0.5), SR)
    before = src.read_bytes()
    out = tmp_path / "out.wav"
    if how == "same":
        out = src
    elif how == "symlink":
        out.symlink_to(src)
    else:
        os.link(src, out)
    rc = main(["process", str(src), "-o", str(out), "-q", *overwrite])
    err = _err_lines(capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error [output_is_input]: "), err
    assert src.read_bytes() == before


def test_existing_output_needs_overwrite_and_missing_folders_are_created(song, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "o.wav"
    assert main(["process", str(song), "-o", str(out), "-q"]) == 0  # folders created
    assert sf.info(str(out)).frames == int(1.5 * SR)
    first = out.read_bytes()
    capsys.readouterr()
    assert main(["process", str(song), "-o", str(out), "-q", "--target-lufs", "-20"]) == 2
    assert _err_lines(capsys)[0].startswith("error [output_exists]: ")
    assert out.read_bytes() == first  # never replaced without -y
    assert main(["process", str(song), "-o", str(out), "-q", "-y", "--target-lufs", "-20"]) == 0
    assert out.read_bytes() != first


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("name,args,fmt,subtype,rate", [
    ("o.ogg", [], "OGG", "VORBIS", 44100),
    ("o.opus", [], "OGG", "OPUS", 48000),
    ("o.mp3", ["--mp3-bitrate", "128"], "MP3", "MPEG_LAYER_III", 44100),
])
def test_output_format_follows_the_extension(song, tmp_path, name, args, fmt, subtype, rate):
    out = tmp_path / name
    assert main(["process", str(song), "-o", str(out), "-q", *args]) == 0
    info = sf.info(str(out))
    assert (info.format, info.subtype, info.samplerate) == (fmt, subtype, rate)


@pytest.mark.parametrize("name,args,message", [
    ("o", [], "no extension"),
    ("o.xyz", [], "extension .xyz"),
    ("o.flac", ["--format", "mp3"], "says flac but the format option says mp3"),
    ("o.mp3", ["--bit-depth", "16"], "--bit-depth applies to WAV and FLAC only"),
    ("o.ogg", ["--bit-depth", "24"], "--bit-depth applies to WAV and FLAC only"),
    ("o.wav", ["--mp3-bitrate", "192"], "--mp3-bitrate applies to MP3 output only"),
])
def test_format_refusals_explain(song, tmp_path, capsys, name, args, message):
    rc = main(["process", str(song), "-o", str(tmp_path / name), "-q", *args])
    err = _err_lines(capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error [unsupported_export]: ") and message in err[0]
    if "no extension" in message or "xyz" in message:
        assert all(f".{f}" in err[0] for f in ("wav", "flac", "mp3", "ogg", "opus"))
    assert not (tmp_path / name).exists()


# --------------------------------------------------------------------------- several inputs


def test_several_inputs_into_a_folder(song, tmp_path, capsys):
    other = write_sf(tmp_path / "other.flac", music_mix(1.0, seed=9) * 0.4, SR)
    bad = tmp_path / "notes.mp3"
    bad.write_bytes(b"not audio at all\n" * 100)
    outdir = tmp_path / "restored"
    rc = main(["process", str(song), str(bad), str(other), "-o", f"{outdir}/", "-q", "--format", "flac"])
    cap = capsys.readouterr()
    assert rc == 1  # some failed
    assert sorted(p.name for p in outdir.iterdir()) == ["other.restored.flac", "song.restored.flac"]
    out_lines = cap.out.strip().splitlines()
    assert out_lines[0].startswith("[1/3] song.wav: wrote ") and out_lines[1].startswith("[3/3] other.flac: wrote ")
    assert out_lines[-1] == "2 of 3 files restored; failed: notes.mp3"
    assert cap.err.strip().splitlines() == [l for l in cap.err.strip().splitlines() if l.startswith("[2/3] notes.mp3: error [not_audio]")]
    # a template, and a name clash refused before any work
    rc = main(["process", str(song), "-o", str(outdir), "-q", "--name-template", "{name}-clean.{ext}"])
    assert rc == 0 and (outdir / "song-clean.wav").exists()
    twin = tmp_path / "b" / "song.wav"
    twin.parent.mkdir()
    twin.write_bytes(song.read_bytes())
    capsys.readouterr()
    assert main(["process", str(song), str(twin), "-o", str(tmp_path / "x"), "-q"]) == 2
    assert "would both be written" in capsys.readouterr().err


def test_help_says_several_inputs_and_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["process", "--help"])
    out = capsys.readouterr().out
    assert "Exit status: 0 done, 1 some of several files failed, 2 error" in " ".join(out.split())
    assert "examples:" in out


# --------------------------------------------------------------------------- odd levels


def _write(tmp_path: Path, name: str, x: np.ndarray) -> Path:
    return write_sf(tmp_path / name, x, SR, subtype="FLOAT")


_QUIET = {
    "1_frame": lambda: np.full((2, 1), 0.1, np.float32),
    "10_frames": lambda: np.random.default_rng(0).standard_normal((2, 10)).astype(np.float32) * 0.1,
    "441_frames": lambda: np.random.default_rng(1).standard_normal((2, 441)).astype(np.float32) * 0.1,
    "4410_frames": lambda: np.random.default_rng(2).standard_normal((2, 4410)).astype(np.float32) * 0.1,
    "zeros_3s": lambda: np.zeros((2, 3 * SR), np.float32),
    "1e-40": lambda: np.full((2, SR), 1e-40, np.float32),
    "music_-80dB": lambda: music_mix(2.0, seed=4) * np.float32(10 ** (-80 / 20)),
}


@pytest.mark.parametrize("case", list(_QUIET))
def test_silent_or_too_quiet_input_is_written_and_said(tmp_path, capsys, case):
    src = _write(tmp_path, f"{case}.wav", _QUIET[case]())
    out = tmp_path / "o.wav"
    rc = main(["process", str(src), "-o", str(out), "-q"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    last = cap.out.strip().splitlines()[-1]
    assert "silent or below the -70 LUFS gate" in last and "loudness target not applied" in last
    assert "LUFS," not in last  # no loudness claim
    assert sf.info(str(out)).frames == _QUIET[case]().shape[1]


@pytest.mark.parametrize("level", [0.5, -1.0])
def test_dc_input_does_not_claim_the_target(tmp_path, capsys, level):
    src = _write(tmp_path, "dc.wav", np.full((2, 3 * SR), level, np.float32))
    rc = main(["process", str(src), "-o", str(tmp_path / "o.wav"), "-q", "--report", str(tmp_path / "r.json")])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    report = json.loads((tmp_path / "r.json").read_text())
    assert rc == 0
    if report["master"]["target_met"]:
        assert "(-14.0 LUFS" in last
    else:
        assert "loudness target was NOT met" in last and "(target -14.0)" in last
        assert "no audible band (a constant DC offset" in last


@pytest.mark.parametrize("scale", [1e6, 1e30])
def test_absurd_float_levels_are_refused(tmp_path, capsys, scale):
    src = _write(tmp_path, "loud.wav", music_mix(1.0, seed=2) * np.float32(scale))
    rc = main(["process", str(src), "-o", str(tmp_path / "o.wav"), "-q"])
    err = _err_lines(capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error [unsupported_audio]: ") and "dBFS" in err[0]
    assert not (tmp_path / "o.wav").exists()


# --------------------------------------------------------------------------- odd files, one line


def _run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "resonate_stream", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_fifo_input_is_refused_not_waited_for(tmp_path):
    os.mkfifo(tmp_path / "f.wav")
    r = _run_cli("process", str(tmp_path / "f.wav"), "-o", str(tmp_path / "o.wav"), timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error [unsupported_audio]: ")
    assert len(r.stderr.strip().splitlines()) == 1


def test_damaged_mp3_gives_exactly_one_line(tmp_path):
    good = write_sf(tmp_path / "good.mp3", sine(440, 3.0, amp=0.3), SR)
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(0)
    for j in rng.integers(200, len(data), 300):
        data[j] = int(rng.integers(0, 256))
    (tmp_path / "bad.mp3").write_bytes(bytes(data))
    r = _run_cli("process", str(tmp_path / "bad.mp3"), "-o", str(tmp_path / "o.wav"), "-q")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error ["), r.stderr[:800]
    verbose = _run_cli("process", str(tmp_path / "bad.mp3"), "-o", str(tmp_path / "o.wav"), "-q", "--verbose")
    assert "decoder messages" in verbose.stderr and verbose.stderr.strip().splitlines()[-1] == lines[0]


# --------------------------------------------------------------------------- the CLI people expect


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and re.match(r"resonate \S+", capsys.readouterr().out)


#: options whose help belongs to other owners this session (settings handling; the stream client)
_NOT_OURS = {"--settings", "--set", "--server", "--token", "--send-stems", "--output", "--quiet", "--help"}


def test_every_option_states_its_default():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = []
    for name, p in sub.choices.items():
        for a in p._actions:
            opts = set(a.option_strings)
            if not opts or opts & _NOT_OURS or a.required:
                continue
            if "default" not in (a.help or ""):
                missing.append(f"{name} {'/'.join(a.option_strings)}")
    assert missing == []


def test_typo_in_a_subcommand_option_shows_that_subcommands_usage(song, capsys):
    with pytest.raises(SystemExit) as e:
        main(["info", str(song), "--jsn"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: resonate info" in err and "--jsn" in err


def test_progress_is_plain_lines_off_a_terminal_and_notes_are_short(song, tmp_path, capsys):
    assert main(["process", str(song), "-o", str(tmp_path / "a.wav")]) == 0
    first = capsys.readouterr()
    assert "\x1b[" not in first.err and "\r" not in first.err
    assert "progress: restore 100%" in first.err
    assert main(["process", str(song), "-o", str(tmp_path / "b.wav")]) == 0  # stems from the cache
    cap = capsys.readouterr()
    sep_lines = [l for l in cap.err.splitlines() if "separat" in l.lower() or "demucs" in l.lower()]
    assert sep_lines == ["note: separation: dsp, stems reused from the cache (separation skipped)"]
    assert all(len(l) <= 120 for l in cap.err.splitlines())
    out = cap.out.strip().splitlines()
    assert any(l.strip().startswith("loudness") and "->" in l for l in out)  # before/after summary
    assert out[-1].startswith(f"wrote {tmp_path / 'b.wav'}") and "cached stems" in out[-1]
    assert main(["cache", "ls"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["key", "input"] and "last used" in table[0]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", table[1]) and "song.wav" in table[1]


def test_serve_on_a_busy_port_is_one_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc = main(["serve", "--port", str(port), "--in-process"])
    err = _err_lines(capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error [port_in_use]: ") and str(port) in err[0]


def test_info_table_is_readable(song, capsys):
    assert main(["info", str(song)]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "'" not in out and "None" not in out
    assert re.search(r"^loudness\s+-?\d+\.\d LUFS$", out, re.M)
    assert info_table({"clipping_ratio": 7.07e-05})[0].endswith("7.07e-05 (fraction)")


def test_summary_says_what_got_worse():
    report = {"metrics_before": {"snr_db": 20.0, "quality_score": 70.0, "bandwidth_low_hz": 100.0,
                                 "bandwidth_high_hz": 8000.0, "integrated_lufs": -20.0},
              "metrics_after": {"snr_db": 15.0, "quality_score": 75.0, "bandwidth_low_hz": 100.0,
                                "bandwidth_high_hz": 8000.0},
              "master": {"output_lufs": -14.0, "target_lufs": -14.0, "input_true_peak_dbtp": -3.0,
                         "output_true_peak_dbtp": -1.0}}
    lines = before_after_lines(report)
    assert lines[-1] == "got worse: SNR (20.0 dB -> 15.0 dB)"
    assert any(l.strip().startswith("SNR") and l.endswith("(worse)") for l in lines)


def test_cache_table_warns_past_its_limit():
    from resonate_stream.cache import CacheEntry

    e = CacheEntry(key="ab" * 32, operation="separate", size_bytes=3_000_000, created=1.7e9, last_used=1.7e9,
                   stems=("vocals",), frames=SR, sample_rate=SR, channels=2, params={"input": "gig.m4a"})
    lines = cache_table([e], limit_bytes=1_000_000)
    assert "gig.m4a" in lines[1] and lines[-1].startswith("warning: the cache holds more than")
