"""Per-bin noise-floor tracking and spectral gating kernels (numba, per frame).

Arrays are ``(frames, bins)`` float64 power spectra (``|X|^2``, any consistent
scale) processed in time order; state arrays ``(bins,)`` are updated in place
so a streaming caller gets the same result however its frames were batched.

* :func:`recursive_smooth` - one-pole smoothing of the power over frames.
* :func:`track_minimum` - continuous minimum tracker: follows the smoothed
  power down instantly and rises at most by a fixed factor per frame (a
  "fast-falling, slow-rising" floor, cf. Doblinger 1995 / minimum statistics).
* :func:`running_median` - median across neighbouring bins (an across-frequency
  noise floor that tonal peaks do not raise).
* :func:`spectral_gate_gains` - soft gate: gain in dB from the frame's SNR
  (power averaged across neighbouring bins) over the noise estimate, limited
  to ``reduction_db`` and smoothed over time (instant rise, slow release),
  which keeps the "musical noise" of isolated bins down.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .envelope import db_to_gain_kernel


@njit(cache=True, nogil=True)
def recursive_smooth(power, alpha, active, state, initialised):
    """``S = alpha * S + (1 - alpha) * P`` per bin, frame by frame.

    ``active`` (``(frames,)`` bool): frames that update the smoother; the first
    active frame sets ``S = P`` (no fade-in from zero) and raises
    ``initialised[0]``.  Returns the smoothed power of every frame
    ``(frames, bins)`` (inactive frames report the held state).
    """
    f_count, k_count = power.shape
    out = np.empty((f_count, k_count), dtype=np.float64)
    for f in range(f_count):
        if active[f]:
            if initialised[0] == 0.0:
                for k in range(k_count):
                    state[k] = power[f, k]
                initialised[0] = 1.0
            else:
                for k in range(k_count):
                    state[k] = alpha * state[k] + (1.0 - alpha) * power[f, k]
        for k in range(k_count):
            out[f, k] = state[k]
    return out


@njit(cache=True, nogil=True)
def track_minimum(smoothed, rise, update, state):
    """Continuous minimum of ``smoothed`` per bin, rising by at most ``rise`` per frame.

    ``rise``: linear power factor > 1 per frame (``10 ** (dB_per_frame / 10)``).
    ``update`` (``(frames,)`` bool) selects the frames that move the tracker
    (others hold it).  ``state`` starts at ``inf`` (no estimate yet).  Returns
    the floor after each frame, ``(frames, bins)``.
    """
    f_count, k_count = smoothed.shape
    out = np.empty((f_count, k_count), dtype=np.float64)
    for f in range(f_count):
        if update[f]:
            for k in range(k_count):
                s = smoothed[f, k]
                t = state[k]
                if s < t:
                    t = s
                else:
                    t = t * rise
                    if t > s:  # never rise above the current smoothed power
                        t = s
                state[k] = t
        for k in range(k_count):
            out[f, k] = state[k]
    return out


@njit(cache=True, nogil=True)
def running_median(values, width):
    """Median over ``width`` (odd) neighbouring bins of every row of ``(frames, bins)``.

    Edges repeat the first/last bin (like ``scipy.ndimage.median_filter`` with
    ``mode="nearest"``).  A sorted window is updated by one removal and one
    insertion per bin: O(bins * width) per frame.
    """
    f_count, k_count = values.shape
    half = width // 2
    out = np.empty((f_count, k_count), dtype=np.float64)
    window = np.empty(width, dtype=np.float64)
    for f in range(f_count):
        row = values[f]
        for j in range(width):
            window[j] = row[min(max(j - half, 0), k_count - 1)]
        window.sort()
        for k in range(k_count):
            out[f, k] = window[half]
            if k + 1 == k_count:
                break
            old = row[max(k - half, 0)]
            new = row[min(k + half + 1, k_count - 1)]
            # remove ``old``: find it, then shift the tail left
            i = 0
            while window[i] != old:
                i += 1
            while i + 1 < width:
                window[i] = window[i + 1]
                i += 1
            # insert ``new`` into the first width-1 sorted slots
            i = width - 1
            while i > 0 and window[i - 1] > new:
                window[i] = window[i - 1]
                i -= 1
            window[i] = new
    return out


@njit(cache=True, nogil=True)
def _smoothstep(x):
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return x * x * (3.0 - 2.0 * x)


@njit(cache=True, nogil=True)
def spectral_gate_gains(smoothed, noise, reduction_db, threshold_lo_db, threshold_hi_db, freq_kernel,
                        release, state):
    """Soft spectral-gate gains (linear, ``(frames, bins)``).

    The power is first averaged across neighbouring bins with ``freq_kernel``
    (odd length, positive weights, renormalised at the edges): an isolated
    noise bin that pokes above the threshold is diluted by its neighbours (less
    "musical noise"), while the bins around a strong partial all see it and
    stay open.  Then per bin ``snr_db = 10 log10(power / noise)``; the gain is
    ``-reduction_db`` below ``threshold_lo_db``, 0 dB above
    ``threshold_hi_db`` and a smoothstep in between, smoothed over frames in
    dB: rising instantly, falling with the one-pole coefficient ``release``.
    ``state`` (``(bins,)``, dB) holds the smoothed gain.  With
    ``reduction_db == 0`` every gain is exactly 1.0.
    """
    f_count, k_count = smoothed.shape
    half = freq_kernel.shape[0] // 2
    width = threshold_hi_db - threshold_lo_db
    out = np.empty((f_count, k_count), dtype=np.float64)
    for f in range(f_count):
        for k in range(k_count):
            acc = 0.0
            wsum = 0.0
            for j in range(-half, half + 1):
                kk = k + j
                if 0 <= kk < k_count:
                    w = freq_kernel[j + half]
                    acc += w * smoothed[f, kk]
                    wsum += w
            s = acc / wsum
            nz = noise[f, k]
            if s <= 1e-300:
                g = -reduction_db
            elif nz <= 1e-300:
                g = 0.0
            else:
                snr = 10.0 * math.log10(s / nz)
                g = -reduction_db * (1.0 - _smoothstep((snr - threshold_lo_db) / width))
            prev = state[k]
            if g > prev:
                prev = g
            else:
                prev = release * prev + (1.0 - release) * g
            state[k] = prev
            out[f, k] = 1.0 if prev == 0.0 else db_to_gain_kernel(prev)
    return out
