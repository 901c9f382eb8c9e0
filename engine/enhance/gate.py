"""Noise gate / downward expander with hysteresis, hold and look-ahead."""
from __future__ import annotations

import math

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.dynamics import db_per_second_to_per_sample, gate_gain, gate_initial_state, ms_to_samples
from ..dsp.envelope import linked_level, time_constant_coeff
from ..errors import SettingsError
from ..stage import Delay, Stage


class NoiseGate(Stage):
    """Stereo-linked gate / downward expander on ``(channels, samples)`` blocks.

    The detector (RMS of ``max_c |x|``: one-pole mean square with time
    constant ``detector_ms``, so noise reads at its RMS, not its peaks) opens
    the gate when it reaches the open threshold and closes it after it stayed ``hysteresis_db`` below that for
    ``hold_ms``.  Open threshold, dBFS: ``threshold_db``, or, when
    ``relative_threshold_db`` is set, ``max(threshold_db, running_peak +
    relative_threshold_db)`` where the running peak of the detector decays by
    ``peak_decay_db_per_s`` (so the gate follows the playing level).
    Closed, the gain falls to ``-range_db`` (``ratio = inf``: gate) or follows
    the expander curve ``(ratio - 1) * (level - close_threshold)``, floored at
    ``-range_db``.  The gain opens with ``attack_ms`` and closes with
    ``release_ms`` (dB-domain one-poles).

    ``lookahead_ms`` delays the audio (not the detector) so the gate is already
    open when a hit arrives: ``latency = round(lookahead_ms * fs / 1000)``
    samples.  ``range_db = 0`` makes it a pure delay (bit-exact).
    """

    name = "gate"

    def __init__(self, threshold_db: float = -50.0, relative_threshold_db: float | None = None,
                 range_db: float = 40.0, ratio: float = math.inf, hysteresis_db: float = 6.0,
                 hold_ms: float = 30.0, attack_ms: float = 0.25, release_ms: float = 80.0,
                 lookahead_ms: float = 2.0, detector_ms: float = 5.0, peak_decay_db_per_s: float = 6.0,
                 channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE):
        if float(range_db) < 0.0:
            raise SettingsError(f"gate range_db must be >= 0 dB, not {range_db!r}")
        if not float(ratio) > 1.0:
            raise SettingsError(f"expander ratio must be > 1 (inf for a gate), not {ratio!r}")
        if float(lookahead_ms) < 0.0 or float(hold_ms) < 0.0 or float(hysteresis_db) < 0.0:
            raise SettingsError("gate lookahead_ms, hold_ms and hysteresis_db must be >= 0")
        self.threshold_db = float(threshold_db)
        self.relative_threshold_db = None if relative_threshold_db is None else float(relative_threshold_db)
        self.range_db = float(range_db)
        self.ratio = float(ratio)
        self.hysteresis_db = float(hysteresis_db)
        self.hold_ms = float(hold_ms)
        self.attack_ms = float(attack_ms)
        self.release_ms = float(release_ms)
        self.lookahead_ms = float(lookahead_ms)
        self.detector_ms = float(detector_ms)
        self.peak_decay_db_per_s = float(peak_decay_db_per_s)
        self.channels = int(channels)
        self.sample_rate = int(sample_rate)
        self.latency = ms_to_samples(self.lookahead_ms, self.sample_rate)
        self._hold = float(ms_to_samples(self.hold_ms, self.sample_rate))
        self._attack = time_constant_coeff(self.attack_ms, self.sample_rate)
        self._release = time_constant_coeff(self.release_ms, self.sample_rate)
        self._detector = time_constant_coeff(self.detector_ms, self.sample_rate)
        self._decay = db_per_second_to_per_sample(self.peak_decay_db_per_s, self.sample_rate)
        self._delay = Delay(self.latency, self.channels)
        self.reset()

    def reset(self) -> None:
        self._state = gate_initial_state()
        self._delay.reset()

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float64)
        gain = gate_gain(linked_level(x), self.threshold_db,
                         0.0 if self.relative_threshold_db is None else self.relative_threshold_db,
                         self.relative_threshold_db is not None, self._decay, self.hysteresis_db, self._hold,
                         self.range_db, -1.0 if math.isinf(self.ratio) else self.ratio,
                         self._detector, self._attack, self._release, self._state)
        delayed = self._delay.process(block).astype(np.float64)
        return (delayed * gain).astype(np.float32)
