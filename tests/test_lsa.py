"""The LSA noise suppressor: gain floor (no holes), SNR gain, transparency at strength 0."""
from __future__ import annotations

import numpy as np
import pytest

from engine.enhance.lsa import LSANoiseSuppressor
from engine.errors import SettingsError
from engine.stage import LatencyAligned, run_in_blocks

SR = 44100


def _tones(seconds: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    clean = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(2 * np.pi * 1320 * t) * ((t % 1.0) < 0.5)
    clean = np.stack([clean, clean]).astype(np.float32)
    noise = (0.03 * rng.standard_normal(clean.shape)).astype(np.float32)
    return clean, noise


def _band_db(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x.mean(axis=0))) ** 2
    f = np.fft.rfftfreq(x.shape[1], 1 / SR)
    return 10 * np.log10(spec[(f >= lo) & (f < hi)].sum() + 1e-30)


def test_snr_improves_on_noisy_tones():
    clean, noise = _tones(4.0)
    y = run_in_blocks(LatencyAligned(LSANoiseSuppressor(strength=1.0)), clean + noise, [4410, 777])
    s = SR  # after the trackers settle

    def snr(est):
        return 10 * np.log10(np.sum(clean[:, s:] ** 2) / np.sum((est[:, s:] - clean[:, s:]) ** 2))

    assert snr(y) > snr(clean + noise) + 6.0


@pytest.mark.parametrize("max_db", [12.0, 18.0])
def test_noise_is_lowered_to_the_floor_and_never_deeper(max_db):
    _, noise = _tones(3.0, seed=1)
    y = run_in_blocks(LatencyAligned(LSANoiseSuppressor(strength=1.0, max_reduction_db=max_db)), noise, [SR])
    s = SR
    for lo, hi in [(100, 500), (500, 2000), (2000, 8000), (8000, 20000)]:
        change = _band_db(y[:, s:], lo, hi) - _band_db(noise[:, s:], lo, hi)
        assert -max_db - 1.0 <= change <= -max_db + 4.0, (lo, hi, change)


def test_sustained_tone_is_kept():
    t = np.arange(5 * SR) / SR
    x = 0.2 * np.sin(2 * np.pi * 660 * t)
    rng = np.random.default_rng(2)
    x = (np.stack([x, x]) + 0.01 * rng.standard_normal((2, t.size))).astype(np.float32)
    y = run_in_blocks(LatencyAligned(LSANoiseSuppressor(strength=1.0)), x, [SR])
    tail = slice(4 * SR, 5 * SR)
    assert abs(_band_db(y[:, tail], 600, 720) - _band_db(x[:, tail], 600, 720)) < 1.0


def test_strength_zero_is_a_delay_and_report():
    clean, noise = _tones(1.0)
    st = LSANoiseSuppressor(strength=0.0)
    y = run_in_blocks(LatencyAligned(st), clean + noise, [1000])
    assert np.max(np.abs(y - (clean + noise))) < 1e-5
    st2 = LSANoiseSuppressor(strength=1.0)
    run_in_blocks(st2, clean + noise, [SR])
    rep = st2.report()
    assert rep["floor_db"] == -15.0 and rep["energy_change_db"] < 0.0 and not rep["backed_off"]


def test_bad_settings_raise():
    with pytest.raises(SettingsError):
        LSANoiseSuppressor(strength=1.5)
    with pytest.raises(SettingsError):
        LSANoiseSuppressor(max_reduction_db=60.0)


def test_gain_table_matches_the_lsa_gain_function():
    """The kernel's interpolated exp(E1(v) / 2) against scipy's exponential integral,
    from v -> 0 (where it grows like 1 / sqrt(v)) to the v = 40 cut-over."""
    import math

    from scipy.special import exp1

    from engine.enhance.lsa import GAIN_TABLE_STEP, gain_table

    table = gain_table()
    v = np.concatenate([np.geomspace(1e-10, 1.0, 2000), np.linspace(1.0, 39.999, 2000)])
    u = np.sqrt(v)
    t = u / GAIN_TABLE_STEP
    i = t.astype(int)
    approx = (table[i] + (t - i) * (table[i + 1] - table[i])) / u
    exact = np.exp(0.5 * exp1(v))
    assert np.max(np.abs(approx / exact - 1.0)) < 1e-4  # the kernel's E1 approximation's own error
    assert math.isclose(table[0], math.exp(-0.5 * 0.5772156649015329))


@pytest.mark.parametrize("width", [3, 5, 15, 29, 33, 61])
def test_median_network_gives_the_exact_block_medians(width):
    """The sorting-network medians equal numpy's median of each block (the last one padded
    with its edge bin), to the bit, also with ties and zeros."""
    from engine.dsp.median_network import median_network
    from engine.enhance.lsa import _block_medians

    rng = np.random.default_rng(width)
    a, b, target = median_network(width)
    for k_count in (width, 7 * width + 3, 1025):
        blocks = -(-k_count // width)
        for trial in range(4):
            power = rng.exponential(1.0, k_count)
            if trial == 1:
                power = np.round(power * 3.0) / 3.0  # many ties
            if trial == 2:
                power[rng.random(k_count) < 0.3] = 0.0
            med = np.empty(blocks)
            _block_medians(power, width, blocks, med, np.empty((width, blocks)), a, b, target)
            padded = np.concatenate([power, np.full(blocks * width - k_count, power[-1])])
            ref = 2.0 * np.median(padded.reshape(blocks, width), axis=1)
            assert np.array_equal(med, ref)
