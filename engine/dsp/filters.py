"""The few IIR/FIR tools the DSP path needs, without importing ``scipy.signal``.

``scipy.signal`` costs about a second to import (it pulls ``scipy.stats``,
``scipy.interpolate`` and the whole windows module), more than the rest of a
``resonate process`` start-up together.  These are the same designs and the
same recursion, in numpy and one numba kernel:

* :func:`butter_sos` - digital Butterworth low/high/band-pass as second-order
  sections (``scipy.signal.butter(..., output="sos", fs=...)``: analog
  prototype, pre-warped bilinear transform, poles nearest the unit circle in
  the last section, the gain in the first);
* :func:`sosfilt` - direct form II transposed cascade with carried state, the
  same arithmetic per sample as ``scipy.signal.sosfilt`` (``zi`` shaped
  ``(sections, ..., 2)``), so block-wise filtering with the carried state is
  bit-exact under any chunking;
* :func:`sos_response` - complex response at given frequencies (``sosfreqz``);
* :func:`blackman_harris` - the periodic 4-term window (``get_window``);
* :func:`kaiser_lowpass` - windowed-sinc low-pass FIR (``firwin`` with a Kaiser
  window).

``tests/test_dsp_filters.py`` checks each against scipy.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_BTYPES = ("lowpass", "highpass", "bandpass")


def _bilinear(z: np.ndarray, p: np.ndarray, k: float, fs2: float):
    """Analog zpk -> digital zpk (``fs2 = 2 * fs``); zeros at infinity map to -1."""
    degree = p.size - z.size
    zd = (fs2 + z) / (fs2 - z)
    pd = (fs2 + p) / (fs2 - p)
    zd = np.concatenate([zd, -np.ones(degree)])
    kd = k * np.real(np.prod(fs2 - z) / np.prod(fs2 - p))
    return zd, pd, kd


def _sections(z: np.ndarray, p: np.ndarray, k: float) -> np.ndarray:
    """Pair poles (conjugate pairs; the closest to the unit circle last) with their nearest
    zeros into ``(sections, 6)`` rows ``[b0, b1, b2, 1, a1, a2]``; the gain in the first."""
    p = list(p[np.imag(p) >= -1e-12 * np.abs(p)])  # one of each conjugate pair, and the real ones
    z = list(z)
    rows = []
    while p:
        i = int(np.argmin([abs(1.0 - abs(q)) for q in p]))
        p1 = p.pop(i)
        if abs(p1.imag) > 1e-12 * abs(p1):  # complex pair: two zeros
            poles = [p1, np.conj(p1)]
            n_zeros = 2
        else:  # real pole: pair it with the real pole nearest the unit circle, if any
            poles = [p1.real]
            reals = [j for j, q in enumerate(p) if abs(q.imag) <= 1e-12 * abs(q)]
            if reals:
                j = reals[int(np.argmin([abs(1.0 - abs(p[j])) for j in reals]))]
                poles.append(p.pop(j).real)
            n_zeros = len(poles)
        zeros = []
        for _ in range(min(n_zeros, len(z))):
            j = int(np.argmin([abs(q - p1) for q in z]))
            zeros.append(z.pop(j))
        b = np.real(np.poly(zeros)) if zeros else np.ones(1)
        a = np.real(np.poly(poles))
        row = np.zeros(6)
        row[:b.size] = b
        row[3:3 + a.size] = a
        rows.append(row)
    sos = np.array(rows[::-1]) if rows else np.zeros((0, 6))
    if sos.shape[0]:
        sos[0, :3] *= k
    return sos


def butter_sos(order: int, freq_hz, btype: str, fs: float) -> np.ndarray:
    """Digital Butterworth filter as SOS ``(sections, 6)`` float64.

    ``freq_hz``: the -3 dB frequency (low/high-pass) or the ``(low, high)`` pair
    (band-pass, whose order doubles); ``fs``: the sample rate in Hz.
    """
    if btype not in _BTYPES:
        raise ValueError(f"btype must be one of {_BTYPES}, not {btype!r}")
    n = int(order)
    if n < 1:
        raise ValueError(f"order must be at least 1, not {order!r}")
    fs = float(fs)
    wn = np.atleast_1d(np.asarray(freq_hz, dtype=np.float64))
    if wn.size != (2 if btype == "bandpass" else 1) or np.any(wn <= 0) or np.any(wn >= fs / 2):
        raise ValueError(f"cut-off {freq_hz!r} Hz must lie strictly between 0 and {fs / 2:g} Hz")
    fs2 = 4.0  # the design runs on normalised frequencies with fs = 2 (fs2 = 2 fs), as scipy's does
    warped = 4.0 * np.tan(np.pi * (2.0 * wn / fs) / 2.0)
    m = np.arange(-n + 1, n, 2)
    p = -np.exp(1j * np.pi * m / (2 * n))  # analog prototype poles, no zeros, gain 1
    z = np.zeros(0, dtype=complex)
    if btype == "lowpass":
        z, p, k = z, warped[0] * p, warped[0] ** n
    elif btype == "highpass":
        z, p, k = np.zeros(n, dtype=complex), warped[0] / p, 1.0 / np.real(np.prod(-p))
    else:
        bw = warped[1] - warped[0]
        w0 = np.sqrt(warped[0] * warped[1])
        lp = p * bw / 2.0
        root = np.sqrt(lp ** 2 - w0 ** 2)
        p = np.concatenate([lp + root, lp - root])
        z, k = np.zeros(n, dtype=complex), bw ** n
    zd, pd, kd = _bilinear(z, p, k, fs2)
    return np.ascontiguousarray(_sections(zd, pd, kd))


@njit(cache=True, nogil=True)
def _sosfilt_rows(sos, x, zi):  # pragma: no cover - compiled
    """``x`` (rows, n) float64 in place through ``sos``; ``zi`` (sections, rows, 2) updated."""
    ns = sos.shape[0]
    z = np.empty((ns, 2))
    for r in range(x.shape[0]):
        for s in range(ns):
            z[s, 0] = zi[s, r, 0]
            z[s, 1] = zi[s, r, 1]
        for i in range(x.shape[1]):
            v = x[r, i]
            for s in range(ns):
                y = sos[s, 0] * v + z[s, 0]
                z[s, 0] = sos[s, 1] * v - sos[s, 4] * y + z[s, 1]
                z[s, 1] = sos[s, 2] * v - sos[s, 5] * y
                v = y
            x[r, i] = v
        for s in range(ns):
            zi[s, r, 0] = z[s, 0]
            zi[s, r, 1] = z[s, 1]
    return 0


def sosfilt(sos: np.ndarray, x: np.ndarray, axis: int = -1, zi: np.ndarray | None = None):
    """Filter ``x`` along ``axis`` through the cascade ``sos`` (float64 result).

    With ``zi`` returns ``(y, zf)``, else ``y``, as ``scipy.signal.sosfilt`` does:
    ``zi`` is ``(sections, *x.shape with x.shape[axis] replaced by 2)``; ``sos``
    rows have ``a0 == 1``.
    """
    sos = np.ascontiguousarray(np.asarray(sos, dtype=np.float64).reshape(-1, 6))
    x = np.asarray(x)
    axis = axis % x.ndim
    moved = np.moveaxis(x, axis, -1)
    rest = moved.shape[:-1]
    rows = np.array(moved, dtype=np.float64, order="C").reshape(-1, moved.shape[-1])
    if zi is None:
        state = np.zeros((sos.shape[0], rows.shape[0], 2))
    else:
        state = np.array(np.moveaxis(np.asarray(zi, dtype=np.float64), axis + 1, -1), order="C")
        state = state.reshape(sos.shape[0], rows.shape[0], 2)
    if rows.size:
        _sosfilt_rows(sos, rows, state)
    y = np.moveaxis(rows.reshape(rest + (moved.shape[-1],)), -1, axis)
    if zi is None:
        return y
    return y, np.moveaxis(state.reshape((sos.shape[0],) + rest + (2,)), -1, axis + 1)


def sos_response(sos: np.ndarray, freqs_hz, fs: float) -> np.ndarray:
    """Complex frequency response of ``sos`` at ``freqs_hz`` (Hz)."""
    sos = np.asarray(sos, dtype=np.float64).reshape(-1, 6)
    zm1 = np.exp(-2j * np.pi * np.atleast_1d(np.asarray(freqs_hz, dtype=np.float64)) / float(fs))
    h = np.ones(zm1.shape, dtype=complex)
    for b0, b1, b2, a0, a1, a2 in sos:
        h *= (b0 + zm1 * (b1 + zm1 * b2)) / (a0 + zm1 * (a1 + zm1 * a2))
    return h


def blackman_harris(n: int) -> np.ndarray:
    """Periodic 4-term Blackman-Harris window of ``n`` points (for FFT frames)."""
    if n <= 1:
        return np.ones(max(int(n), 0))
    fac = np.linspace(-np.pi, np.pi, int(n) + 1)[:-1]
    w = np.zeros(int(n))
    for k, a in enumerate((0.35875, 0.48829, 0.14128, 0.01168)):
        w += a * np.cos(k * fac)
    return w


def kaiser_lowpass(numtaps: int, cutoff: float, beta: float) -> np.ndarray:
    """Linear-phase low-pass FIR, ``cutoff`` relative to Nyquist, Kaiser window ``beta``,
    unit gain at DC (``firwin(numtaps, cutoff, window=("kaiser", beta))``)."""
    m = np.arange(int(numtaps)) - (int(numtaps) - 1) / 2.0
    h = float(cutoff) * np.sinc(float(cutoff) * m) * np.kaiser(int(numtaps), float(beta))
    return h / h.sum()
