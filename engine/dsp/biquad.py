"""Second-order sections: RBJ cookbook designs and a stateful SOS filter.

Coefficients follow Robert Bristow-Johnson's *Audio EQ Cookbook*; every design
returns one row ``[b0, b1, b2, 1, a1, a2]`` (normalised so ``a0 == 1``) in the
layout of ``scipy.signal.sosfilt`` and :func:`engine.dsp.filters.sosfilt` (``(sections, 6)``
when stacked).
Frequencies are in Hz, gains in dB, ``q`` is the dimensionless quality factor.

:class:`SosFilter` runs a cascade over ``(channels, samples)`` float64 blocks
with the filter memories (``zi``) carried across blocks, which makes it
bit-exact under any chunking: ``sosfilt`` recurses sample by sample, so feeding
a signal in pieces with the carried state performs exactly the same arithmetic
as feeding it whole.
"""
from __future__ import annotations

import math

import numpy as np
from ..audio import gain_to_db
from ..errors import SettingsError
from .filters import butter_sos, sos_response, sosfilt

#: kinds understood by :func:`design_band`
BAND_KINDS = ("peak", "low_shelf", "high_shelf", "highpass", "lowpass", "bandpass", "notch")


def _check_freq(freq_hz: float, sample_rate: float, what: str = "frequency") -> None:
    if not (0.0 < float(freq_hz) < 0.5 * float(sample_rate)):
        raise SettingsError(
            f"{what} {freq_hz!r} Hz must lie strictly between 0 and Nyquist ({0.5 * sample_rate:g} Hz)"
        )


def _check_q(q: float) -> None:
    if not (float(q) > 0.0 and math.isfinite(float(q))):
        raise SettingsError(f"filter Q must be a positive number, not {q!r}")


def _row(b0, b1, b2, a0, a1, a2) -> np.ndarray:
    return np.array([b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0], dtype=np.float64)


def _w0_alpha(freq_hz: float, q: float, sample_rate: float) -> tuple[float, float, float]:
    _check_freq(freq_hz, sample_rate)
    _check_q(q)
    w0 = 2.0 * math.pi * float(freq_hz) / float(sample_rate)
    return math.cos(w0), math.sin(w0), math.sin(w0) / (2.0 * float(q))


def peak(freq_hz: float, gain_db: float, q: float, sample_rate: float) -> np.ndarray:
    """Peaking (bell) EQ: exactly ``gain_db`` at ``freq_hz``; bandwidth from ``q``."""
    cw, _, alpha = _w0_alpha(freq_hz, q, sample_rate)
    a = 10.0 ** (float(gain_db) / 40.0)
    return _row(1 + alpha * a, -2 * cw, 1 - alpha * a, 1 + alpha / a, -2 * cw, 1 - alpha / a)


def low_shelf(freq_hz: float, gain_db: float, q: float, sample_rate: float) -> np.ndarray:
    """Low shelf: ``gain_db`` below ``freq_hz`` (half of it, in dB, at ``freq_hz``)."""
    cw, _, alpha = _w0_alpha(freq_hz, q, sample_rate)
    a = 10.0 ** (float(gain_db) / 40.0)
    sa = 2.0 * math.sqrt(a) * alpha
    return _row(
        a * ((a + 1) - (a - 1) * cw + sa),
        2 * a * ((a - 1) - (a + 1) * cw),
        a * ((a + 1) - (a - 1) * cw - sa),
        (a + 1) + (a - 1) * cw + sa,
        -2 * ((a - 1) + (a + 1) * cw),
        (a + 1) + (a - 1) * cw - sa,
    )


def high_shelf(freq_hz: float, gain_db: float, q: float, sample_rate: float) -> np.ndarray:
    """High shelf: ``gain_db`` above ``freq_hz`` (half of it, in dB, at ``freq_hz``)."""
    cw, _, alpha = _w0_alpha(freq_hz, q, sample_rate)
    a = 10.0 ** (float(gain_db) / 40.0)
    sa = 2.0 * math.sqrt(a) * alpha
    return _row(
        a * ((a + 1) + (a - 1) * cw + sa),
        -2 * a * ((a - 1) + (a + 1) * cw),
        a * ((a + 1) + (a - 1) * cw - sa),
        (a + 1) - (a - 1) * cw + sa,
        2 * ((a - 1) - (a + 1) * cw),
        (a + 1) - (a - 1) * cw - sa,
    )


def highpass(freq_hz: float, q: float, sample_rate: float) -> np.ndarray:
    """Second-order high-pass (-3 dB at ``freq_hz`` when ``q = 1/sqrt(2)``)."""
    cw, _, alpha = _w0_alpha(freq_hz, q, sample_rate)
    return _row((1 + cw) / 2, -(1 + cw), (1 + cw) / 2, 1 + alpha, -2 * cw, 1 - alpha)


def lowpass(freq_hz: float, q: float, sample_rate: float) -> np.ndarray:
    """Second-order low-pass (-3 dB at ``freq_hz`` when ``q = 1/sqrt(2)``)."""
    cw, _, alpha = _w0_alpha(freq_hz, q, sample_rate)
    return _row((1 - cw) / 2, 1 - cw, (1 - cw) / 2, 1 + alpha, -2 * cw, 1 - alpha)


def bandpass(freq_hz: float, q: float, sample_rate: float) -> np.ndarray:
    """Band-pass with 0 dB gain at ``freq_hz`` (constant peak gain form)."""
    cw, _, alpha = _w0_alpha(freq_hz, q, sample_rate)
    return _row(alpha, 0.0, -alpha, 1 + alpha, -2 * cw, 1 - alpha)


def notch(freq_hz: float, q: float, sample_rate: float) -> np.ndarray:
    """Notch (band-stop), zero gain at ``freq_hz``."""
    cw, _, alpha = _w0_alpha(freq_hz, q, sample_rate)
    return _row(1.0, -2 * cw, 1.0, 1 + alpha, -2 * cw, 1 - alpha)


def butterworth(kind: str, freq_hz: float | tuple[float, float], order: int, sample_rate: float) -> np.ndarray:
    """Butterworth ``lowpass``/``highpass``/``bandpass`` of any ``order`` as SOS ``(sections, 6)``.

    ``freq_hz`` is the -3 dB frequency, or the ``(low, high)`` pair for a band-pass
    (whose order doubles, as in ``scipy.signal.butter``).
    """
    if kind not in ("lowpass", "highpass", "bandpass"):
        raise SettingsError(f"butterworth kind must be lowpass, highpass or bandpass, not {kind!r}")
    if int(order) < 1:
        raise SettingsError(f"filter order must be at least 1, not {order!r}")
    freqs = np.atleast_1d(np.asarray(freq_hz, dtype=np.float64))
    for f in freqs:
        _check_freq(float(f), sample_rate)
    wn = freqs if kind == "bandpass" else float(freqs[0])
    return butter_sos(int(order), wn, kind, float(sample_rate))


def design_band(kind: str, freq_hz: float, gain_db: float, q: float, order: int, sample_rate: float) -> np.ndarray:
    """One EQ band as SOS ``(sections, 6)``.

    ``kind`` is one of :data:`BAND_KINDS`.  ``gain_db`` applies to ``peak`` and
    the shelves; ``order`` to ``highpass``/``lowpass`` (2 = one RBJ section with
    ``q``; any other order = Butterworth, ``q`` ignored).
    """
    if kind == "peak":
        return peak(freq_hz, gain_db, q, sample_rate)[None, :]
    if kind == "low_shelf":
        return low_shelf(freq_hz, gain_db, q, sample_rate)[None, :]
    if kind == "high_shelf":
        return high_shelf(freq_hz, gain_db, q, sample_rate)[None, :]
    if kind in ("highpass", "lowpass"):
        if int(order) == 2:
            fn = highpass if kind == "highpass" else lowpass
            return fn(freq_hz, q, sample_rate)[None, :]
        return butterworth(kind, freq_hz, order, sample_rate)
    if kind == "bandpass":
        return bandpass(freq_hz, q, sample_rate)[None, :]
    if kind == "notch":
        return notch(freq_hz, q, sample_rate)[None, :]
    raise SettingsError(f"unknown EQ band kind {kind!r}: choose one of {', '.join(BAND_KINDS)}")


def sos_gain_db(sos: np.ndarray, freqs_hz: np.ndarray | float, sample_rate: float) -> np.ndarray:
    """Magnitude response of ``sos`` in dB at ``freqs_hz`` (Hz)."""
    freqs = np.atleast_1d(np.asarray(freqs_hz, dtype=np.float64))
    sos = np.asarray(sos, dtype=np.float64)
    if sos.shape[0] == 0:
        return np.zeros_like(freqs)
    h = sos_response(sos, freqs, float(sample_rate))
    return gain_to_db(h, floor=1e-300)


class SosFilter:
    """A cascade of second-order sections with carried state.

    ``sos``: ``(sections, 6)`` coefficients; ``channels``: rows of the blocks.
    :meth:`process` takes and returns float64 ``(channels, samples)``; the state
    ``zi`` (``(sections, channels, 2)``) carries across calls.  With zero
    sections it is the identity (returns its input unchanged).
    """

    def __init__(self, sos: np.ndarray, channels: int):
        sos = np.asarray(sos, dtype=np.float64).reshape(-1, 6)
        self.sos = np.ascontiguousarray(sos)
        self.channels = int(channels)
        self.reset()

    @property
    def sections(self) -> int:
        return self.sos.shape[0]

    def reset(self) -> None:
        """Zero the filter memories (start of a new stream)."""
        self.zi = np.zeros((self.sections, self.channels, 2), dtype=np.float64)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter float64 ``x`` ``(channels, samples)``; returns the same shape."""
        if self.sections == 0 or x.shape[-1] == 0:
            return x
        y, self.zi = sosfilt(self.sos, x, axis=-1, zi=self.zi)
        return y
