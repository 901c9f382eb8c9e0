"""High-band extension and sub-bass synthesis."""
from __future__ import annotations

import numpy as np
import pytest

from engine.errors import SettingsError
from engine.restore import HighBandExtender, SubBassSynth, extender_for
from engine.stage import LatencyAligned, run_in_blocks
from stage_signals import band_noise, phone_like

SR = 44100


def band_db(x: np.ndarray, lo: float, hi: float) -> float:
    """Energy (dB, arbitrary reference) of mono ``x`` between lo and hi Hz."""
    w = np.hanning(len(x))
    p = np.abs(np.fft.rfft(x * w)) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / SR)
    return float(10 * np.log10(p[(f >= lo) & (f < hi)].sum() + 1e-30))


# -- high-band extension -----------------------------------------------------

def test_extender_amount_zero_is_a_pure_delay():
    x = np.stack([band_noise(100, 8000, 1.0), band_noise(100, 8000, 1.0, seed=1)])
    st = HighBandExtender(8000.0, amount=0.0)
    y = run_in_blocks(st, x)
    np.testing.assert_array_equal(y[:, st.latency:], x)
    assert not np.any(y[:, :st.latency])


def test_extender_fills_the_missing_band_and_keeps_the_rest():
    x = band_noise(100, 8000, 3.0)
    stereo = np.stack([x, 0.7 * x])
    y = run_in_blocks(LatencyAligned(HighBandExtender(8000.0, amount=1.0)), stereo)
    assert y.shape == stereo.shape
    in_band = band_db(x, 4000, 8000) - 10 * np.log10(4000)
    before = band_db(x, 9000, 12000) - 10 * np.log10(3000)
    after = band_db(y[0], 9000, 12000) - 10 * np.log10(3000)
    assert before < in_band - 60.0  # really missing
    # flat input: the new band continues the envelope (minus the gentle roll-off)
    assert in_band - 8.0 < after < in_band + 1.0
    # it rolls off towards 20 kHz
    assert band_db(y[0], 16000, 20000) < band_db(y[0], 9000, 13000) - 3.0
    # below the cutoff nothing changes (the generated band is only added above it)
    d = y[0] - x
    assert band_db(d, 50, 7500) < band_db(x, 50, 7500) - 60.0
    # channel balance is kept
    assert band_db(y[1], 9000, 12000) - 10 * np.log10(3000) == pytest.approx(after + 20 * np.log10(0.7), abs=1.0)


def test_extender_only_fills_what_is_missing():
    # full-band input: the band above the "cutoff" is already at the envelope, nothing is added
    rng = np.random.default_rng(3)
    x = (0.05 * rng.standard_normal((2, 3 * SR))).astype(np.float32)
    y = run_in_blocks(LatencyAligned(HighBandExtender(8000.0, amount=1.0)), x)
    assert band_db(y[0], 9000, 14000) - band_db(x[0], 9000, 14000) < 0.2
    # the old additive behaviour puts the generated band on top
    z = run_in_blocks(LatencyAligned(HighBandExtender(8000.0, amount=1.0, fill_only=False)), x)
    assert band_db(z[0], 9000, 14000) - band_db(x[0], 9000, 14000) > 1.0
    # a phone-like soft edge: the extension tops up the attenuated band instead of doubling it
    p = phone_like(3.0)
    w = run_in_blocks(LatencyAligned(HighBandExtender(8000.0, amount=1.0)), p)
    in_band = band_db(p[0], 4000, 7000) - 10 * np.log10(3000)
    top = band_db(w[0], 9000, 12000) - 10 * np.log10(3000)
    assert in_band - 8.0 < top < in_band + 1.0


def test_extender_on_a_harmonic_tone_adds_falling_partials():
    t = np.arange(2 * SR) / SR
    x = sum(np.sin(2 * np.pi * 440 * h * t + h) / h for h in range(1, 18)) * 0.1  # up to 7.5 kHz
    x = np.stack([x, x]).astype(np.float32)
    y = run_in_blocks(LatencyAligned(HighBandExtender(7700.0, amount=1.0)), x)[0]
    e1, e2, e3 = band_db(y, 8000, 11000), band_db(y, 11000, 15000), band_db(y, 15000, 19000)
    assert band_db(x[0], 8000, 19000) < e1 - 80.0
    assert e1 > e2 > e3
    assert e1 > band_db(x[0], 4000, 7700) - 15.0


def test_extender_settings_errors_and_factory():
    with pytest.raises(SettingsError):
        HighBandExtender(30000.0)
    with pytest.raises(SettingsError):
        HighBandExtender(8000.0, amount=-1.0)
    full = extender_for(21000.0)
    assert isinstance(full, HighBandExtender) and full.amount == 0.0
    assert extender_for(8000.0, 0.8).amount == 0.8


# -- sub-bass ----------------------------------------------------------------

def tone(freqs_amps, seconds=2.0):
    t = np.arange(int(seconds * SR)) / SR
    x = sum(a * np.sin(2 * np.pi * f * t + i) for i, (f, a) in enumerate(freqs_amps))
    return np.stack([x, x]).astype(np.float32)


def amplitude_at(x: np.ndarray, f0: float) -> float:
    w = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * w)) * 2 / w.sum()
    f = np.fft.rfftfreq(len(x), 1.0 / SR)
    k = np.argmin(np.abs(f - f0))
    return float(spec[k - 2:k + 3].max())


@pytest.mark.parametrize("f0", [70.0, 100.0, 140.0])
def test_sub_bass_adds_the_octave_below(f0):
    x = tone([(f0, 0.3), (2 * f0, 0.15), (3 * f0, 0.05)])
    y = run_in_blocks(SubBassSynth(amount=1.0), x)
    d = (y - x)[0, SR // 2:]
    sub = amplitude_at(d, f0 / 2)
    assert 0.1 < sub < 0.6  # about the fundamental's amplitude (0.3)
    assert amplitude_at(d, f0) < 0.01 * sub  # nothing added at f0 itself
    np.testing.assert_allclose(y[0], y[1])  # mono sub-bass
    # amount scales it linearly
    y_half = run_in_blocks(SubBassSynth(amount=0.5), x)
    assert amplitude_at((y_half - x)[0, SR // 2:], f0 / 2) == pytest.approx(0.5 * sub, rel=1e-3)


def test_sub_bass_is_silent_without_bass_and_transparent_at_zero():
    x = tone([(1000.0, 0.5)], 1.0)
    y = run_in_blocks(SubBassSynth(amount=1.0), x)
    assert np.max(np.abs(y - x)[:, SR // 3:]) < 1e-3  # after the switch-on click has died away
    z = np.zeros((2, SR), np.float32)
    assert not np.any(run_in_blocks(SubBassSynth(amount=1.0), z))
    b = tone([(100.0, 0.3)], 1.0)
    np.testing.assert_array_equal(run_in_blocks(SubBassSynth(amount=0.0), b), b)


def test_sub_bass_settings_errors():
    with pytest.raises(SettingsError):
        SubBassSynth(amount=3.0)


def _numpy_fine_structure(ext, S, frame_ends):
    """The numpy expression the extender's fine-structure kernel replaced."""
    pw = S.real ** 2 + S.imag ** 2
    cs = np.concatenate([np.zeros(pw.shape[:-1] + (1,)), np.cumsum(pw, axis=-1)], axis=-1)
    env = np.maximum((cs[..., ext._env_hi] - cs[..., ext._env_lo]) * ext._env_inv, 1e-30)
    share = np.sqrt(env / env.sum(axis=1, keepdims=True))
    rel = pw / env
    hole = rel < 0.01
    factor = share * rel ** (0.5 * ext.whiten) / np.sqrt(np.maximum(pw, 1e-30))
    G = S * np.where(hole, 0.0, factor)
    t = (frame_ends // ext.hop) % ext._phasors.shape[0]
    return G + np.where(hole, share, 0.0) * ext._phasors[t][:, :S.shape[1]]


@pytest.mark.parametrize("whiten", [0.5, 0.0, 0.8])
def test_fine_structure_kernel_matches_the_numpy_expression(whiten):
    rng = np.random.default_rng(7)
    ext = HighBandExtender(cutoff_hz=6000.0, whiten=whiten)
    lo, kc = ext._src
    F = 40
    S = ((rng.standard_normal((F, 2, kc - lo)) + 1j * rng.standard_normal((F, 2, kc - lo)))
         * rng.exponential(1.0, (F, 1, kc - lo))).astype(np.complex64)
    S[:, :, ::11] *= 1e-3  # holes, filled with noise
    S[3] = 0.0  # a silent frame
    frame_ends = (np.arange(F) + 4) * ext.hop
    got, want = ext._fine_structure(S, frame_ends), _numpy_fine_structure(ext, S, frame_ends)
    assert got.dtype == np.complex128
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
