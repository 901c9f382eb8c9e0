"""Streaming quality metrics: known answers on generated signals."""
from __future__ import annotations

import json

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import fftconvolve, istft, stft

from engine.analysis.metrics import AudioAnalyzer, analyze_array, analyze_file
from engine.audio import db_to_gain
from engine.errors import NonFiniteAudioError, UnsupportedAudioError

SR = 44100
RNG = np.random.default_rng(1234)


def sine(f: float, amp: float, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return amp * np.sin(2 * np.pi * f * t)


def stereo(x: np.ndarray) -> np.ndarray:
    return np.stack([x, x]).astype(np.float32)


def music(seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    """Overlapping decaying harmonic notes with vibrato (mono float64, peak < 1)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.15, 0.6) * SR)
        f0 = rng.choice([110, 147, 196, 220, 262, 330, 392])
        tt = np.arange(min(length, n - pos)) / SR
        vib = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * tt)
        phase = 2 * np.pi * f0 * np.cumsum(vib) / SR
        note = sum(np.sin(h * phase + h) / h ** 1.2 for h in range(1, 12))
        x[pos:pos + len(tt)] += 0.3 * note * np.exp(-3 * tt) * np.minimum(1, tt / 0.01)
        pos += int(0.8 * length)
    return x


def band_noise(lo: float, hi: float, seconds: float = 4.0) -> np.ndarray:
    n = int(seconds * SR)
    spec = np.fft.rfft(RNG.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    return 0.3 * x / np.abs(x).max()


def musical_noise(x: np.ndarray, keep: float = 0.05) -> np.ndarray:
    """Classic spectral-subtraction "birdies": keep 5 % of STFT bins at random."""
    rng = np.random.default_rng(7)
    _, _, z = stft(x, nperseg=1024)
    _, y = istft(z * (rng.random(z.shape) < keep) / np.sqrt(keep), nperseg=1024)
    return y[: len(x)]


def buzz(x: np.ndarray, fm: float = 50.0, depth: float = 0.5) -> np.ndarray:
    """Gate the signal at a fixed rate (frame-rate "robotic" buzz)."""
    t = np.arange(len(x)) / SR
    return x * (1 - depth * (np.sin(2 * np.pi * fm * t) > 0))


# -- known answers -------------------------------------------------------------------

@pytest.mark.parametrize("f", [440.0, 1000.0, 5000.0])
def test_centroid_of_a_sine_is_its_frequency(f):
    m = analyze_array(stereo(sine(f, 0.5, 2.0)))
    assert m.spectral_centroid_hz == pytest.approx(f, rel=0.01)
    assert m.peak_dbfs == pytest.approx(20 * np.log10(0.5), abs=0.01)
    assert m.duration_s == pytest.approx(2.0)


@pytest.mark.parametrize("snr", [10.0, 20.0, 30.0])
def test_snr_of_sine_plus_white_noise(snr):
    s = sine(1000.0, 0.5)
    noise = RNG.standard_normal(len(s)) * np.sqrt(0.125 / 10 ** (snr / 10))
    m = analyze_array(stereo(s + noise))
    assert m.snr_db == pytest.approx(snr, abs=3.0)


def test_snr_drops_as_noise_is_added_to_music():
    x = music(8.0)
    vals = [analyze_array(stereo(x + RNG.standard_normal(len(x)) * sigma)).snr_db
            for sigma in (0.0, 0.01, 0.05)]
    assert vals[0] > vals[1] + 3.0 > vals[2] + 6.0


@pytest.mark.parametrize("amp", [1.25, 2.0, 4.0])
def test_clipping_ratio_of_a_clipped_sine(amp):
    expected = 1 - 2 / np.pi * np.arcsin(1 / amp)  # fraction of time |amp sin| > 1
    m = analyze_array(stereo(np.clip(sine(997.0, amp, 2.0), -1.0, 1.0)))
    assert m.clipping_ratio == pytest.approx(expected, abs=0.01)
    # clipped at 0.8, then turned down: no sample reaches full scale, the flat runs show it
    m = analyze_array(stereo(np.clip(sine(97.0, 0.8 * amp, 2.0), -0.8, 0.8)))
    assert m.clipping_ratio == 0.0
    assert m.flat_run_ratio == pytest.approx(1 - 2 / np.pi * np.arcsin(1 / amp), abs=0.01)


def test_clean_music_has_no_clipping():
    m = analyze_array(stereo(music(4.0)))
    assert m.clipping_ratio == 0.0 and m.flat_run_ratio < 1e-4


def test_bandwidth_of_band_limited_noise():
    m = analyze_array(stereo(band_noise(100.0, 8000.0)))
    assert m.bandwidth_low_hz == pytest.approx(100.0, rel=0.15)
    assert m.bandwidth_high_hz == pytest.approx(8000.0, rel=0.05)


@pytest.mark.parametrize("kind", ["music", "noise"])
def test_loudness_matches_pyloudnorm(kind):
    if kind == "music":
        x = np.stack([music(12.0, seed=2), 0.6 * music(12.0, seed=3)]).astype(np.float32)
    else:
        x = np.stack([band_noise(50, 15000, 12.0), 0.5 * band_noise(200, 5000, 12.0)]).astype(np.float32)
    m = analyze_array(x)
    ref = pyloudnorm.Meter(SR).integrated_loudness(x.T.astype(np.float64))
    assert m.integrated_lufs == pytest.approx(ref, abs=0.2)
    assert np.isfinite(m.loudness_range_lu) and m.loudness_range_lu >= 0.0


def test_dynamic_range_of_alternating_levels():
    n = 2 * SR
    loud = db_to_gain(-10) * np.sqrt(2) * sine(500.0, 1.0, 2.0)  # RMS -10 dBFS
    quiet = db_to_gain(-40) * np.sqrt(2) * sine(500.0, 1.0, 2.0)  # RMS -40 dBFS
    x = np.concatenate([loud, quiet] * 4)
    m = analyze_array(stereo(x))
    assert m.dynamic_range_db == pytest.approx(30.0, abs=1.0)
    steady = analyze_array(stereo(0.1 * RNG.standard_normal(n)))
    assert steady.dynamic_range_db < 1.0


# -- artefacts and quality -------------------------------------------------------------

def test_metallic_detects_musical_noise():
    x = music(8.0)
    clean = analyze_array(stereo(x))
    birdies = analyze_array(stereo(musical_noise(x + 0.01 * RNG.standard_normal(len(x)))))
    white = analyze_array(stereo(0.1 * RNG.standard_normal(8 * SR)))
    assert clean.metallic < 0.2 and white.metallic < 0.2
    assert birdies.metallic > 0.5
    assert 0.0 <= birdies.metallic <= 1.0


def test_robotic_detects_a_fixed_rate_buzz():
    x = music(8.0)
    clean = analyze_array(stereo(x))
    buzzed = analyze_array(stereo(buzz(x, 50.0, 0.3)))
    noise = analyze_array(stereo(0.1 * RNG.standard_normal(8 * SR)))
    steady_tone = analyze_array(stereo(sine(1000.0, 0.5, 8.0)))
    assert buzzed.robotic > 0.8
    assert clean.robotic < 0.3 and noise.robotic < 0.3 and steady_tone.robotic < 0.3


def test_clean_signal_scores_higher_than_damaged():
    x = music(8.0)
    clean = analyze_array(stereo(x))
    damaged = np.clip(3.0 * (x + RNG.standard_normal(len(x)) * 0.03), -1, 1)
    bad = analyze_array(stereo(damaged))
    assert clean.quality_score > bad.quality_score + 15.0
    assert bad.clipping_ratio > 0.01 and bad.snr_db < clean.snr_db
    assert sum(clean.quality_terms.values()) == pytest.approx(clean.quality_score)
    assert 0.0 <= bad.quality_score <= clean.quality_score <= 100.0


def test_silence_and_json():
    m = analyze_array(np.zeros((2, SR), np.float32))
    assert m.quality_score == 0.0 and m.peak_dbfs == float("-inf")
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert d["peak_dbfs"] is None and d["duration_s"] == 1.0 and d["reverb_rt60_s"] is None


def test_reverberation_time_is_reported():
    rng = np.random.default_rng(0)
    x = np.zeros(10 * SR)
    for st in np.arange(0.2, 8.6, 1.4):  # 0.3 s noise bursts with sharp ends
        i = int(st * SR)
        x[i:i + int(0.3 * SR)] = 0.2 * rng.standard_normal(int(0.3 * SR))
    tail_t = np.arange(int(1.2 * SR)) / SR
    ir = rng.standard_normal(len(tail_t)) * np.exp(-6.908 * tail_t / 0.8)
    ir[0] = 10.0
    y = fftconvolve(x, ir)[: len(x)]
    y = 0.5 * y / np.abs(y).max()
    m = analyze_array(stereo(y))
    assert m.reverb_rt60_s == pytest.approx(0.8, rel=0.25)


# -- streaming behaviour ----------------------------------------------------------------

def _state_bytes(obj, seen=None) -> int:
    """Bytes held in numpy arrays (and lists of them) reachable from ``obj``."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (list, tuple)):
        return sum(_state_bytes(v, seen) for v in obj)
    if isinstance(obj, dict):
        return sum(_state_bytes(v, seen) for v in obj.values())
    if hasattr(obj, "__dict__"):
        return _state_bytes(vars(obj), seen)
    return 0


def test_block_sizes_do_not_matter_and_memory_stays_flat():
    x = np.stack([music(6.0, seed=5), 0.5 * music(6.0, seed=6)]).astype(np.float32)
    whole = AudioAnalyzer()
    whole.update(x)
    pieces = AudioAnalyzer()
    rng = np.random.default_rng(0)
    pos = 0
    while pos < x.shape[1]:
        n = int(rng.integers(1, 9000))
        pieces.update(x[:, pos:pos + n])
        pos += n
    a, b = whole.result().to_dict(), pieces.result().to_dict()
    for k in a:
        if isinstance(a[k], float):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9), k
        else:
            assert a[k] == b[k], k
    # state after 6 s and after 36 s of audio: same size, a few MB at most
    size_6 = _state_bytes(whole)
    for _ in range(5):
        whole.update(x)
    assert _state_bytes(whole) <= size_6 + 64 * 1024
    assert size_6 < 4 * 1024 * 1024


def test_bad_blocks_raise_typed_errors():
    an = AudioAnalyzer()
    bad = np.zeros((2, 100), np.float32)
    bad[0, 5] = np.nan
    with pytest.raises(NonFiniteAudioError):
        an.update(bad)
    with pytest.raises(UnsupportedAudioError):
        an.update(np.zeros((3, 100), np.float32))


def test_analyze_file_reports_the_source_format(tmp_path):
    pytest.importorskip("engine.io.decode")
    path = tmp_path / "mono48k.wav"
    t = np.arange(48000 * 2) / 48000
    sf.write(path, 0.5 * np.sin(2 * np.pi * 1000 * t), 48000, subtype="PCM_16")
    m = analyze_file(path)
    assert m.source_sample_rate == 48000 and m.source_channels == 1
    assert m.sample_rate == SR and m.duration_s == pytest.approx(2.0, abs=0.01)
    assert m.spectral_centroid_hz == pytest.approx(1000.0, rel=0.01)
    assert m.to_dict()["source_sample_rate"] == 48000
