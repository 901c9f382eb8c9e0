"""Parametric EQ and high-pass stages (biquad cascades with carried state).

Bands are designed with the RBJ cookbook (:mod:`engine.dsp.biquad`) and run
as one :func:`engine.dsp.filters.sosfilt` cascade in float64 with the filter memories
carried across blocks: bit-exact under any chunking, zero latency.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.biquad import BAND_KINDS, SosFilter, design_band, sos_gain_db
from ..errors import SettingsError
from ..stage import Stage

#: band kinds whose effect is a gain (scaled by an intensity; 0 dB = no-op)
GAIN_KINDS = ("peak", "low_shelf", "high_shelf")


@dataclass(frozen=True)
class EQBand:
    """One EQ band.

    kind: one of ``peak``, ``low_shelf``, ``high_shelf``, ``highpass``,
        ``lowpass``, ``bandpass``, ``notch``.
    freq_hz: centre (peak, bandpass, notch), corner (shelves, at half the dB
        gain) or -3 dB (Butterworth high/low-pass) frequency, Hz.
    gain_db: gain of ``peak`` and the shelves, dB (ignored by the others).
    q: quality factor (bandwidth of peaks, slope of shelves; 0.7071 =
        Butterworth for a 2nd-order high/low-pass).
    order: order of ``highpass``/``lowpass`` (2 = one RBJ section using ``q``;
        other orders: Butterworth, 6 dB/octave per order).
    """

    kind: str
    freq_hz: float
    gain_db: float = 0.0
    q: float = 0.7071067811865476
    order: int = 2

    def __post_init__(self):
        if self.kind not in BAND_KINDS:
            raise SettingsError(f"unknown EQ band kind {self.kind!r}: choose one of {', '.join(BAND_KINDS)}")

    @property
    def is_identity(self) -> bool:
        """True for a gain band at 0 dB (designed as exactly nothing)."""
        return self.kind in GAIN_KINDS and float(self.gain_db) == 0.0

    def scaled(self, intensity: float) -> "EQBand":
        """This band with its gain multiplied by ``intensity`` (gain bands only)."""
        if self.kind not in GAIN_KINDS:
            return self
        return replace(self, gain_db=float(self.gain_db) * float(intensity))

    def sos(self, sample_rate: float) -> np.ndarray:
        """Second-order sections ``(sections, 6)`` of this band."""
        return design_band(self.kind, self.freq_hz, self.gain_db, self.q, self.order, sample_rate)


class ParametricEQ(Stage):
    """A cascade of :class:`EQBand` on ``(channels, samples)`` blocks (zero latency).

    Gain bands at 0 dB are left out, so an EQ whose gains are all 0 dB (for
    instance every gain scaled by an intensity of 0) is a bit-exact
    pass-through.
    """

    name = "eq"

    def __init__(self, bands: Sequence[EQBand], channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE):
        self.bands = [b for b in bands if not b.is_identity]
        self.channels = int(channels)
        self.sample_rate = int(sample_rate)
        rows = [b.sos(self.sample_rate) for b in self.bands]
        sos = np.concatenate(rows, axis=0) if rows else np.zeros((0, 6))
        self._filter = SosFilter(sos, self.channels)

    @property
    def sos(self) -> np.ndarray:
        """All sections of the cascade ``(sections, 6)``."""
        return self._filter.sos

    def response_db(self, freqs_hz) -> np.ndarray:
        """Magnitude response in dB at ``freqs_hz`` (Hz)."""
        return sos_gain_db(self.sos, freqs_hz, self.sample_rate)

    def reset(self) -> None:
        self._filter.reset()

    def _process(self, block: np.ndarray) -> np.ndarray:
        if self._filter.sections == 0:
            return block.astype(np.float32, copy=True)
        return self._filter.process(block.astype(np.float64)).astype(np.float32)


class HighPass(ParametricEQ):
    """Butterworth high-pass at ``cutoff_hz`` (-3 dB), ``order`` x 6 dB/octave."""

    name = "highpass"

    def __init__(self, cutoff_hz: float, order: int = 2, channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE):
        self.cutoff_hz = float(cutoff_hz)
        self.order = int(order)
        super().__init__([EQBand("highpass", self.cutoff_hz, order=self.order)], channels, sample_rate)
