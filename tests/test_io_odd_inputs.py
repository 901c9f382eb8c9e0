"""engine/io on odd but possible input files: hand-made WAV headers, FIFOs, damaged MP3s, new export formats.

Each case either decodes correctly or is refused with a typed error whose
code a user can look up; nothing crashes with AttributeError/ValueError,
hangs, or prints library chatter.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.errors import UnsupportedAudioError
from engine.io.decode import open_audio
from engine.io.encode import AudioWriter, UnsupportedExportError, export_format_for
from audio_fixtures import concat, sine, write_sf

SR = 44100


def _wav(path: Path, tag: int, bits: int, data: bytes, channels: int = 2, block: int | None = None) -> Path:
    """A RIFF WAV with a hand-written 16-byte ``fmt `` chunk (any tag / bit depth)."""
    block = block if block is not None else channels * max(bits, 8) // 8
    fmt = struct.pack("<HHIIHH", tag, channels, SR, SR * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _pcm16(seconds: float = 0.5) -> bytes:
    return (sine(440, seconds, amp=0.3).T * 32767).astype("<i2").tobytes()


@pytest.mark.parametrize("tag,bits,block", [(1, 0, 4), (0x1234, 16, None), (3, 16, None)],
                         ids=["bits_per_sample_0", "unknown_format_tag", "float_tag_16_bits"])
def test_undecodable_wav_headers_are_refused_as_unsupported_audio(tmp_path, tag, bits, block):
    path = _wav(tmp_path / "odd.wav", tag, bits, _pcm16(), block=block)
    with pytest.raises(UnsupportedAudioError) as e:
        with open_audio(path) as dec:
            list(dec)
    assert e.value.code == "unsupported_audio" and "odd.wav" in e.value.message


def test_64_bit_integer_pcm_decodes(tmp_path):
    x = sine(440, 1.0, amp=0.3)
    path = _wav(tmp_path / "s64.wav", 1, 64, (x.T.astype(np.float64) * (2.0 ** 63 - 1)).astype("<i8").tobytes())
    with open_audio(path) as dec:
        y = concat(dec)
    assert y.shape == (2, SR)
    np.testing.assert_allclose(y, x, atol=1e-6)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_fifo_input_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "f.wav"
    os.mkfifo(fifo)
    result: dict = {}

    def attempt():
        try:
            open_audio(fifo)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            result["error"] = e

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the thread's open() before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("open_audio blocked on a FIFO")
    assert isinstance(result.get("error"), UnsupportedAudioError)
    assert "not a regular file" in result["error"].message


def _damaged_mp3(tmp_path: Path) -> Path:
    good = write_sf(tmp_path / "good.mp3", sine(440, 3.0, amp=0.3), SR)
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(1)
    for j in rng.integers(400, len(data), 300):
        data[j] = int(rng.integers(0, 256))
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(bytes(data))
    return bad


def test_damaged_mp3_prints_no_decoder_chatter(tmp_path):
    bad = _damaged_mp3(tmp_path)
    code = ("import sys\nfrom engine.io.decode import open_audio\n"
            "try:\n    [b for b in open_audio(sys.argv[1])]\nexcept Exception as e:\n    print(type(e).__name__)\n")
    r = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    assert r.stderr == "", r.stderr[:500]  # no libmpg123 "Note: Illegal Audio-MPEG-Header" lines


def test_c_stderr_is_restored_after_a_capture():
    from engine.io.cstderr import captured_c_stderr

    before = os.fstat(2)
    with captured_c_stderr("x"):
        os.write(2, b"hidden\n")
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)


# --------------------------------------------------------------------------- export formats


@pytest.mark.parametrize("name,rate,subtype", [("x.ogg", 44100, "VORBIS"), ("x.opus", 48000, "OPUS")])
def test_ogg_and_opus_are_written_from_the_extension(tmp_path, name, rate, subtype):
    x = sine(1000, 2.0, amp=0.5)
    with AudioWriter(tmp_path / name, sample_rate=rate) as w:
        for i in range(0, x.shape[1], 10000):
            w.write(x[:, i:i + 10000])
    info = sf.info(str(tmp_path / name))
    assert info.format == "OGG" and info.subtype == subtype and info.samplerate == rate
    with open_audio(tmp_path / name) as dec:
        y = concat(dec)
    assert abs(y.shape[1] - x.shape[1]) <= 0.01 * SR


def test_opus_refuses_44100_hz_with_advice(tmp_path):
    with pytest.raises(UnsupportedExportError, match="48000"):
        AudioWriter(tmp_path / "x.opus", sample_rate=44100)


@pytest.mark.parametrize("name,fmt,message", [
    ("x", None, "no extension"),
    ("x.foo", None, "extension .foo"),
    ("x.flac", "mp3", "says flac but the format option says mp3"),
    ("x.wav", "aiff", "choose one of"),
])
def test_format_from_name_refusals(name, fmt, message):
    with pytest.raises(UnsupportedExportError, match=message) as e:
        export_format_for(name, fmt)
    assert "wav" in e.value.message and "opus" in e.value.message or "says" in e.value.message


def test_format_from_name():
    assert export_format_for("a/b.OGG") == "ogg"
    assert export_format_for("take.restored.mp3") == "mp3"
    assert export_format_for("noext", "flac") == "flac"


@pytest.mark.parametrize("kbps", [128, 320])
def test_constant_mp3_bitrate(tmp_path, kbps):
    x = sine([220, 1000, 5000], 10.0, amp=0.5) + np.random.default_rng(0).standard_normal((2, 10 * SR)).astype(
        np.float32) * 0.05
    path = tmp_path / "x.mp3"
    with AudioWriter(path, mp3_bitrate=kbps) as w:
        w.write(x)
    measured = path.stat().st_size * 8 / 10.0 / 1000.0
    assert abs(measured - kbps) <= 0.05 * kbps


def test_mp3_bitrate_refusals(tmp_path):
    with pytest.raises(UnsupportedExportError, match="not one MP3 has"):
        AudioWriter(tmp_path / "x.mp3", mp3_bitrate=100)
    with pytest.raises(UnsupportedExportError, match="not mp3"):
        AudioWriter(tmp_path / "x.wav", mp3_bitrate=128)


def test_absurd_float_levels_are_refused_but_hot_floats_are_kept(tmp_path):
    x = sine(440, 1.0, amp=0.5)
    write_sf(tmp_path / "hot.wav", x * 4.0, SR, subtype="FLOAT")  # +6 dBFS peaks: a real float export
    with open_audio(tmp_path / "hot.wav") as dec:
        assert np.max(np.abs(concat(dec))) == pytest.approx(2.0, rel=1e-3)
    write_sf(tmp_path / "scaled.wav", x * 1e6, SR, subtype="FLOAT")
    with pytest.raises(UnsupportedAudioError, match=r"\+114 dBFS"):
        with open_audio(tmp_path / "scaled.wav") as dec:
            list(dec)


def test_absurd_levels_in_pushed_pcm_are_refused():
    from engine.io.pcm import PcmPushDecoder

    dec = PcmPushDecoder(sample_rate=SR, channels=2, sample_format="f32le")
    data = (np.full((SR, 2), 1e30, dtype="<f4")).tobytes()
    with pytest.raises(UnsupportedAudioError):
        list(dec.push(data))
        list(dec.finish())
