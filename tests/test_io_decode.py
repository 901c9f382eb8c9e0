"""Streaming decode (engine.io.decode), resampling and PCM push decoding."""
from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
import soxr

from engine.audio import SAMPLE_RATE
from engine.errors import (
    EmptyAudioError,
    InputError,
    NonFiniteAudioError,
    NotAudioError,
    SettingsError,
    TruncatedAudioError,
    UnsupportedAudioError,
)
from engine.io.channels import downmix_matrix
from engine.io.decode import AudioInfo, PcmPushDecoder, open_audio, probe
from engine.io.exceptions import AudioFileNotFoundError, AudioFileUnreadableError
from engine.io.resample import StreamResampler

from audio_fixtures import (
    concat,
    dominant_frequency,
    noise,
    sine,
    sine_amplitude,
    truncate_file,
    write_m4a,
    write_sf,
)

BLOCK_S = 0.25
BLOCK = int(round(BLOCK_S * SAMPLE_RATE))


def decode_all(path, block_seconds=BLOCK_S, **kw):
    with open_audio(path, block_seconds, **kw) as dec:
        blocks = list(dec)
        return dec, blocks


def assert_block_shapes(blocks, block_size=BLOCK):
    assert blocks, "no blocks"
    for b in blocks:
        assert b.dtype == np.float32 and b.ndim == 2 and b.shape[0] == 2 and b.flags.c_contiguous
    assert all(b.shape[1] == block_size for b in blocks[:-1])
    assert 0 < blocks[-1].shape[1] <= block_size


# --------------------------------------------------------------------------- every format

# (extension, subtype/codec, source rate, source channels, lossless)
FORMATS = [
    ("wav", "PCM_16", 44100, 2, True),
    ("wav", "PCM_24", 48000, 2, True),
    ("wav", "FLOAT", 22050, 1, True),
    ("flac", "PCM_16", 44100, 2, True),
    ("flac", "PCM_24", 96000, 1, True),
    ("ogg", "VORBIS", 44100, 2, False),
    ("mp3", "MPEG_LAYER_III", 44100, 2, False),
    ("mp3", "MPEG_LAYER_III", 32000, 1, False),
    ("m4a", "aac", 48000, 2, False),
    ("m4a", "aac", 44100, 1, False),
]


@pytest.mark.parametrize("ext,subtype,sr,ch", [f[:4] for f in FORMATS],
                         ids=[f"{f[0]}-{f[1]}-{f[2]}-{f[3]}ch" for f in FORMATS])
def test_every_format_decodes_to_working_stereo(tmp_path, ext, subtype, sr, ch):
    lossless = dict(((f[0], f[1], f[2], f[3]), f[4]) for f in FORMATS)[(ext, subtype, sr, ch)]
    seconds = 1.5
    x = sine(1000.0, seconds, sr, amp=0.5, channels=ch)
    path = tmp_path / f"in.{ext}"
    if ext == "m4a":
        write_m4a(path, x, sr)
    else:
        write_sf(path, x, sr, subtype=subtype)

    dec, blocks = decode_all(path)
    assert_block_shapes(blocks)
    y = concat(blocks)
    expected_n = round(x.shape[1] * SAMPLE_RATE / sr)
    assert abs(y.shape[1] - expected_n) <= 1, (y.shape, expected_n)
    assert dec.position == y.shape[1]
    assert dec.info.sample_rate == sr and dec.info.channels == ch
    assert dec.info.container == ext
    assert dec.duration_s == pytest.approx(seconds, abs=0.01)

    core = y[:, 2048:-2048]  # away from resampler / codec edges
    if ch == 1:
        np.testing.assert_array_equal(y[0], y[1])  # mono is duplicated, not halved
    assert dominant_frequency(core[0], SAMPLE_RATE) == pytest.approx(1000.0, abs=1.0)
    assert sine_amplitude(core[0], 1000.0, SAMPLE_RATE) == pytest.approx(0.5, abs=2e-3 if lossless else 0.06)
    if lossless and sr == SAMPLE_RATE:
        np.testing.assert_allclose(y[0], x[0], atol=2.0 / 32768)
    elif lossless:  # resampled in streaming fashion = one-shot libsoxr of the whole file
        ref = soxr.resample(x[0].astype(np.float32), sr, SAMPLE_RATE, "HQ")
        np.testing.assert_allclose(y[0], ref, atol=1e-4)


def test_mp3_streamed_decode_equals_whole_file_read(tmp_path):
    # regression: SoundFile.read seeks after every read, which restarts libmpg123 and
    # zeroes audio at each block boundary; the decoder must not lose anything
    import soundfile as sf

    path = write_sf(tmp_path / "m.mp3", noise(2.0, 44100, seed=9), 44100)
    whole, _ = sf.read(str(path), dtype="float32", always_2d=True)
    _, blocks = decode_all(path, block_seconds=0.1)
    np.testing.assert_array_equal(concat(blocks), whole.T)


def test_decoding_is_independent_of_block_size(tmp_path):
    x = noise(2.0, 48000, rms=0.1, channels=2, seed=3)
    path = write_sf(tmp_path / "n.wav", x, 48000, subtype="FLOAT")
    _, a = decode_all(path, block_seconds=1.0)
    _, b = decode_all(path, block_seconds=0.037)
    np.testing.assert_array_equal(concat(a), concat(b))


def test_probe_reports_source_facts_without_decoding(tmp_path):
    path = write_sf(tmp_path / "p.flac", sine(440, 2.0, 48000, channels=1), 48000, subtype="PCM_24")
    info = probe(path)
    assert isinstance(info, AudioInfo)
    assert (info.container, info.codec, info.sample_rate, info.channels, info.frames) == ("flac", "pcm_24", 48000, 1, 96000)
    assert info.duration_s == pytest.approx(2.0)
    assert info.format == "flac"


def test_video_file_audio_track_is_decoded(tmp_path):
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = c.add_stream("aac", rate=44100, layout="stereo")
        for i in range(5):
            fr = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            fr.pts = i
            for p in v.encode(fr):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        fr = av.AudioFrame.from_ndarray(sine(500, 0.5, 44100), format="fltp", layout="stereo")
        fr.sample_rate, fr.pts = 44100, 0
        for p in list(a.encode(fr)) + list(a.encode(None)):
            c.mux(p)
    dec, blocks = decode_all(path)
    assert dec.info.backend == "pyav" and dec.info.codec == "aac"
    assert concat(blocks).shape[1] == 22050
    assert dominant_frequency(concat(blocks)[0], SAMPLE_RATE) == pytest.approx(500, abs=2)


def test_lossless_alac_in_m4a_decodes_bit_exact(tmp_path):
    import av

    x = (noise(1.3, 44100, seed=1) * 32767).astype(np.int16)
    path = tmp_path / "alac.m4a"
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("alac", rate=44100, layout="stereo")
        for i in range(0, x.shape[1], 4096):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i:i + 4096]), format="s16p", layout="stereo")
            fr.sample_rate, fr.pts = 44100, i
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    dec, blocks = decode_all(path)
    assert (dec.info.backend, dec.info.codec) == ("pyav", "alac")
    np.testing.assert_array_equal(concat(blocks), x.astype(np.float32) / 32768)


def test_aac_priming_and_padding_are_removed(tmp_path):
    x = np.zeros((2, 44100), np.float32)
    x[:, 22050] = 0.9
    path = write_m4a(tmp_path / "click.m4a", x, 44100)
    _, blocks = decode_all(path)
    y = concat(blocks)
    assert y.shape[1] == 44100
    assert abs(int(np.argmax(np.abs(y[0]))) - 22050) <= 2


# --------------------------------------------------------------------------- channels


def test_downmix_of_51_follows_documented_matrix(tmp_path):
    sr, n = 44100, 8820
    s = sine(1000, n / sr, sr, amp=0.5, channels=1)[0]
    order = ["FL", "FR", "FC", "LFE", "BL", "BR"]
    x = np.zeros((6, n), np.float32)
    x[order.index("FC")] = s
    x[order.index("LFE")] = s  # must vanish
    x[order.index("BL")] = s
    path = write_sf(tmp_path / "six.wav", x, sr, subtype="FLOAT")
    _, blocks = decode_all(path)
    y = concat(blocks)
    norm = 1 + 2 * np.sqrt(0.5)  # front + centre + surround per side
    np.testing.assert_allclose(y[0], s * (2 * np.sqrt(0.5)) / norm, atol=1e-6)
    np.testing.assert_allclose(y[1], s * np.sqrt(0.5) / norm, atol=1e-6)
    assert np.abs(y).max() <= 1.0


def test_downmix_matrix_never_clips_full_scale_input():
    for ch in range(1, 33):
        m = downmix_matrix(ch)
        assert m.shape == (2, ch)
        assert np.abs(m).sum(axis=1).max() <= 1.0 + 1e-6 or ch == 1
        assert np.all(m.sum(axis=1) > 0)
    np.testing.assert_array_equal(downmix_matrix(2), np.eye(2))


def _peak_decode_memory(path, block_seconds):
    """(samples decoded, peak bytes traced by tracemalloc while decoding)."""
    tracemalloc.start()
    try:
        total = 0
        with open_audio(path, block_seconds=block_seconds) as dec:
            for b in dec:
                total += b.shape[1]
        return total, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_file_gets_longer(tmp_path):
    import soundfile as sf

    sr = 48000  # resampled on the way, the most buffering path
    peaks = {}
    for seconds in (8.0, 40.0):
        x = (np.random.default_rng(0).standard_normal((int(sr * seconds), 2)) * 3000).astype(np.int16)
        path = tmp_path / f"long{int(seconds)}.wav"
        sf.write(str(path), x, sr, subtype="PCM_16")
        del x
        total, peaks[seconds] = _peak_decode_memory(path, 0.5)
        assert total == round(seconds * SAMPLE_RATE)
    whole_bytes = 40.0 * SAMPLE_RATE * 2 * 4  # the long recording decoded at once, float32
    assert peaks[40.0] < whole_bytes / 4, f"peak {peaks[40.0] / 1e6:.1f} MB"
    assert peaks[40.0] < 1.2 * peaks[8.0] + 100_000, peaks  # 5x the audio, same memory


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(AudioFileNotFoundError) as e:
        open_audio(tmp_path / "nope.wav")
    assert e.value.code == "file_not_found" and isinstance(e.value, InputError)
    assert "nope.wav" in e.value.message


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(AudioFileUnreadableError):
        probe(tmp_path)


@pytest.mark.parametrize("name,content", [
    ("text.wav", b"this is a shopping list, not a recording\n" * 50),
    ("random.wav", np.random.default_rng(1).bytes(30000)),
    ("random.mp3", np.random.default_rng(2).bytes(30000)),
    ("notes.txt", b"hello\n" * 500),
])
def test_not_audio(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(NotAudioError) as e:
        open_audio(path)
    assert e.value.code == "not_audio"


def test_video_without_audio_is_not_audio(tmp_path):
    import av

    path = tmp_path / "silent_film.mp4"
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            fr = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            fr.pts = i
            for p in v.encode(fr):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    with pytest.raises(NotAudioError, match="no audio stream"):
        open_audio(path)


def test_zero_byte_file_is_empty_and_truncated(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    with pytest.raises(EmptyAudioError) as e:
        open_audio(path)
    assert isinstance(e.value, TruncatedAudioError) and e.value.code == "empty_audio"


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("flac", "PCM_16"), ("ogg", "VORBIS")])
def test_zero_length_audio(tmp_path, ext, subtype):
    path = write_sf(tmp_path / f"empty.{ext}", np.zeros((2, 0), np.float32), 44100, subtype=subtype)
    with pytest.raises(EmptyAudioError):
        with open_audio(path) as dec:
            list(dec)


def test_header_only_wav_is_truncated(tmp_path):
    full = write_sf(tmp_path / "full.wav", sine(1000, 1.0), 44100, subtype="PCM_16")
    path = truncate_file(full, tmp_path / "header_only.wav", 0.0, extra_bytes=44)
    with pytest.raises(TruncatedAudioError):
        open_audio(path)
    cut_header = truncate_file(full, tmp_path / "cut_header.wav", 0.0, extra_bytes=30)
    with pytest.raises(TruncatedAudioError, match="header"):
        probe(cut_header)


def test_cut_wav_is_truncated_at_open_and_salvageable(tmp_path):
    full = write_sf(tmp_path / "full.wav", sine(1000, 2.0), 44100, subtype="PCM_16")
    path = truncate_file(full, tmp_path / "cut.wav", 0.5, extra_bytes=1)  # also cuts mid-sample
    with pytest.raises(TruncatedAudioError) as e:
        probe(path)
    assert "2.00 s" in e.value.message and "1.00 s" in e.value.message
    dec, blocks = decode_all(path, allow_truncated=True)
    assert dec.truncated and "truncated" in dec.truncation_message
    whole_frames_left = (path.stat().st_size - 44) // 4  # 44-byte header, 4-byte frames
    y = concat(blocks)
    assert y.shape[1] == whole_frames_left
    np.testing.assert_allclose(y[0], sine(1000, 2.0)[0, :whole_frames_left], atol=1.0 / 32768)


def test_cut_flac_raises_at_the_block_where_it_shows(tmp_path):
    full = write_sf(tmp_path / "full.flac", noise(3.0, 44100, seed=4), 44100, subtype="PCM_16")
    path = truncate_file(full, tmp_path / "cut.flac", 0.6)
    got = []
    with pytest.raises(TruncatedAudioError):
        with open_audio(path, block_seconds=0.25) as dec:
            for b in dec:
                got.append(b)
    assert 0 < sum(b.shape[1] for b in got) < 3 * 44100


def test_cut_mp3_is_truncated(tmp_path):
    full = write_sf(tmp_path / "full.mp3", noise(3.0, 44100, seed=5), 44100)
    path = truncate_file(full, tmp_path / "cut.mp3", 0.5, extra_bytes=7)  # mid-frame
    with pytest.raises(TruncatedAudioError, match="truncated"):
        with open_audio(path) as dec:
            list(dec)


def test_cut_ogg_is_truncated(tmp_path):
    full = write_sf(tmp_path / "full.ogg", noise(4.0, 44100, seed=6), 44100)
    path = truncate_file(full, tmp_path / "cut.ogg", 0.7)
    with pytest.raises(TruncatedAudioError, match="end-of-stream"):
        open_audio(path)
    dec, blocks = decode_all(path, allow_truncated=True)
    assert dec.truncated and 0 < concat(blocks).shape[1] < 4 * 44100


@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "faststart"])
def test_cut_m4a_is_truncated(tmp_path, faststart):
    full = write_m4a(tmp_path / "full.m4a", noise(3.0, 44100, seed=7), 44100, faststart=faststart)
    path = truncate_file(full, tmp_path / "cut.m4a", 0.5)
    with pytest.raises(TruncatedAudioError):
        with open_audio(path) as dec:
            list(dec)


def test_nan_in_float_wav_raises_at_that_block(tmp_path):
    x = sine(1000, 3.0)
    x[1, int(2.5 * 44100)] = np.nan
    x[0, int(2.6 * 44100)] = np.inf
    path = write_sf(tmp_path / "nan.wav", x, 44100, subtype="FLOAT")
    got = []
    with pytest.raises(NonFiniteAudioError) as e:
        with open_audio(path, block_seconds=1.0) as dec:
            for b in dec:
                got.append(b)
    assert len(got) == 2  # the good seconds before the bad one came through
    assert e.value.code == "non_finite_samples" and "2.00 s" in e.value.message


@pytest.mark.parametrize("sr", [4000, 400000])
def test_absurd_sample_rate(tmp_path, sr):
    path = write_sf(tmp_path / f"r{sr}.wav", np.zeros((1, 100), np.float32), sr, subtype="PCM_16")
    with pytest.raises(UnsupportedAudioError) as e:
        open_audio(path)
    assert e.value.code == "unsupported_audio" and str(sr) in e.value.message


def test_too_many_channels(tmp_path):
    path = write_sf(tmp_path / "c33.wav", np.zeros((33, 10), np.float32), 44100, subtype="PCM_16")
    with pytest.raises(UnsupportedAudioError, match="33 channel"):
        open_audio(path)


def test_zero_channels_in_header(tmp_path):
    fmt = struct.pack("<HHIIHH", 1, 0, 44100, 0, 0, 16)
    data = b"\x00" * 400
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path = tmp_path / "c0.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(UnsupportedAudioError, match="0 channel"):
        open_audio(path)


# --------------------------------------------------------------------------- resampler


def test_stream_resampler_matches_one_shot_in_random_chunks():
    rng = np.random.default_rng(11)
    in_rate, out_rate = 48000, 44100
    x = sine(1000, 1.3, in_rate, amp=0.8)
    r = StreamResampler(in_rate, out_rate, channels=2)
    outs, pos = [], 0
    while pos < x.shape[1]:
        n = int(rng.integers(1, 5000))
        outs.append(r.process(x[:, pos:pos + n]))
        pos += n
    outs.append(r.flush())
    y = concat(outs)
    ref = soxr.resample(np.ascontiguousarray(x.T), in_rate, out_rate, "HQ").T
    assert abs(y.shape[1] - round(x.shape[1] * out_rate / in_rate)) <= 3
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-4)
    assert dominant_frequency(y[0], out_rate) == pytest.approx(1000, abs=0.5)


def test_stream_resampler_upsamples_and_is_reusable_after_flush():
    x = sine(1000, 0.5, 44100, channels=1)
    r = StreamResampler(44100, 96000, 1)
    a = concat([r.process(x[:, :1000]), r.process(x[:, 1000:]), r.flush()], 1)
    b = concat([r.process(x), r.flush()], 1)
    assert abs(a.shape[1] - round(x.shape[1] * 96000 / 44100)) <= 3
    np.testing.assert_array_equal(a, b)


def test_stream_resampler_identity_copies_through():
    x = noise(0.1, 44100)
    r = StreamResampler(44100, 44100, 2)
    y = r.process(x)
    np.testing.assert_array_equal(y, x)
    assert y is not x and r.flush().shape == (2, 0)


# --------------------------------------------------------------------------- PCM push


def _push_in_random_pieces(dec, data, seed=0, max_piece=7000):
    rng = np.random.default_rng(seed)
    out, pos = [], 0
    while pos < len(data):
        n = int(rng.integers(1, max_piece))
        out += dec.push(data[pos:pos + n])
        pos += n
    return out + dec.finish()


def test_pcm_push_f32_any_split_equals_source():
    x = noise(1.1, 44100, seed=8)
    data = np.ascontiguousarray(x.T).astype("<f4").tobytes()
    dec = PcmPushDecoder(44100, 2, "f32le", block_seconds=BLOCK_S)
    blocks = _push_in_random_pieces(dec, data, max_piece=13)  # splits samples apart
    assert_block_shapes(blocks)
    np.testing.assert_array_equal(concat(blocks), x)
    assert dec.position == x.shape[1] and dec.frames_received == x.shape[1]


def test_pcm_push_s16_mono_48k_is_resampled_and_split_invariant():
    x = (sine([440, 3000], 1.0, 48000, amp=0.7, channels=1)[0] * 32767).astype(np.int16)
    data = x.astype("<i2").tobytes()
    a = _push_in_random_pieces(PcmPushDecoder(48000, 1, "s16le", BLOCK_S), data, seed=1)
    b = PcmPushDecoder(48000, 1, "s16le", BLOCK_S)
    b_blocks = b.push(data) + b.finish()
    assert_block_shapes(a)
    ya, yb = concat(a), concat(b_blocks)
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(ya[0], ya[1])
    ref = soxr.resample(x.astype(np.float32) / 32768, 48000, SAMPLE_RATE, "HQ")
    np.testing.assert_allclose(ya[0], ref, atol=1e-5)


def test_pcm_push_errors():
    with pytest.raises(UnsupportedAudioError):
        PcmPushDecoder(1000, 2)
    with pytest.raises(UnsupportedAudioError):
        PcmPushDecoder(44100, 0)
    with pytest.raises(UnsupportedAudioError):
        PcmPushDecoder(44100, 64)
    with pytest.raises(SettingsError):
        PcmPushDecoder(44100, 2, "u8")
    with pytest.raises(EmptyAudioError):
        PcmPushDecoder(44100, 2).finish()

    dec = PcmPushDecoder(44100, 2, "s16le")
    dec.push(b"\x00" * 4001)  # 1000 frames and a stray byte
    with pytest.raises(TruncatedAudioError):
        dec.finish()

    x = np.zeros((1000, 2), "<f4")
    x[500, 1] = np.nan
    with pytest.raises(NonFiniteAudioError):
        PcmPushDecoder(44100, 2, "f32le").push(x.tobytes())
