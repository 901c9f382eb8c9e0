"""Transient shaper: more (or less) attack and sustain, level-independent."""
from __future__ import annotations

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.dynamics import TRANSIENT_STATE_SIZE, transient_gain
from ..dsp.envelope import linked_level, time_constant_coeff
from ..errors import SettingsError
from ..stage import Stage


class TransientShaper(Stage):
    """Stereo-linked transient shaper on ``(channels, samples)`` blocks (zero latency).

    A peak detector of ``max_c |x|`` (instant attack, ``detector_release_ms``)
    feeds four envelopes: a fast- and a slow-attack one
    (``fast_attack_ms`` / ``slow_attack_ms``, both releasing with
    ``release_ms``) whose dB difference marks onsets, and a fast- and a
    slow-release one (``fast_release_ms`` / ``slow_release_ms``, both with an
    instant attack so they agree at every onset) whose difference marks
    decaying tails; for a steady signal both differences vanish.  The common
    release should stay short (default: the detector's 20 ms) so the two
    attack envelopes meet again soon after an onset, even on slow decays.  Each
    difference, divided by ``reference_db`` and clipped to 0..1, scales
    ``attack_db`` / ``sustain_db`` (dB; positive boosts, negative softens).
    Times in ms.  As it only compares envelopes it
    does not depend on the absolute level.  ``attack_db = sustain_db = 0``
    gives a bit-exact pass-through.
    """

    name = "transient"

    def __init__(self, attack_db: float = 3.0, sustain_db: float = 0.0, detector_release_ms: float = 20.0,
                 fast_attack_ms: float = 0.5, slow_attack_ms: float = 20.0, release_ms: float = 20.0,
                 fast_release_ms: float = 30.0, slow_release_ms: float = 300.0, reference_db: float = 6.0,
                 channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE):
        if not float(reference_db) > 0.0:
            raise SettingsError("transient reference_db must be positive")
        for v in (attack_db, sustain_db):
            if not -24.0 <= float(v) <= 24.0:
                raise SettingsError(f"transient attack/sustain must be within +-24 dB, not {v!r}")
        self.attack_db = float(attack_db)
        self.sustain_db = float(sustain_db)
        self.detector_release_ms = float(detector_release_ms)
        self.fast_attack_ms = float(fast_attack_ms)
        self.slow_attack_ms = float(slow_attack_ms)
        self.release_ms = float(release_ms)
        self.fast_release_ms = float(fast_release_ms)
        self.slow_release_ms = float(slow_release_ms)
        self.reference_db = float(reference_db)
        self.channels = int(channels)
        self.sample_rate = int(sample_rate)
        sr = self.sample_rate
        self._coeffs = (time_constant_coeff(self.detector_release_ms, sr),
                        time_constant_coeff(self.fast_attack_ms, sr), time_constant_coeff(self.slow_attack_ms, sr),
                        time_constant_coeff(self.release_ms, sr), time_constant_coeff(self.fast_release_ms, sr),
                        time_constant_coeff(self.slow_release_ms, sr))
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(TRANSIENT_STATE_SIZE, dtype=np.float64)

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float64)
        gain = transient_gain(linked_level(x), self.attack_db, self.sustain_db, *self._coeffs,
                              self.reference_db, self._state)
        return (x * gain).astype(np.float32)
