"""Split-band de-esser (zero latency)."""
from __future__ import annotations

import math

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.biquad import SosFilter, butterworth
from ..dsp.dynamics import deesser_gain
from ..dsp.envelope import linked_level, time_constant_coeff
from ..errors import SettingsError
from ..stage import Stage


class DeEsser(Stage):
    """Reduces sibilance on ``(channels, samples)`` blocks.

    Sidechain: a Butterworth band-pass ``band_hz`` (default 5-9 kHz) of the
    input; its stereo-linked envelope is compared with the full-band envelope
    (both ``attack_ms`` / ``release_ms``).  The band is "too loud" by
    ``band_db - max(threshold_db, full_db + relative_threshold_db)`` dB; the
    reduction is that excess times ``1 - 1/ratio``, at most ``depth_db``.

    Split band: the reduced band is ``h = HP1(x)``, a first-order high-pass at
    ``split_hz``; the output is ``x - (1 - g) * h``.  A first-order high-pass
    has a non-negative real part at every frequency, so ``|1 - c H| <= 1``:
    the split never boosts anything, and at ``g = 1`` the output is exactly
    ``x`` (``depth_db = 0`` is a bit-exact pass-through).  Zero latency.

    Parameters: depth_db (dB, >= 0), threshold_db (dBFS), relative_threshold_db
    (dB relative to the full-band level), ratio (>= 1), attack_ms / release_ms
    (ms), band_hz ((low, high) Hz), split_hz (Hz).
    """

    name = "deesser"

    def __init__(self, depth_db: float = 6.0, threshold_db: float = -45.0, relative_threshold_db: float = -12.0,
                 ratio: float = 4.0, attack_ms: float = 0.5, release_ms: float = 40.0,
                 band_hz: tuple[float, float] = (5000.0, 9000.0), split_hz: float = 4000.0,
                 channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE):
        if float(depth_db) < 0.0:
            raise SettingsError(f"de-esser depth_db must be >= 0, not {depth_db!r}")
        if not (float(ratio) >= 1.0 and math.isfinite(float(ratio))):
            raise SettingsError(f"de-esser ratio must be a finite number >= 1, not {ratio!r}")
        self.depth_db = float(depth_db)
        self.threshold_db = float(threshold_db)
        self.relative_threshold_db = float(relative_threshold_db)
        self.ratio = float(ratio)
        self.attack_ms = float(attack_ms)
        self.release_ms = float(release_ms)
        self.band_hz = (float(band_hz[0]), float(band_hz[1]))
        self.split_hz = float(split_hz)
        self.channels = int(channels)
        self.sample_rate = int(sample_rate)
        self._sidechain = SosFilter(butterworth("bandpass", self.band_hz, 2, self.sample_rate), self.channels)
        self._split = SosFilter(butterworth("highpass", self.split_hz, 1, self.sample_rate), self.channels)
        self._attack = time_constant_coeff(self.attack_ms, self.sample_rate)
        self._release = time_constant_coeff(self.release_ms, self.sample_rate)
        self.reset()

    def reset(self) -> None:
        self._sidechain.reset()
        self._split.reset()
        self._state = np.zeros(2, dtype=np.float64)  # [full-band env, sibilance-band env]

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float64)
        band = self._sidechain.process(x)
        high = self._split.process(x)
        gain = deesser_gain(linked_level(x), linked_level(band), self.threshold_db, self.relative_threshold_db,
                            self.ratio, self.depth_db, self._attack, self._release, self._state)
        return (x - (1.0 - gain) * high).astype(np.float32)
