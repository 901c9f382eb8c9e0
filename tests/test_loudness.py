"""Loudness (BS.1770-4 / R128) and true-peak meters against pyloudnorm and known cases."""
from __future__ import annotations

import math

import numpy as np
import pyloudnorm as pyln
import pytest
from scipy.signal import sosfilt

from engine.audio import db_to_gain
from engine.master.loudness import SILENCE_LUFS, StreamingLoudnessMeter, k_weighting_sos
from engine.master.true_peak import TruePeakMeter, true_peak_dbtp

SR = 44100
RNG = np.random.default_rng(1770)


def _feed(meter, x, sizes=None, seed=0):
    if sizes is None:
        meter.update(x)
        return meter
    rng = np.random.default_rng(seed)
    pos = 0
    while pos < x.shape[1]:
        n = int(rng.choice(sizes)) if isinstance(sizes, list) else int(rng.integers(1, sizes))
        meter.update(x[:, pos:pos + n])
        pos += n
    return meter


def _signals():
    n = SR * 12
    t = np.arange(n) / SR
    noise = 0.1 * RNG.standard_normal((2, n))
    sines = np.stack([0.3 * np.sin(2 * np.pi * 997 * t), 0.25 * np.sin(2 * np.pi * 100 * t + 1.0)])
    # loud and quiet parts 25 dB apart: the relative gate drops the quiet part
    env = np.where((t // 3) % 2 == 0, 0.3, 0.3 * db_to_gain(-25))
    gated = RNG.standard_normal((2, n)) * env
    hf = np.stack([0.2 * np.sin(2 * np.pi * 8000 * t), 0.05 * RNG.standard_normal(n)])
    return {"noise": noise, "sines": sines, "gated": gated, "hf": hf}


SIGNALS = {k: v.astype(np.float32) for k, v in _signals().items()}


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_integrated_matches_pyloudnorm_and_ignores_chunking(name):
    x = SIGNALS[name]
    ref = pyln.Meter(SR).integrated_loudness(x.T.astype(np.float64))
    whole = _feed(StreamingLoudnessMeter(SR, 2), x).integrated_lufs()
    chunked = _feed(StreamingLoudnessMeter(SR, 2), x, sizes=20000, seed=3).integrated_lufs()
    tiny = _feed(StreamingLoudnessMeter(SR, 2), x, sizes=[1, 2, 7, 333, 4410, 4411], seed=4).integrated_lufs()
    assert abs(whole - ref) < 0.1, (whole, ref)
    assert whole == chunked == tiny  # bit-identical, not merely close


def test_gating_matters_for_the_dynamic_signal():
    """The quiet half must be gated out: ungated loudness is ~3 LU lower."""
    x = SIGNALS["gated"]
    m = _feed(StreamingLoudnessMeter(SR, 2), x)
    # ungated: power mean over all samples of the K-weighted signal
    y = sosfilt(k_weighting_sos(SR), x.astype(np.float64), axis=1)
    ungated = -0.691 + 10 * math.log10(np.mean(y ** 2) * 2)
    loud_only = pyln.Meter(SR).integrated_loudness(x[:, :3 * SR].T.astype(np.float64))
    assert m.integrated_lufs() - ungated > 2.0
    assert abs(m.integrated_lufs() - loud_only) < 0.3


def test_mono_and_five_channel_match_pyloudnorm():
    x = (0.2 * RNG.standard_normal((1, SR * 5))).astype(np.float32)
    assert abs(_feed(StreamingLoudnessMeter(SR, 1), x).integrated_lufs()
               - pyln.Meter(SR).integrated_loudness(x[0].astype(np.float64))) < 0.1
    x5 = (0.1 * RNG.standard_normal((5, SR * 5))).astype(np.float32)
    assert abs(_feed(StreamingLoudnessMeter(SR, 5), x5).integrated_lufs()
               - pyln.Meter(SR).integrated_loudness(x5.T.astype(np.float64))) < 0.1


def test_other_sample_rate():
    sr = 48000
    x = (0.1 * RNG.standard_normal((2, sr * 6))).astype(np.float32)
    ours = _feed(StreamingLoudnessMeter(sr, 2), x).integrated_lufs()
    assert abs(ours - pyln.Meter(sr).integrated_loudness(x.T.astype(np.float64))) < 0.1


def test_k_weighting_at_48k_equals_the_recommendation():
    sos = k_weighting_sos(48000)
    np.testing.assert_allclose(sos[0, :3], [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-9)
    np.testing.assert_allclose(sos[0, 4:], [-1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(sos[1, 4:], [-1.99004745483398, 0.99007225036621], atol=1e-9)


def test_997hz_sine_reads_its_textbook_loudness():
    """A 0 dBFS 997 Hz sine in one channel reads -3.01 LUFS (BS.1770 calibration)."""
    t = np.arange(SR * 5) / SR
    x = np.zeros((2, t.size), np.float32)
    x[0] = np.sin(2 * np.pi * 997 * t)
    assert abs(_feed(StreamingLoudnessMeter(SR, 2), x).integrated_lufs() - (-3.01)) < 0.05


def test_silence_and_too_short_input_give_minus_inf():
    m = _feed(StreamingLoudnessMeter(SR, 2), np.zeros((2, SR * 3), np.float32))
    assert m.integrated_lufs() == SILENCE_LUFS == float("-inf")
    assert m.momentary_lufs() == SILENCE_LUFS and m.short_term_lufs() == SILENCE_LUFS
    assert math.isnan(m.loudness_range_lu())
    short = _feed(StreamingLoudnessMeter(SR, 2), (0.5 * RNG.standard_normal((2, SR // 4))).astype(np.float32))
    assert short.integrated_lufs() == SILENCE_LUFS  # no complete 400 ms block yet
    # below the -70 LUFS absolute gate counts as silence too
    faint = _feed(StreamingLoudnessMeter(SR, 2), (1e-5 * RNG.standard_normal((2, SR * 2))).astype(np.float32))
    assert faint.integrated_lufs() == SILENCE_LUFS


def test_momentary_short_term_and_duration():
    loud = (0.3 * RNG.standard_normal((2, SR * 5))).astype(np.float32)
    quiet = (0.03 * RNG.standard_normal((2, SR * 4))).astype(np.float32)  # 20 dB down
    m = StreamingLoudnessMeter(SR, 2)
    m.update(loud)
    integ = m.integrated_lufs()
    assert abs(m.momentary_lufs() - integ) < 0.5 and abs(m.short_term_lufs() - integ) < 0.3
    m.update(quiet)
    assert abs(m.short_term_lufs() - (integ - 20)) < 0.5  # last 3 s are all quiet
    assert abs(m.momentary_lufs() - (integ - 20)) < 1.0
    assert m.duration_s == pytest.approx(9.0)


def test_loudness_range_against_pyloudnorm():
    segs = [RNG.standard_normal((2, SR * 10)) * (0.1 if i % 2 else 0.1 * db_to_gain(-10)) for i in range(6)]
    x = np.concatenate(segs, axis=1).astype(np.float32)
    ours = _feed(StreamingLoudnessMeter(SR, 2), x, sizes=50000).loudness_range_lu()
    ref = pyln.Meter(SR).loudness_range(x.T.astype(np.float64))
    assert abs(ours - 10.0) < 0.3
    assert abs(ours - ref) < 0.3


# ---------------------------------------------------------------- true peak
def _faded(x, ms=20.0):
    """Raised-cosine fade in/out: an abrupt start rings (Gibbs) above the sine's peak."""
    n = int(SR * ms / 1000)
    w = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
    x = np.array(x, dtype=np.float64)
    x[..., :n] *= w
    x[..., -n:] *= w[::-1]
    return x.astype(np.float32)


def test_inter_sample_peak_of_fs4_sine_at_45_degrees():
    n = np.arange(SR)
    x = _faded(np.sin(2 * np.pi * 0.25 * n + np.pi / 4))  # samples are +-0.7071
    sample_peak = 20 * math.log10(float(np.max(np.abs(x))))
    tp = true_peak_dbtp(np.stack([x, x]))
    assert sample_peak == pytest.approx(-3.01, abs=0.01)
    assert tp > sample_peak + 2.5
    assert abs(tp - 0.0) < 0.1  # the waveform between the samples reaches 1.0


@pytest.mark.parametrize("amp_db,freq", [(-6.0, 1000.0), (-1.0, 5000.0), (-20.0, 100.0)])
def test_true_peak_of_plain_sines(amp_db, freq):
    t = np.arange(SR) / SR
    x = _faded(db_to_gain(amp_db) * np.sin(2 * np.pi * freq * t + 0.3))
    assert abs(true_peak_dbtp(x) - amp_db) < 0.05
    m = TruePeakMeter(1)
    m.update(x[None, :])
    assert abs(m.max_dbtp - amp_db) < 0.05


def test_true_peak_silence():
    assert true_peak_dbtp(np.zeros((2, 100), np.float32)) == float("-inf")
    assert TruePeakMeter(2).max_dbtp == float("-inf")


@pytest.mark.parametrize("name", ["noise", "hf", "fs4", "click"])
def test_streaming_true_peak_agrees_with_one_shot(name):
    if name == "fs4":
        n = np.arange(SR // 2)
        x = np.stack([np.sin(np.pi / 2 * n + np.pi / 4)] * 2).astype(np.float32)
    elif name == "click":
        x = np.zeros((2, SR // 2), np.float32)
        x[1, -1] = 0.8  # the very last sample: the tail must be counted
    else:
        x = SIGNALS[name][:, : SR * 3]
    m = _feed(TruePeakMeter(2), x, sizes=[1, 5, 100, 3000], seed=5)
    assert abs(m.max_dbtp - true_peak_dbtp(x)) < 0.05
