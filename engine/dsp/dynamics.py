"""Gain computers of the dynamics stages (numba, per sample, explicit state).

Every kernel takes a detector signal ``level`` (float64 ``(samples,)``, linear
amplitude, usually the stereo-linked ``max |x|``), its parameters (dB, ratios,
one-pole coefficients from :func:`engine.dsp.envelope.time_constant_coeff`,
counts in samples) and a float64 ``state`` array it updates in place.  It
returns the linear gain to apply per sample (float64 ``(samples,)``).

The loops are strictly sequential and use no fast-math, so the output is
bit-exact under any chunking as long as the caller carries ``state``.  A gain
of exactly 0 dB is returned as exactly 1.0, so a stage at zero strength is a
bit-exact pass-through.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .envelope import amp_to_db, db_to_gain_kernel, follow


@njit(cache=True, nogil=True)
def static_compression_db(x_db: float, threshold_db: float, ratio: float, knee_db: float) -> float:
    """Gain change (dB, <= 0) of a soft-knee compressor curve at input level ``x_db``.

    Giannoulis, Massberg & Reiss (2012), eq. 4: quadratic knee of width
    ``knee_db`` centred on ``threshold_db``; slope ``1/ratio`` above it.
    """
    over = x_db - threshold_db
    slope = 1.0 / ratio - 1.0
    if knee_db > 0.0 and 2.0 * abs(over) <= knee_db:
        t = over + 0.5 * knee_db
        return slope * t * t / (2.0 * knee_db)
    if over > 0.0:
        return slope * over
    return 0.0


@njit(cache=True, nogil=True)
def compressor_gain(level, threshold_db, ratio, knee_db, attack, release, makeup_db, state):
    """Feed-forward compressor gain (linear) per sample.

    The static curve (:func:`static_compression_db`) is applied to the level in
    dB, and the gain reduction is smoothed in the log domain with a branching
    attack/release one-pole ("smooth branching" detector of Giannoulis et al.).
    ``state[0]``: smoothed gain reduction in dB (>= 0).
    """
    n = level.shape[0]
    out = np.empty(n, dtype=np.float64)
    gr = state[0]
    for i in range(n):
        target = -static_compression_db(amp_to_db(level[i]), threshold_db, ratio, knee_db)
        gr = follow(target, gr, attack, release)
        g_db = makeup_db - gr
        out[i] = 1.0 if g_db == 0.0 else db_to_gain_kernel(g_db)
    state[0] = gr
    return out


#: layout of the gate's state array
GATE_STATE_SIZE = 5  # [gain_db, open(0/1), hold_left, running_peak_db, detector mean square]


def gate_initial_state() -> np.ndarray:
    """A closed gate with its gain at 0 dB (so the first samples are not faded in)."""
    return np.array([0.0, 0.0, 0.0, -200.0, 0.0], dtype=np.float64)


@njit(cache=True, nogil=True)
def gate_gain(level, threshold_db, relative_db, use_relative, peak_decay_db, hysteresis_db, hold_samples,
              range_db, ratio, detector, attack, release, state):
    """Noise gate / downward expander gain (linear) per sample.

    Detector: the RMS of ``level`` (one-pole mean square, coefficient
    ``detector``), in dB, so noise reads at its RMS rather than at its peaks.
    The gate opens when the detector reaches the open threshold
    ``max(threshold_db, running_peak_db + relative_db)`` (the relative part
    only when ``use_relative``; the running peak decays by ``peak_decay_db``
    per sample) and closes once it has stayed below ``open - hysteresis_db``
    for ``hold_samples`` samples.  Closed, the target gain is ``-range_db``
    (``ratio`` <= 0: hard gate) or the downward-expander curve
    ``max(-range_db, (ratio - 1) * (level_db - close_threshold))``.  The gain
    moves towards its target with ``attack`` (opening) / ``release``
    (closing) one-pole coefficients, in dB.
    """
    n = level.shape[0]
    out = np.empty(n, dtype=np.float64)
    g = state[0]
    is_open = state[1] > 0.5
    hold = state[2]
    peak = state[3]
    ms = state[4]
    for i in range(n):
        x = level[i]
        ms = detector * ms + (1.0 - detector) * x * x
        l_db = -200.0 if ms < 1e-20 else 10.0 * math.log10(ms)
        peak = max(l_db, peak - peak_decay_db)
        thr_open = threshold_db
        if use_relative:
            thr_open = max(threshold_db, peak + relative_db)
        thr_close = thr_open - hysteresis_db
        if l_db >= thr_open:
            is_open = True
            hold = hold_samples
        elif l_db < thr_close and is_open:
            if hold > 0.0:
                hold -= 1.0
            else:
                is_open = False
        if is_open or range_db == 0.0:
            target = 0.0
        elif ratio <= 0.0:
            target = -range_db
        else:
            target = max(-range_db, (ratio - 1.0) * min(l_db - thr_close, 0.0))
        if target > g:
            g = attack * g + (1.0 - attack) * target
        else:
            g = release * g + (1.0 - release) * target
        out[i] = 1.0 if g == 0.0 else db_to_gain_kernel(g)
    state[0] = g
    state[1] = 1.0 if is_open else 0.0
    state[2] = hold
    state[3] = peak
    state[4] = ms
    return out


#: layout of the transient shaper's state array
TRANSIENT_STATE_SIZE = 5  # [detector, fast-attack env, slow-attack env, fast-release env, slow-release env]


@njit(cache=True, nogil=True)
def transient_gain(level, attack_db, sustain_db, detector_release, fast_attack, slow_attack, common_release,
                   fast_release, slow_release, reference_db, state):
    """Transient-shaper gain (linear) per sample from envelope differences.

    ``level`` first goes through a peak detector (instant attack, release
    ``detector_release``) that removes the waveform ripple, so that for a
    steady signal every envelope below converges to the same value.  Attack
    detector: ``dB(fast-attack env) - dB(slow-attack env)`` (both with
    ``common_release``), large right at an onset.  Sustain detector:
    ``dB(slow-release env) - dB(fast-release env)`` (both with an instant
    attack, so they agree at every onset), large in decaying tails.  Each is
    scaled to 0..1 by ``reference_db`` and the gain is
    ``attack_db * a + sustain_db * s`` dB.
    """
    n = level.shape[0]
    out = np.empty(n, dtype=np.float64)
    det = state[0]
    e_fa = state[1]
    e_sa = state[2]
    e_fr = state[3]
    e_sr = state[4]
    for i in range(n):
        det = follow(level[i], det, 0.0, detector_release)
        e_fa = follow(det, e_fa, fast_attack, common_release)
        e_sa = follow(det, e_sa, slow_attack, common_release)
        e_fr = follow(det, e_fr, 0.0, fast_release)
        e_sr = follow(det, e_sr, 0.0, slow_release)
        a = min(max(amp_to_db(e_fa) - amp_to_db(e_sa), 0.0) / reference_db, 1.0)
        s = min(max(amp_to_db(e_sr) - amp_to_db(e_fr), 0.0) / reference_db, 1.0)
        g_db = attack_db * a + sustain_db * s
        out[i] = 1.0 if g_db == 0.0 else db_to_gain_kernel(g_db)
    state[0] = det
    state[1] = e_fa
    state[2] = e_sa
    state[3] = e_fr
    state[4] = e_sr
    return out


@njit(cache=True, nogil=True)
def deesser_gain(full_level, band_level, threshold_db, relative_db, ratio, depth_db, attack, release, state):
    """De-esser gain (linear, for the high band) per sample.

    Two envelopes (same ``attack``/``release``): the full-band level and the
    sibilance-band level.  The band is over threshold by
    ``band_db - max(threshold_db, full_db + relative_db)`` dB (an absolute floor
    and a level relative to the whole signal, so it works at any gain staging);
    the reduction is ``excess * (1 - 1/ratio)``, capped at ``depth_db``.
    ``state``: ``[full env, band env]``.
    """
    n = full_level.shape[0]
    out = np.empty(n, dtype=np.float64)
    e_full = state[0]
    e_band = state[1]
    slope = 1.0 - 1.0 / ratio
    for i in range(n):
        e_full = follow(full_level[i], e_full, attack, release)
        e_band = follow(band_level[i], e_band, attack, release)
        thr = max(threshold_db, amp_to_db(e_full) + relative_db)
        gr = min(max(amp_to_db(e_band) - thr, 0.0) * slope, depth_db)
        out[i] = 1.0 if gr == 0.0 else db_to_gain_kernel(-gr)
    state[0] = e_full
    state[1] = e_band
    return out


def db_per_second_to_per_sample(db_per_s: float, sample_rate: float) -> float:
    """A slope in dB per second as dB per sample."""
    return float(db_per_s) / float(sample_rate)


def ms_to_samples(ms: float, sample_rate: float) -> int:
    """Milliseconds to a whole number of samples (rounded)."""
    return int(round(float(ms) * 1e-3 * float(sample_rate)))


__all__ = [
    "static_compression_db", "compressor_gain", "gate_gain", "gate_initial_state", "GATE_STATE_SIZE",
    "transient_gain", "TRANSIENT_STATE_SIZE", "deesser_gain", "db_per_second_to_per_sample",
    "ms_to_samples",
]
