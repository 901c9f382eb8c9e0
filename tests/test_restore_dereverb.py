"""RT60 estimation, spectral late-reverb suppression and online WPE.

Fixture: dry notes (harmonic tones plus a breathy noise part, or speech-like
noise bursts) with sharp offsets and pauses, convolved with synthetic
exponentially decaying noise impulse responses (a different one per channel).
"""
from __future__ import annotations

import numpy as np
import pytest

from engine.errors import SettingsError
from engine.estimators import estimate_rt60
from engine.restore import OnlineWPE, SpectralReverbSuppressor
from engine.stage import LatencyAligned, run_in_blocks
from stage_signals import reverberant

SR = 44100


def tail_and_note_db(out: np.ndarray, dry: np.ndarray, notes, after=(0.05, 0.6)):
    """Energy after note offsets and during notes, both in dB re the dry notes' energy."""
    e = lambda a: float(np.sum(np.asarray(a, np.float64) ** 2))  # noqa: E731
    ref = sum(e(dry[:, i0 + 2205:i1]) for i0, i1 in notes)
    tail = sum(e(out[:, i1 + int(after[0] * SR):i1 + int(after[1] * SR)]) for _, i1 in notes)
    note = sum(e(out[:, i0 + 2205:i1]) for i0, i1 in notes)
    return 10 * np.log10(tail / ref), 10 * np.log10(note / ref)


@pytest.fixture(scope="module")
def room_1s():
    return reverberant(1.0, 12.0)


# -- RT60 ----------------------------------------------------------------------

@pytest.mark.parametrize("rt60", [0.4, 1.0, 2.0])
def test_rt60_estimate_of_a_synthetic_room(rt60):
    _, y, _ = reverberant(rt60, 12.0 if rt60 < 2 else 15.0)
    est = estimate_rt60(y, SR)
    assert est is not None
    assert est == pytest.approx(rt60, rel=0.2)


def test_rt60_needs_free_decays():
    rng = np.random.default_rng(0)
    steady = (0.1 * rng.standard_normal((2, 5 * SR))).astype(np.float32)
    assert estimate_rt60(steady, SR) is None
    assert estimate_rt60(steady, SR, default=0.7) == 0.7


# -- spectral suppressor ---------------------------------------------------------

def test_suppressor_removes_late_reverb_and_keeps_the_notes(room_1s):
    dry, wet, notes = room_1s
    rt = estimate_rt60(wet, SR)
    tail_in, note_in = tail_and_note_db(wet, dry, notes)
    out = run_in_blocks(LatencyAligned(SpectralReverbSuppressor(rt60_s=rt)), wet)
    assert out.shape == wet.shape
    tail_out, note_out = tail_and_note_db(out, dry, notes)
    assert tail_out < tail_in - 6.0  # >= 6 dB less energy in the decay tails
    assert abs(note_out) < 3.0  # the notes themselves stay at the dry level
    assert note_in > note_out  # (the reverberant input was louder than dry)


def test_suppressor_with_online_rt60(room_1s):
    dry, wet, notes = room_1s
    st = SpectralReverbSuppressor(rt60_s=None)
    out = run_in_blocks(LatencyAligned(st), wet)
    assert st.current_rt60() == pytest.approx(1.0, rel=0.25)
    tail_in, _ = tail_and_note_db(wet, dry, notes)
    tail_out, note_out = tail_and_note_db(out, dry, notes)
    assert tail_out < tail_in - 5.0 and abs(note_out) < 3.0


def test_suppressor_dry_wet(room_1s):
    _, wet, notes = room_1s
    x = wet[:, : 3 * SR]
    st = SpectralReverbSuppressor(1.0, wet=0.0)
    y = run_in_blocks(st, x)
    np.testing.assert_array_equal(y[:, st.latency:], x)
    full = run_in_blocks(LatencyAligned(SpectralReverbSuppressor(1.0, wet=1.0)), x)
    half = run_in_blocks(LatencyAligned(SpectralReverbSuppressor(1.0, wet=0.5)), x)
    np.testing.assert_allclose(half, 0.5 * (x + full), atol=1e-5)
    with pytest.raises(SettingsError):
        SpectralReverbSuppressor(1.0, wet=1.5)


# -- online WPE ----------------------------------------------------------------------

def test_wpe_numba_kernel_equals_nara_wpe():
    _, wet, _ = reverberant(0.8, 3.0, kind="speech")
    x = wet[:, int(0.2 * SR): int(1.7 * SR)]  # from the first onset: nara_wpe has no silence guard
    a = run_in_blocks(OnlineWPE(backend="numba"), x, sizes=[5000, 1, 30000])
    b = run_in_blocks(OnlineWPE(backend="nara_wpe"), x)
    assert np.max(np.abs(a - b)) < 1e-5
    assert np.max(np.abs(a[:, 4095:] - x)) > 1e-2  # it did change the signal


def test_wpe_reduces_reverb_on_speech_like_bursts():
    dry, wet, notes = reverberant(1.0, 10.0, kind="speech")
    out = run_in_blocks(LatencyAligned(OnlineWPE()), wet)
    late = [n for n in notes if n[0] > 4 * SR]  # after the adaptive filters converged
    tail_in, note_in = tail_and_note_db(wet, dry, late)
    tail_out, note_out = tail_and_note_db(out, dry, late)
    assert tail_out < tail_in - 2.0
    assert -2.0 < note_out < note_in + 0.5
    for n in notes:  # no blow-up while the filters adapt
        assert tail_and_note_db(out, dry, [n])[0] < tail_and_note_db(wet, dry, [n])[0] + 1.0


def test_wpe_survives_silence():
    rng = np.random.default_rng(3)
    x = np.concatenate([np.zeros((2, 2 * SR)), 0.1 * rng.standard_normal((2, SR))], axis=1).astype(np.float32)
    st = OnlineWPE()
    y = run_in_blocks(st, x)
    assert np.all(np.isfinite(y))
    assert np.abs(st._Q).max() < 1e6  # no recursive-least-squares wind-up during the silence
    st = OnlineWPE(wet=0.0)
    np.testing.assert_array_equal(run_in_blocks(st, x)[:, st.latency:], x)
