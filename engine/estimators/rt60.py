"""Blind reverberation-time (RT60) estimation from free decays.

A room makes every sound die away no faster than its reverberation: after a
note stops, the level in dB falls along a straight line whose slope is
``-60 dB / RT60``.  :class:`RT60Estimator` follows the level of a band
(250 Hz - 4 kHz by default) frame by frame, finds *free-decay segments*
(level keeps falling, within a small tolerance, for at least ``min_decay_s``
and at least ``min_drop_db``), fits a line to each segment from 5 dB to 30 dB
(``5 + fit_range_db``) below its start (and at least 5 dB above its floor), and keeps the resulting decay times in a
fixed histogram (log-spaced, 0.05 - 12 s), so memory stays constant for any
stream length.  Source decays (a note's release) are slower than the room's,
never faster, so the estimate is a low quantile (``quantile``, 0.3) of the
collected decay times.
"""
from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import SettingsError


class RT60Estimator:
    """Frame-based streaming RT60 estimator.

    Feed it band energies with :meth:`update_frame_energy` (one value per
    frame of ``frame_period_s`` seconds, linear power), or audio with
    :meth:`update` (mono or ``(channels, n)``; it does its own 1024/256 STFT
    framing at ``sample_rate``).  :meth:`estimate` returns seconds or
    ``None`` while fewer than ``min_decays`` decays have been seen.
    """

    _bins = np.geomspace(0.05, 12.0, 121)  # histogram edges (s)

    def __init__(self, frame_period_s: float = 256 / SAMPLE_RATE, sample_rate: int = SAMPLE_RATE,
                 band_hz: tuple[float, float] = (250.0, 4000.0), smoothing_s: float = 0.01,
                 min_decay_s: float = 0.12, min_drop_db: float = 12.0, tolerance_db: float = 3.0,
                 quantile: float = 0.3, min_decays: int = 3, fit_range_db: float = 25.0):
        if frame_period_s <= 0:
            raise SettingsError(f"frame_period_s must be > 0, got {frame_period_s}")
        self.frame_period_s = float(frame_period_s)
        self.sample_rate = int(sample_rate)
        self.band_hz = band_hz
        self.min_decay_frames = max(3, int(round(min_decay_s / self.frame_period_s)))
        self.min_drop_db = float(min_drop_db)
        self.tolerance_db = float(tolerance_db)
        self.quantile = float(quantile)
        self.fit_range_db = float(fit_range_db)
        self.min_decays = int(min_decays)
        self._alpha = float(np.exp(-self.frame_period_s / smoothing_s)) if smoothing_s > 0 else 0.0
        # own framing for update()
        self._n_fft, self._hop = 1024, 256
        self._win = np.hanning(self._n_fft)
        f = np.fft.rfftfreq(self._n_fft, 1.0 / self.sample_rate)
        self._band_sel = (f >= band_hz[0]) & (f <= band_hz[1])
        self.reset()

    def reset(self) -> None:
        self._hist = np.zeros(len(self._bins) - 1, dtype=np.int64)
        self._smoothed = None
        self._seg: list[float] = []
        self._run_min = np.inf
        self._prev = None
        self._buf = np.zeros(0)
        self.decays_found = 0

    # -- input -------------------------------------------------------------
    def update(self, x: np.ndarray) -> None:
        """Accumulate audio ``x`` (``(n,)`` or ``(channels, n)``) at ``sample_rate``."""
        if abs(self.frame_period_s - self._hop / self.sample_rate) > 1e-9:
            raise SettingsError("update() needs frame_period_s == 256 / sample_rate")
        x = np.asarray(x, dtype=np.float64)
        mono = x if x.ndim == 1 else x.mean(axis=0)
        buf = np.concatenate([self._buf, mono])
        n = (len(buf) - self._n_fft) // self._hop + 1 if len(buf) >= self._n_fft else 0
        frames = np.lib.stride_tricks.sliding_window_view(buf, self._n_fft)[::self._hop] if n else None  # a view
        for s in range(0, n, 512):
            spec = np.fft.rfft(frames[s:s + 512] * self._win, axis=-1)
            e = np.sum(np.abs(spec[:, self._band_sel]) ** 2, axis=1)
            for v in e:
                self.update_frame_energy(float(v))
        self._buf = buf[n * self._hop:]

    def update_frame_energy(self, energy: float) -> None:
        """Consume one frame's band energy (linear power, any scale)."""
        if self._smoothed is None:
            self._smoothed = energy
        else:
            self._smoothed = self._alpha * self._smoothed + (1.0 - self._alpha) * energy
        level = 10.0 * np.log10(self._smoothed + 1e-20)
        if level < -150.0:  # digital silence: no decay information
            self._close_segment()
            self._prev = None
            return
        if not self._seg:
            if self._prev is not None and level < self._prev:
                self._seg = [self._prev, level]
                self._run_min = level
        elif level <= self._run_min + self.tolerance_db:
            self._seg.append(level)
            self._run_min = min(self._run_min, level)
        else:
            self._close_segment()
        self._prev = level

    def _close_segment(self) -> None:
        seg = np.asarray(self._seg)
        self._seg = []
        self._run_min = np.inf
        if len(seg) < self.min_decay_frames:
            return
        start, floor = float(seg[0]), float(seg.min())
        if start - floor < self.min_drop_db:
            return
        # cut the segment where it reaches its floor (noise / next onset)
        end = int(np.argmin(seg)) + 1
        seg = seg[:end]
        t = np.arange(len(seg)) * self.frame_period_s
        use = (seg <= start - 5.0) & (seg >= max(floor + 5.0, start - 5.0 - self.fit_range_db))
        if use.sum() < 3:
            return
        first, last = np.nonzero(use)[0][[0, -1]]
        if (last - first + 1) < 3 or seg[first] - seg[last] < 6.0:
            return
        slope = np.polyfit(t[first:last + 1], seg[first:last + 1], 1)[0]  # dB/s
        if slope >= -1.0:
            return
        rt = -60.0 / slope
        k = np.searchsorted(self._bins, rt) - 1
        if 0 <= k < len(self._hist):
            self._hist[k] += 1
            self.decays_found += 1

    # -- output ------------------------------------------------------------
    def estimate(self) -> float | None:
        """RT60 in seconds, or ``None`` before ``min_decays`` free decays were seen."""
        total = int(self._hist.sum())
        if total < self.min_decays:
            return None
        c = np.cumsum(self._hist)
        k = int(np.searchsorted(c, self.quantile * total))
        return float(np.sqrt(self._bins[k] * self._bins[k + 1]))


def estimate_rt60(x: np.ndarray, sample_rate: int = SAMPLE_RATE, default: float | None = None,
                  **kwargs) -> float | None:
    """Blind RT60 (s) of ``x`` ``(channels, samples)`` or ``(samples,)``.

    Streams ``x`` through :class:`RT60Estimator` in 1-second pieces; returns
    ``default`` when too few free decays were found (continuous music without
    pauses gives little to measure).
    """
    est = RT60Estimator(frame_period_s=256 / sample_rate, sample_rate=sample_rate, **kwargs)
    x = np.asarray(x)
    step = int(sample_rate)
    for i in range(0, x.shape[-1], step):
        est.update(x[..., i:i + step])
    est._close_segment()
    r = est.estimate()
    return default if r is None else r
