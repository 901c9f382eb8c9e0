"""Feed-forward, stereo-linked compressor with a soft knee."""
from __future__ import annotations

import math

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.dynamics import compressor_gain, static_compression_db
from ..dsp.envelope import linked_level, time_constant_coeff
from ..errors import SettingsError
from ..stage import Stage


class Compressor(Stage):
    """Downward compressor on ``(channels, samples)`` blocks (zero latency).

    The detector is the stereo-linked peak ``max_c |x|`` in dBFS; the static
    curve has ``ratio`` above ``threshold_db`` and a quadratic knee
    ``knee_db`` wide; the gain reduction is smoothed in dB with ``attack_ms`` /
    ``release_ms`` time constants; ``makeup_db`` is added after.  One gain
    multiplies every channel, so the stereo image does not move.  With
    ``ratio == 1`` and ``makeup_db == 0`` it is a bit-exact pass-through.

    Parameters: threshold_db (dBFS), ratio (>= 1, input dB per output dB),
    knee_db (dB, >= 0), attack_ms / release_ms (ms, >= 0), makeup_db (dB).
    """

    name = "compressor"

    def __init__(self, threshold_db: float = -20.0, ratio: float = 3.0, knee_db: float = 6.0,
                 attack_ms: float = 10.0, release_ms: float = 120.0, makeup_db: float = 0.0,
                 channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE):
        if not (float(ratio) >= 1.0 and math.isfinite(float(ratio))):
            raise SettingsError(f"compressor ratio must be a finite number >= 1, not {ratio!r}")
        if float(knee_db) < 0.0 or float(attack_ms) < 0.0 or float(release_ms) < 0.0:
            raise SettingsError("compressor knee_db, attack_ms and release_ms must be >= 0")
        self.threshold_db = float(threshold_db)
        self.ratio = float(ratio)
        self.knee_db = float(knee_db)
        self.attack_ms = float(attack_ms)
        self.release_ms = float(release_ms)
        self.makeup_db = float(makeup_db)
        self.channels = int(channels)
        self.sample_rate = int(sample_rate)
        self._attack = time_constant_coeff(self.attack_ms, self.sample_rate)
        self._release = time_constant_coeff(self.release_ms, self.sample_rate)
        self.reset()

    def static_gain_db(self, level_db: float) -> float:
        """Steady-state gain (dB, makeup included) for a constant detector level in dBFS."""
        change = static_compression_db(float(level_db), self.threshold_db, self.ratio, self.knee_db)
        return float(change) + self.makeup_db

    def reset(self) -> None:
        self._state = np.zeros(1, dtype=np.float64)  # smoothed gain reduction, dB

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float64)
        gain = compressor_gain(linked_level(x), self.threshold_db, self.ratio, self.knee_db,
                               self._attack, self._release, self.makeup_db, self._state)
        return (x * gain).astype(np.float32)
