"""Bass harmonic exciter: 2nd/3rd harmonics so bass is heard on small speakers."""
from __future__ import annotations

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.biquad import SosFilter, butterworth
from ..dsp.envelope import time_constant_coeff
from ..dsp.harmonics import chebyshev_harmonics
from ..errors import SettingsError
from ..stage import Stage


class BassExciter(Stage):
    """Adds harmonics of the low band to ``(channels, samples)`` blocks (zero latency).

    Path: band-pass the input to ``band_hz`` (2nd-order Butterworth high-pass
    and low-pass), generate the 2nd and 3rd harmonics with an
    envelope-normalised Chebyshev waveshaper (:mod:`engine.dsp.harmonics`;
    their level follows the band's level linearly), band-limit them to
    ``harmonic_band_hz`` (removes the shaper's DC and any energy at the
    fundamentals), and mix them back at ``amount`` (linear, relative to the
    band's envelope; 0 = bit-exact pass-through).  ``second`` / ``third``:
    linear weights of the two harmonics.  The filters carry state and the
    shaper is memoryless apart from its carried envelope, so the stage is
    chunk-size invariant.
    """

    name = "exciter"

    def __init__(self, amount: float = 0.5, band_hz: tuple[float, float] = (30.0, 120.0),
                 harmonic_band_hz: tuple[float, float] = (90.0, 1200.0), second: float = 0.7,
                 third: float = 0.5, attack_ms: float = 1.0, release_ms: float = 120.0,
                 channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE):
        if not 0.0 <= float(amount) <= 2.0:
            raise SettingsError(f"exciter amount must be between 0 and 2, not {amount!r}")
        self.amount = float(amount)
        self.band_hz = (float(band_hz[0]), float(band_hz[1]))
        self.harmonic_band_hz = (float(harmonic_band_hz[0]), float(harmonic_band_hz[1]))
        self.second = float(second)
        self.third = float(third)
        self.attack_ms = float(attack_ms)
        self.release_ms = float(release_ms)
        self.channels = int(channels)
        self.sample_rate = int(sample_rate)
        sr = self.sample_rate
        pre = np.concatenate([butterworth("highpass", self.band_hz[0], 2, sr),
                              butterworth("lowpass", self.band_hz[1], 2, sr)])
        post = np.concatenate([butterworth("highpass", self.harmonic_band_hz[0], 2, sr),
                               butterworth("lowpass", self.harmonic_band_hz[1], 2, sr)])
        self._pre = SosFilter(pre, self.channels)
        self._post = SosFilter(post, self.channels)
        self._attack = time_constant_coeff(self.attack_ms, sr)
        self._release = time_constant_coeff(self.release_ms, sr)
        self.reset()

    def reset(self) -> None:
        self._pre.reset()
        self._post.reset()
        self._state = np.zeros(1, dtype=np.float64)  # envelope of the low band

    def _process(self, block: np.ndarray) -> np.ndarray:
        if self.amount == 0.0:
            return block.astype(np.float32, copy=True)
        x = block.astype(np.float64)
        low = self._pre.process(x)
        harmonics = chebyshev_harmonics(low, self.second, self.third, self._attack, self._release, self._state)
        return (x + self.amount * self._post.process(harmonics)).astype(np.float32)
