"""Harmonic generation by envelope-normalised Chebyshev waveshaping (numba).

For a sinusoid ``x = A cos(wt)``, the Chebyshev polynomials give exact
harmonics: ``T2(x/A) = cos(2wt)``, ``T3(x/A) = cos(3wt)``.  The kernel divides
the (band-limited) input by its own peak envelope, shapes it with
``w2 * T2 + w3 * T3`` and multiplies the envelope back, so the generated
harmonics follow the input's level linearly (a plain waveshaper's harmonics
grow with the square or cube of the level).  The envelope is stereo-linked
and carried in ``state``, so the kernel is chunk-size invariant.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .envelope import follow


@njit(cache=True, nogil=True)
def chebyshev_harmonics(x, weight_2nd, weight_3rd, attack, release, state):
    """2nd/3rd harmonics of ``x`` (float64 ``(channels, samples)``), same shape.

    ``weight_2nd``/``weight_3rd``: linear amplitudes of the 2nd and 3rd
    harmonic relative to the input envelope.  ``attack``/``release``: one-pole
    coefficients of the peak envelope.  ``state[0]``: the envelope.  The output
    has a DC component (``-w2 * envelope``) that callers remove with a
    high-pass filter.
    """
    c, n = x.shape
    out = np.empty((c, n), dtype=np.float64)
    env = state[0]
    for i in range(n):
        level = 0.0
        for ch in range(c):
            a = abs(x[ch, i])
            if a > level:
                level = a
        env = follow(level, env, attack, release)
        den = env if env > 1e-9 else 1e-9
        for ch in range(c):
            u = x[ch, i] / den
            if u > 1.0:
                u = 1.0
            elif u < -1.0:
                u = -1.0
            u2 = u * u
            out[ch, i] = env * (weight_2nd * (2.0 * u2 - 1.0) + weight_3rd * (4.0 * u2 - 3.0) * u)
    state[0] = env
    return out
