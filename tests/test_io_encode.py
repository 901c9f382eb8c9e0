"""Progressive, atomic, dithered export (engine.io.encode)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from engine.audio import SAMPLE_RATE
from engine.errors import NonFiniteAudioError, OutputError, SettingsError
from engine.io.encode import AudioWriter, UnsupportedExportError, check_writable

from audio_fixtures import dominant_frequency, noise, sine, sine_amplitude

LSB16 = 1.0 / 32768


def write_blocks(path, x, block=10000, **kw) -> AudioWriter:
    with AudioWriter(path, **kw) as w:
        for i in range(0, x.shape[1], block):
            w.write(x[:, i:i + block])
    return w


# --------------------------------------------------------------------------- round trips

ROUND_TRIPS = [("wav", 16, "PCM_16"), ("wav", 24, "PCM_24"), ("wav", 32, "FLOAT"),
               ("flac", 16, "PCM_16"), ("flac", 24, "PCM_24"), ("mp3", 16, "MPEG_LAYER_III")]


@pytest.mark.parametrize("fmt,bits,subtype", ROUND_TRIPS, ids=[f"{f}{b}" for f, b, _ in ROUND_TRIPS])
def test_round_trip(tmp_path, fmt, bits, subtype):
    x = sine(1000, 1.5, SAMPLE_RATE, amp=0.5)
    w = write_blocks(tmp_path / f"out.{fmt}", x, bit_depth=bits)
    assert (w.format, w.subtype, w.frames_written) == (fmt, subtype, x.shape[1])
    info = sf.info(str(w.path))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 2, subtype)
    y, sr = sf.read(str(w.path), dtype="float64", always_2d=True)
    assert y.shape[0] == x.shape[1]
    core = y[2048:-2048, 0]
    assert dominant_frequency(core, sr) == pytest.approx(1000, abs=0.5)
    if fmt == "mp3":
        assert sine_amplitude(core, 1000, sr) == pytest.approx(0.5, abs=0.02)
    elif bits == 32:
        np.testing.assert_array_equal(y.T.astype(np.float32), x)  # float is stored as is
    else:
        lsb = 2.0 ** -(bits - 1)
        assert np.abs(y.T - x).max() <= 1.5 * lsb  # rounding + TPDF dither stay within 1.5 LSB
        assert sine_amplitude(core, 1000, sr) == pytest.approx(0.5, abs=2 * lsb)


@pytest.mark.parametrize("fmt,bits,rate", [("wav", 24, 48000), ("flac", 16, 96000), ("mp3", 16, 48000)])
def test_export_at_another_rate_has_the_right_length(tmp_path, fmt, bits, rate):
    x = sine(1000, 1.3, SAMPLE_RATE, amp=0.5)
    w = write_blocks(tmp_path / f"hi.{fmt}", x, block=777, bit_depth=bits, sample_rate=rate)
    y, sr = sf.read(str(w.path), dtype="float64", always_2d=True)
    assert sr == rate
    assert abs(y.shape[0] - round(x.shape[1] * rate / SAMPLE_RATE)) <= 2
    assert w.frames_written == y.shape[0]
    assert dominant_frequency(y[4096:-4096, 0], sr) == pytest.approx(1000, abs=0.5)
    assert sine_amplitude(y[4096:-4096, 0], 1000, sr) == pytest.approx(0.5, abs=0.02 if fmt == "mp3" else 1e-3)


def test_mono_export_is_the_mean_of_both_sides(tmp_path):
    x = np.stack([sine(440, 0.5)[0], -0.5 * sine(440, 0.5)[0]])
    w = write_blocks(tmp_path / "mono.wav", x, bit_depth=32, channels=1)
    y, _ = sf.read(str(w.path), dtype="float32", always_2d=True)
    assert y.shape == (x.shape[1], 1)
    np.testing.assert_allclose(y[:, 0], 0.5 * (x[0] + x[1]), atol=1e-7)


def test_integer_formats_clip_instead_of_wrapping(tmp_path):
    x = sine(100, 0.2, amp=1.5)
    y16, _ = sf.read(str(write_blocks(tmp_path / "c.wav", x, bit_depth=16).path), dtype="int16")
    assert y16.max() == 32767 and y16.min() == -32768
    # where the input is far above full scale the output sits at the rails, never wraps
    over = x[0] > 1.01
    assert np.all(y16[over, 0] == 32767)
    yf, _ = sf.read(str(write_blocks(tmp_path / "f.wav", x, bit_depth=32).path), dtype="float32")
    assert yf.max() == pytest.approx(1.5, abs=1e-3)  # float keeps overs


# --------------------------------------------------------------------------- dither


def test_tpdf_dither_makes_error_independent_of_signal(tmp_path):
    # a slow sine 3 LSB tall: without dither the error is a fixed function of the signal
    x = sine(37.0, 2.0, amp=3 * LSB16, channels=2, phase=0.3)
    w = write_blocks(tmp_path / "quiet.wav", x, bit_depth=16, dither_seed=7)
    y, _ = sf.read(str(w.path), dtype="int16", always_2d=True)
    x_lsb = x.T.astype(np.float64) * 32768
    err = y.astype(np.float64) - x_lsb
    assert np.sqrt(np.mean(err ** 2)) == pytest.approx(0.5, abs=0.02)  # 1/12 + 1/6 LSB^2
    frac = x_lsb - np.floor(x_lsb)  # where the signal sits between two steps
    for lo in np.arange(0.0, 1.0, 0.125):
        sel = (frac >= lo) & (frac < lo + 0.125)
        assert abs(err[sel].mean()) < 0.02, lo  # no signal-dependent bias
        assert err[sel].var() == pytest.approx(0.25, abs=0.03), lo  # nor noise modulation (TPDF)


def test_dither_keeps_a_sine_below_one_lsb(tmp_path):
    x = sine(440, 2.0, amp=0.4 * LSB16)  # plain rounding would give digital silence
    y, _ = sf.read(str(write_blocks(tmp_path / "tiny.wav", x, bit_depth=16).path), dtype="int16", always_2d=True)
    assert np.count_nonzero(y) > 0.3 * y.size
    assert sine_amplitude(y[:, 0].astype(np.float64), 440, SAMPLE_RATE) == pytest.approx(0.4, abs=0.03)


def test_24_bit_dither_is_scaled_to_24_bit_steps(tmp_path):
    x = noise(0.5, rms=0.1, seed=2)
    y, _ = sf.read(str(write_blocks(tmp_path / "n24.flac", x, bit_depth=24).path), dtype="int32", always_2d=True)
    err = (y >> 8).astype(np.float64) - x.T.astype(np.float64) * 2 ** 23
    assert np.sqrt(np.mean(err ** 2)) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("fmt,bits,rate", [("wav", 16, 44100), ("flac", 24, 44100), ("wav", 32, 44100),
                                           ("mp3", 16, 44100), ("wav", 24, 48000)])
def test_same_seed_gives_identical_bytes_whatever_the_blocks(tmp_path, fmt, bits, rate):
    x = noise(1.0, rms=0.2, seed=3)
    a = write_blocks(tmp_path / f"a.{fmt}", x, block=44100, bit_depth=bits, sample_rate=rate, dither_seed=5)
    b = write_blocks(tmp_path / f"b.{fmt}", x, block=313, bit_depth=bits, sample_rate=rate, dither_seed=5)
    assert a.path.read_bytes() == b.path.read_bytes()
    if fmt == "wav" and bits == 32:  # the PEAK chunk's wall-clock timestamp is zeroed
        data = a.path.read_bytes()
        i = data.find(b"PEAK")
        assert i < 0 or data[i + 12:i + 16] == b"\x00" * 4


def test_different_seeds_give_different_dither(tmp_path):
    x = noise(0.2, rms=0.2, seed=3)
    a = write_blocks(tmp_path / "a.wav", x, dither_seed=1)
    b = write_blocks(tmp_path / "b.wav", x, dither_seed=2)
    ya, _ = sf.read(str(a.path), dtype="int16")
    yb, _ = sf.read(str(b.path), dtype="int16")
    assert np.count_nonzero(ya != yb) > 0.3 * ya.size and np.abs(ya.astype(int) - yb).max() <= 2


# --------------------------------------------------------------------------- atomicity


def test_only_the_temp_file_exists_while_writing(tmp_path):
    dest = tmp_path / "master.flac"
    w = AudioWriter(dest, bit_depth=24)
    w.write(noise(0.5))
    assert not dest.exists()
    assert w.temp_path.exists() and w.temp_path.parent == tmp_path and w.temp_path.name.startswith(".")
    assert w.temp_path.stat().st_size > 0  # written progressively, not held in memory
    assert w.close() == dest
    assert dest.exists() and not w.temp_path.exists()
    assert sorted(os.listdir(tmp_path)) == ["master.flac"]
    assert sf.info(str(dest)).frames == int(0.5 * SAMPLE_RATE)


def test_abort_leaves_nothing(tmp_path):
    w = AudioWriter(tmp_path / "x.wav")
    w.write(noise(0.2))
    w.abort()
    assert os.listdir(tmp_path) == []


def test_exception_in_context_aborts_and_keeps_existing_file(tmp_path):
    dest = tmp_path / "song.wav"
    dest.write_bytes(b"the previous, good export")
    with pytest.raises(RuntimeError, match="boom"):
        with AudioWriter(dest) as w:
            w.write(noise(0.2))
            raise RuntimeError("boom")
    assert dest.read_bytes() == b"the previous, good export"
    assert os.listdir(tmp_path) == ["song.wav"]
    # a successful run replaces it
    write_blocks(dest, noise(0.1))
    assert sf.info(str(dest)).frames == int(0.1 * SAMPLE_RATE)
    assert os.listdir(tmp_path) == ["song.wav"]


def test_nan_block_is_refused_and_nothing_is_written(tmp_path):
    x = noise(0.1)
    x[0, 10] = np.nan
    with pytest.raises(NonFiniteAudioError):
        with AudioWriter(tmp_path / "nan.wav") as w:
            w.write(x)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- up-front checks


@pytest.mark.parametrize("target", ["missing_folder/out.wav", "a_file.txt/out.wav", "."])
def test_unwritable_destination_fails_before_any_bytes(tmp_path, target):
    (tmp_path / "a_file.txt").write_text("x")
    before = sorted(os.listdir(tmp_path))
    path = tmp_path / target
    with pytest.raises(OutputError) as e:
        check_writable(path)
    assert e.value.code == "output_unwritable"
    with pytest.raises(OutputError):
        AudioWriter(path if target != "." else tmp_path)
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_is_unwritable(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError):
            AudioWriter(folder / "out.wav")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("name,kw", [
    ("x.flac", dict(bit_depth=32)),
    ("x.aiff", {}),  # .ogg and .opus are written since issue 10
    ("x", {}),
    ("x.mp3", dict(sample_rate=96000)),
    ("x.wav", dict(sample_rate=1000)),
    ("x.wav", dict(channels=6)),
    ("x.wav", dict(bit_depth=20)),
])
def test_unsupported_exports_are_settings_errors(tmp_path, name, kw):
    with pytest.raises(UnsupportedExportError) as e:
        AudioWriter(tmp_path / name, **kw)
    assert e.value.code == "unsupported_export" and isinstance(e.value, SettingsError)
    assert os.listdir(tmp_path) == []


def test_format_argument_overrides_extension(tmp_path):
    w = write_blocks(tmp_path / "out.bin", noise(0.1), format="FLAC", bit_depth=16)
    assert sf.info(str(w.path)).format == "FLAC" and w.format == "flac"
