"""Streamed preview master: ride a running loudness estimate, then true-peak limit.

The preview cannot know the loudness of the whole concert, so it rides the
*integrated loudness so far* of its input (BS.1770-4 gated, from a
:class:`~.loudness.StreamingLoudnessMeter`): the same quantity the exact final
master (:mod:`.final`) will use once the stream ends, so the preview
converges to roughly the final master's gain.

* The wanted gain ``target_lufs - integrated_so_far`` is re-evaluated on the
  100 ms grid of absolute sample positions, once at least ``min_measure_s``
  (default 1 s) of audible material has been measured; until then the gain
  stays at ``initial_gain_db`` (default 0 dB).  Silence so far keeps the
  current gain.
* **Primed start.**  With ``initial_lufs`` (the loudness of the input's first
  seconds, which the runner analyses before the stream starts) the gain
  starts at ``target_lufs - initial_lufs`` on the first sample instead of
  0 dB, and the loudness estimate is the prior blended with the measurement,
  ``(prior_s * initial_lufs + measured_s * integrated_so_far) /
  (prior_s + measured_s)`` (``prior_s`` default 3 s), so the measured
  loudness takes over smoothly as the stream goes on.  Without it the
  preview started up to +4.7 dB too loud on a loud phone recording (0 dB
  gain for the first second, then a 1.5 s glide).
* The gain moves towards the wanted gain with a one-pole of ``smoothing_s``
  (default 1.5 s) at no more than ``max_rate_db_per_s`` (default 6 dB/s),
  bounded to ``[min_gain_db, max_gain_db]`` (default -24..+24 dB), and is
  ramped linearly across each 100 ms hop: chunk-size invariant, no clicks.
* Then a :class:`~.limiter.TruePeakLimiter` (ceiling ``ceiling_dbtp``).

The gain stage has no latency; :attr:`PreviewMaster.latency` is the
limiter's look-ahead (220 samples at 5 ms / 44.1 kHz).
"""
from __future__ import annotations

import math

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE
from ..errors import SettingsError
from ..stage import Stage
from ._ride import grid_segments, lin, ramp, smooth_step
from .limiter import TruePeakLimiter
from .loudness import StreamingLoudnessMeter


class PreviewMaster(Stage):
    """Loudness-riding master for the streamed preview (a :class:`Stage`).

    Parameters (units in the names): ``target_lufs``, ``ceiling_dbtp``,
    ``lookahead_ms`` / ``release_ms`` of the limiter, ``max_gain_db`` /
    ``min_gain_db`` bounds of the riding gain, ``max_rate_db_per_s``,
    ``smoothing_s``, ``initial_gain_db``, ``min_measure_s``, ``sample_rate``
    (Hz), ``channels``; ``initial_lufs`` (LUFS, ``None`` = unknown: start at
    ``initial_gain_db``) and ``prior_s`` (seconds of measured material the
    prior counts as), see the module notes.

    ``process(block (channels, n))`` returns float32 ``(channels, n)`` delayed
    by :attr:`latency` samples; ``flush()`` the last ``latency`` samples.
    """

    name = "preview_master"

    def __init__(self, target_lufs: float = -14.0, ceiling_dbtp: float = -1.0, lookahead_ms: float = 5.0,
                 release_ms: float = 80.0, max_gain_db: float = 24.0, min_gain_db: float = -24.0,
                 max_rate_db_per_s: float = 6.0, smoothing_s: float = 1.5, initial_gain_db: float = 0.0,
                 min_measure_s: float = 1.0, sample_rate: int = SAMPLE_RATE, channels: int = CHANNELS,
                 initial_lufs: float | None = None, prior_s: float = 3.0):
        if not (-60.0 <= target_lufs <= 0.0):
            raise SettingsError(f"target loudness must lie between -60 and 0 LUFS, got {target_lufs}")
        if min_gain_db > max_gain_db:
            raise SettingsError("min_gain_db must not exceed max_gain_db")
        self.target_lufs = float(target_lufs)
        self.max_gain_db = float(max_gain_db)
        self.min_gain_db = float(min_gain_db)
        self.max_rate_db_per_s = float(max_rate_db_per_s)
        self.smoothing_s = float(smoothing_s)
        if prior_s <= 0:
            raise SettingsError(f"prior_s must be positive, got {prior_s}")
        primed = initial_lufs is not None and math.isfinite(initial_lufs)
        self.initial_lufs = float(initial_lufs) if primed else None
        self.prior_s = float(prior_s)
        start = self.target_lufs - self.initial_lufs if primed else initial_gain_db
        self.initial_gain_db = float(min(max(start, min_gain_db), max_gain_db))
        self.min_measure_s = float(min_measure_s)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.limiter = TruePeakLimiter(ceiling_dbtp, lookahead_ms, release_ms, sample_rate=self.sample_rate,
                                       channels=self.channels)
        self.latency = self.limiter.latency
        self.hop = int(round(0.1 * self.sample_rate))
        self.hop_s = self.hop / self.sample_rate
        self.reset()

    def reset(self) -> None:
        self.meter = StreamingLoudnessMeter(self.sample_rate, self.channels)
        self.limiter.reset()
        self.gain_db = self.initial_gain_db  # gain reached at the end of the current hop
        self._g_prev = self._g_next = lin(self.gain_db)
        self.samples = 0

    @property
    def input_lufs(self) -> float:
        """Integrated loudness of the input so far, LUFS (``-inf`` while silent)."""
        return self.meter.integrated_lufs()

    def _loudness_estimate(self) -> float:
        """Loudness the gain rides (LUFS; ``-inf`` = nothing to go on yet)."""
        measured_s = self.meter.gated_blocks() * 0.1 + 0.3 if self.meter.gated_blocks() else 0.0
        loud = self.meter.integrated_lufs() if measured_s >= self.min_measure_s else float("-inf")
        if self.initial_lufs is None:
            return loud
        if loud == float("-inf"):
            return self.initial_lufs
        return (self.prior_s * self.initial_lufs + measured_s * loud) / (self.prior_s + measured_s)

    def _grid_update(self) -> None:
        wanted = self.gain_db
        loud = self._loudness_estimate()
        if loud != float("-inf"):
            wanted = min(self.max_gain_db, max(self.min_gain_db, self.target_lufs - loud))
        self.gain_db = smooth_step(self.gain_db, wanted, self.hop_s, self.smoothing_s, self.max_rate_db_per_s)
        self._g_prev, self._g_next = self._g_next, lin(self.gain_db)

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(block, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ValueError(f"{self.name}: expected a ({self.channels}, n) block, got shape {x.shape}")
        y = np.empty_like(x)
        for a, b, off, ends in grid_segments(self.samples, x.shape[1], self.hop):
            y[:, a:b] = x[:, a:b] * ramp(self._g_prev, self._g_next, off, b - a, self.hop)
            self.meter.process(x[:, a:b])
            if ends:
                self._grid_update()
        self.samples += x.shape[1]
        return self.limiter.process(y)

    def flush(self) -> np.ndarray:
        """End of stream: the limiter's last ``latency`` samples."""
        return self.limiter.flush()
