"""The streamed preview, primed with the up-front analysis of the input's first
seconds, is within 1 LU of the exact final master from its first second."""
from __future__ import annotations

import numpy as np
import pytest

from engine.master.final import final_master
from engine.master.loudness import integrated_lufs
from engine.master.preview import PreviewMaster, PreviewPrior
from engine.stage import LatencyAligned, run_in_blocks

SR = 44100


def _concert(seconds: float, lufs: float, seed: int = 0) -> np.ndarray:
    """A beat over a bass line and noise, scaled to ``lufs`` (an AGC'd phone
    recording is loud: -8 LUFS; a distant one quiet: -28)."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    beat = np.exp(-(t % 0.5) * 10)
    x = (np.stack([np.sin(2 * np.pi * 98 * t), np.sin(2 * np.pi * 147 * t + 0.3)]) * (0.4 + 0.4 * beat)
         + 0.3 * rng.standard_normal((2, n)) * beat + 0.08 * rng.standard_normal((2, n)))
    x = x.astype(np.float32)
    return (x * 10 ** ((lufs - integrated_lufs(x, SR)) / 20)).astype(np.float32)


def _final(x: np.ndarray) -> np.ndarray:
    out: list[np.ndarray] = []
    final_master(lambda: [x], out.append)
    return np.concatenate(out, axis=1)


def _short_term_diffs(a: np.ndarray, b: np.ndarray, seconds: int = 6) -> list[float]:
    """Loudness of ``a`` minus that of ``b`` over the 3 s window ending at each of
    the first ``seconds`` seconds (the window starts at 0 for the first two)."""
    out = []
    for k in range(1, seconds + 1):
        s = slice(max(0, k - 3) * SR, k * SR)
        out.append(integrated_lufs(a[:, s], SR) - integrated_lufs(b[:, s], SR))
    return out


def _head(x: np.ndarray, seconds: float = 10.0) -> PreviewPrior:
    """What the runner measures up front: the first ``seconds`` of the input, in blocks."""
    head = x[:, :int(seconds * SR)]
    return PreviewPrior.measure(head[:, i:i + 44100] for i in range(0, head.shape[1], 44100))


@pytest.mark.parametrize("lufs", [-8.0, -28.0])
@pytest.mark.parametrize("mix_gain_db", [0.0, -5.0, 3.0])
def test_primed_preview_within_1_lu_of_final_from_the_first_second(lufs, mix_gain_db):
    """The prior is measured on the input; the preview sees the mix, which the
    restoration made ``mix_gain_db`` louder or quieter (the offset is learnt)."""
    x = _concert(20.0, lufs)
    mix = (x * 10 ** (mix_gain_db / 20)).astype(np.float32)
    final = _final(mix)
    pm = PreviewMaster(prior=_head(x))
    preview = run_in_blocks(LatencyAligned(pm), mix, [4410])
    diffs = _short_term_diffs(preview, final)
    assert max(abs(d) for d in diffs) <= 1.0, diffs
    assert pm.offset_db == pytest.approx(mix_gain_db, abs=0.05)


def test_unprimed_preview_starts_off_by_more_than_1_lu():
    """The behaviour the prime fixes: without it the first second is far off."""
    x = _concert(20.0, -8.0)
    preview = run_in_blocks(LatencyAligned(PreviewMaster()), x, [4410])
    diffs = _short_term_diffs(preview, _final(x))
    assert diffs[0] > 3.0, diffs


def test_prime_whose_guess_is_off_converges_to_the_measurement():
    """A prior 6 dB off (the mix need not be as loud as the input) gives way to the
    measured loudness: after 20 s the gain is within 1.5 dB of the right one."""
    x = _concert(30.0, -8.0)
    pm = PreviewMaster(prior=PreviewPrior(-14.0))
    run_in_blocks(LatencyAligned(pm), x, [4410])
    assert abs(pm.gain_db - (-14.0 - (-8.0))) < 1.5


def test_primed_preview_is_chunk_size_invariant():
    x = _concert(6.0, -20.0, seed=2)
    prior = _head(x * np.float32(2.0))
    whole = run_in_blocks(LatencyAligned(PreviewMaster(prior=prior)), x)
    rng = np.random.default_rng(5)
    sizes = list(rng.integers(1, 3000, size=200)) + [1] * 50
    chunked = run_in_blocks(LatencyAligned(PreviewMaster(prior=prior)), x, sizes)
    np.testing.assert_array_equal(whole, chunked)


def test_prime_none_or_silence_keeps_the_old_start():
    a = PreviewMaster(prior=None)
    b = PreviewMaster(prior=PreviewPrior.measure([np.zeros((2, SR), np.float32)]))
    assert b.prior is None and a.gain_db == b.gain_db == 0.0
    assert PreviewMaster(prior=PreviewPrior(-20.0)).gain_db == pytest.approx(6.0)
    assert PreviewMaster(prior=PreviewPrior(-60.0)).gain_db == 24.0  # bounded by max_gain_db


def test_prior_measure_matches_the_meter():
    x = _concert(5.0, -18.0)
    p = _head(x)
    assert p.integrated_lufs == pytest.approx(integrated_lufs(x, SR), abs=1e-6)
    assert len(p.hop_energies) == 50
