"""Behaviour of the dynamics stages: compressor, gate / expander, transient shaper."""
from __future__ import annotations

import numpy as np
import pytest

from engine.audio import SAMPLE_RATE as SR, db_to_gain
from engine.enhance import Compressor, NoiseGate, TransientShaper
from engine.stage import LatencyAligned, run_in_blocks
from stage_signals import decaying_hits, sine, white_noise


def peak_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.max(np.abs(x))))


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2) + 1e-30))


@pytest.mark.parametrize("ratio", [2.0, 4.0, 10.0])
def test_compressor_reduces_a_loud_sine_by_its_ratio(ratio):
    x = sine(1000.0, 1.5, amplitude=0.5)  # peak -6.02 dBFS, 14 dB over threshold
    comp = Compressor(threshold_db=-20.0, ratio=ratio, knee_db=0.0, attack_ms=5.0, release_ms=200.0)
    y = run_in_blocks(comp, x, [4410])
    expected = -20.0 + (peak_db(x) + 20.0) / ratio
    # the per-sample detector rides the waveform, so a sine is reduced slightly less than
    # its peak predicts (0.6 dB at 10:1)
    assert abs(peak_db(y[:, -SR // 2:]) - expected) < 1.0


def test_compressor_soft_knee_and_makeup():
    comp = Compressor(threshold_db=-20.0, ratio=4.0, knee_db=10.0, makeup_db=3.0)
    assert comp.static_gain_db(-40.0) == pytest.approx(3.0)  # below the knee: makeup only
    assert comp.static_gain_db(-20.0) == pytest.approx(3.0 - 0.75 * 5.0 ** 2 / 20.0)  # knee centre
    assert comp.static_gain_db(0.0) == pytest.approx(3.0 - 15.0)  # above the knee: 1/ratio slope


def test_compressor_leaves_quiet_signal_alone_and_is_stereo_linked():
    x = sine(500.0, 0.5, amplitude=0.03)  # -30 dBFS, below threshold
    y = run_in_blocks(Compressor(threshold_db=-20.0, ratio=4.0, knee_db=6.0), x, None)
    np.testing.assert_array_equal(x, y)
    # a loud left channel pulls the quiet right one down by the same gain
    stereo = np.stack([sine(1000.0, 1.0, 0.5)[0], sine(1000.0, 1.0, 0.05)[0]])
    out = run_in_blocks(Compressor(threshold_db=-20.0, ratio=4.0, knee_db=0.0), stereo, [1000])
    gain_l = peak_db(out[0, -SR // 4:]) - peak_db(stereo[0])
    gain_r = peak_db(out[1, -SR // 4:]) - peak_db(stereo[1])
    assert gain_l < -8.0 and abs(gain_l - gain_r) < 0.05


def test_compressor_attack_and_release_times():
    """After a step up the gain settles within a few attack times, after a step down within release."""
    x = np.concatenate([sine(1000.0, 0.5, 0.05), sine(1000.0, 0.5, 0.5), sine(1000.0, 1.0, 0.05)], axis=1)
    y = run_in_blocks(Compressor(threshold_db=-20.0, ratio=4.0, knee_db=0.0, attack_ms=5.0, release_ms=100.0), x, [512])
    g = y[0] / np.where(np.abs(x[0]) > 1e-3, x[0], np.nan)
    step_up, step_down = SR // 2, SR
    settled = np.nanmean(g[step_up + SR // 4: step_down])
    assert np.nanmean(g[step_up + int(0.03 * SR): step_up + int(0.04 * SR)]) == pytest.approx(settled, rel=0.05)
    # 100 ms after the step down the gain is still recovering, after 700 ms it is back to 1
    assert np.nanmean(g[step_down + int(0.09 * SR): step_down + int(0.11 * SR)]) < 0.8
    assert np.nanmean(g[-int(0.1 * SR):]) == pytest.approx(1.0, abs=0.01)


def test_gate_silences_noise_between_hits_and_keeps_the_hits():
    seconds, period = 2.0, 0.5
    hits = decaying_hits(seconds, period_s=period, decay_ms=30.0, amplitude=0.5, seed=1)
    noise = white_noise(seconds, rms=db_to_gain(-60), seed=2)
    x = hits + noise
    gate = LatencyAligned(NoiseGate(threshold_db=-40.0, range_db=40.0, hold_ms=20.0, release_ms=50.0))
    y = run_in_blocks(gate, x, [1000, 33])
    starts = (np.arange(int(0.1 * SR), x.shape[1], int(period * SR)))
    for s in starts:
        gap_x = x[:, s + int(0.3 * SR): s + int(0.48 * SR)]
        gap_y = y[:, s + int(0.3 * SR): s + int(0.48 * SR)]
        if gap_x.shape[1] < 1000:
            continue
        assert rms_db(gap_y) < rms_db(gap_x) - 30.0  # noise between hits: -40 dB range
        hit = slice(s, s + int(0.01 * SR))
        assert abs(peak_db(y[:, hit]) - peak_db(x[:, hit])) < 0.5  # look-ahead: the attack is intact


def test_expander_follows_its_ratio_below_threshold():
    """Downward expander 2:1: a steady tone 13 dB (RMS) under the close threshold drops by 13 dB."""
    x = sine(1000.0, 1.0, amplitude=db_to_gain(-50))  # RMS -53.0 dBFS
    gate = NoiseGate(threshold_db=-34.0, hysteresis_db=6.0, ratio=2.0, range_db=60.0, lookahead_ms=0.0,
                     detector_ms=50.0)
    y = run_in_blocks(gate, x, None)
    expected = (2.0 - 1.0) * (rms_db(x) - (-34.0 - 6.0))
    assert rms_db(y[:, -SR // 4:]) - rms_db(x[:, -SR // 4:]) == pytest.approx(expected, abs=0.3)
    # and a range limit caps the reduction
    capped = run_in_blocks(NoiseGate(threshold_db=-34.0, ratio=2.0, range_db=6.0, lookahead_ms=0.0), x, None)
    assert rms_db(capped[:, -SR // 4:]) - rms_db(x[:, -SR // 4:]) == pytest.approx(-6.0, abs=0.1)


def test_transient_shaper_boosts_attacks_and_cuts_sustain():
    hits = decaying_hits(1.5, period_s=0.5, decay_ms=80.0, amplitude=0.3, seed=4)
    punch = run_in_blocks(TransientShaper(attack_db=6.0, sustain_db=0.0), hits, [777])
    soft_tail = run_in_blocks(TransientShaper(attack_db=0.0, sustain_db=-6.0), hits, [777])
    for s in np.arange(int(0.1 * SR), hits.shape[1], int(0.5 * SR)):
        onset = slice(s, s + int(0.003 * SR))
        tail = slice(s + int(0.15 * SR), s + int(0.3 * SR))
        assert rms_db(punch[:, onset]) - rms_db(hits[:, onset]) > 3.0
        assert abs(rms_db(punch[:, tail]) - rms_db(hits[:, tail])) < 1.0
        assert rms_db(soft_tail[:, tail]) - rms_db(hits[:, tail]) < -3.0
        assert abs(rms_db(soft_tail[:, onset]) - rms_db(hits[:, onset])) < 1.0
