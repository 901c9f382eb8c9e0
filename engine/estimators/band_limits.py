"""Band-limit detection: a recording's effective low and high cutoff (Hz).

* :func:`band_limits_from_psd`: the band of a long-term average spectrum
  (LTAS), with :func:`roll_off_knee` / :func:`high_pass_edge` for steep
  phone-like filter edges;
* :class:`BandLimitDetector`: the streaming LTAS (a pass-through stage and a
  sink: ``update(block)``, ``limits()``);
* :func:`detect_band_limits`: offline convenience for whole arrays.

Shared by the analysis (``engine.analysis.metrics``) and the restoration
(the high-band extender's cutoff) without either importing the other.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.filters import blackman_harris
from ..errors import SettingsError
from ..stage import Stage


#: default steepness (dB/octave) that marks a roll-off as a recording's band edge
EDGE_SLOPE_DB_PER_OCT = 20.0
#: the high edge is refined to the roll-off knee only below this (Hz): a recording
#: whose threshold edge is higher is full-band for restoration purposes, and a
#: steep fall above it is the music's own (or a codec's), not a phone's
KNEE_BELOW_HZ = 16000.0


def median_smooth_fractional_octave(freqs: np.ndarray, psd: np.ndarray, fraction: float = 12.0) -> np.ndarray:
    """Running median of a power spectrum over ``1/fraction``-octave windows.

    A median (not a mean) so steep band edges are not smeared while the
    frame-to-frame variance and narrow tonal peaks are.  ``freqs`` ``(F,)`` Hz
    (uniform from 0), ``psd`` ``(F,)`` power; returns ``(F,)`` power.
    """
    psd = np.asarray(psd, dtype=np.float64)
    df = freqs[1] - freqs[0]
    half = 2.0 ** (0.5 / fraction)
    lo = np.clip(np.floor(freqs / half / df).astype(int), 0, len(psd) - 1)
    hi = np.clip(np.ceil(freqs * half / df).astype(int), 0, len(psd) - 1)
    out = np.empty_like(psd)
    _running_median(psd, lo, hi, out)
    return out


@njit(cache=True, nogil=True)
def _running_median(psd, lo, hi, out):  # pragma: no cover - compiled
    """``out[k]`` = median of ``psd[lo[k] .. hi[k]]`` (at least ``k - 1 .. k + 1``), clipped to
    the array (numba's median: the same value as numpy's, in one pass without Python calls)."""
    n = psd.shape[0]
    for k in range(n):
        a = max(min(lo[k], k - 1), 0)
        b = min(max(hi[k], k + 1), n - 1)
        out[k] = np.median(psd[a:b + 1])
    return 0


def window_smear_bins(window: np.ndarray, drop_db: float) -> float:
    """How far (in bins) a steep band edge leaks ``drop_db`` below the band in an
    LTAS computed with ``window``: the one-sided power of the window's spectrum
    beyond that distance is ``drop_db`` below its total.
    """
    over = 16
    resp = np.abs(np.fft.rfft(window, len(window) * over)) ** 2
    resp /= 2.0 * resp.sum()
    tail = np.cumsum(resp[::-1])[::-1]
    below = np.nonzero(10.0 * np.log10(tail + 1e-300) < -drop_db)[0]
    return float(below[0]) / over if below.size else 0.0


def band_limits_from_psd(freqs: np.ndarray, psd: np.ndarray, drop_db: float = 30.0,
                         low_drop_db: float | None = None,
                         ref_band_hz: tuple[float, float] = (250.0, 4000.0),
                         smear_hz: float = 0.0,
                         edge_slope_db_per_oct: float | None = None,
                         edge_search_octaves: float = 1.0) -> tuple[float, float]:
    """Effective ``(low_hz, high_hz)`` band of a long-term average spectrum.

    The spectrum is median-smoothed over 1/12 octave; the reference is its
    median level (dB) across ``ref_band_hz``; ``high_hz`` is the highest and
    ``low_hz`` the lowest frequency whose smoothed level is within
    ``drop_db`` (``low_drop_db`` for the low edge, default ``drop_db``) of the
    reference, moved ``smear_hz`` inwards to undo the analysis window's
    leakage (see :func:`window_smear_bins`).  Silence gives ``(0.0, 0.0)``.

    With ``edge_slope_db_per_oct`` (dB/octave, e.g. 20) the high edge is then
    moved down to the *knee* of the roll-off when it is below
    :data:`KNEE_BELOW_HZ`: the threshold point of a steep filter (a phone's
    ~36 dB/octave low-pass) on bright music lies far above where the roll-off
    starts (:func:`roll_off_knee`); and the low edge is
    moved up to a steep high-pass edge hidden under a floor of AGC / codec
    by-products (:func:`high_pass_edge`).

    ``freqs`` ``(F,)`` Hz, uniform from 0; ``psd`` ``(F,)`` power (any scale).
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    psd = np.asarray(psd, dtype=np.float64)
    if psd.size < 4 or not np.any(psd > 0):
        return 0.0, 0.0
    sm = median_smooth_fractional_octave(freqs, psd)
    level = 10.0 * np.log10(sm + 1e-30)
    ref_sel = (freqs >= ref_band_hz[0]) & (freqs <= ref_band_hz[1])
    if not np.any(ref_sel):
        ref_sel = freqs > 0
    ref = float(np.median(level[ref_sel]))
    if ref < -250.0:
        return 0.0, 0.0
    low_drop = drop_db if low_drop_db is None else low_drop_db
    valid = freqs >= max(freqs[1], 10.0)
    above_hi = np.nonzero(valid & (level >= ref - drop_db))[0]
    above_lo = np.nonzero(valid & (level >= ref - low_drop))[0]
    if above_hi.size == 0 or above_lo.size == 0:
        return 0.0, 0.0
    low = float(freqs[above_lo[0]])
    high = float(freqs[above_hi[-1]])
    nyq = float(freqs[-1])
    if low > freqs[1] + smear_hz:
        low += smear_hz
    if high < nyq - smear_hz:
        high -= smear_hz
    if edge_slope_db_per_oct is not None and high > low:
        if high < KNEE_BELOW_HZ:
            high = max(roll_off_knee(freqs, level, high, edge_slope_db_per_oct, edge_search_octaves), low)
        low = min(max(low, high_pass_edge(freqs, level, low, edge_slope_db_per_oct)), high)
    return low, max(high, low)


def roll_off_knee(freqs: np.ndarray, level_db: np.ndarray, high_hz: float, slope_db_per_oct: float = 20.0,
                  search_octaves: float = 1.0, half_window_oct: float = 1.0 / 6.0) -> float:
    """Where the final steep roll-off below ``high_hz`` starts (Hz).

    ``level_db`` ``(F,)`` is a smoothed spectrum (dB) at ``freqs`` Hz.  The local
    slope is measured over +-``half_window_oct`` octave; walking down from
    ``high_hz`` in 1/48-octave steps (at most ``search_octaves``), the walk stops
    at the first point whose slope is gentler than ``-slope_db_per_oct``; the
    knee is that point plus the half window (so a brick wall is found exactly,
    a 6th-order Butterworth low-pass at ``fc`` gives about ``1.07 fc``, its
    -5 dB point).  Music rarely falls faster than ~20 dB/octave over a third of
    an octave; a phone's anti-alias / AAC low-pass does.  Never above ``high_hz``.
    """
    sel = freqs > 0
    lf = np.log2(freqs[sel])
    lv = level_db[sel]
    f = float(high_hz)
    stop = f * 2.0 ** (-search_octaves)
    step = 2.0 ** (-1.0 / 48.0)
    while f > stop:
        slope = (np.interp(np.log2(f) + half_window_oct, lf, lv)
                 - np.interp(np.log2(f) - half_window_oct, lf, lv)) / (2.0 * half_window_oct)
        if slope > -slope_db_per_oct:
            break
        f *= step
    return float(min(f * 2.0 ** half_window_oct, high_hz))


def high_pass_edge(freqs: np.ndarray, level_db: np.ndarray, low_hz: float, slope_db_per_oct: float = 20.0,
                   min_drop_db: float = 20.0, half_window_oct: float = 1.0 / 6.0,
                   top_hz: float = 1000.0) -> float:
    """The edge of a steep high-pass (a phone's ~100 Hz) hidden under a low-level floor (Hz).

    A phone's automatic gain control, clipping and codec leave a floor of
    by-products below its high-pass, often within the ``drop_db`` of
    :func:`band_limits_from_psd`, so the threshold rule finds no low edge.
    Scanning down from ``min(top_hz, max(400, 2 * low_hz))`` in 1/48-octave
    steps, an edge is a rise steeper than ``slope_db_per_oct`` (slope over
    +-``half_window_oct``; a brick wall is found exactly) such that the whole
    range from half an octave to an octave below it lies at least
    ``min_drop_db`` under the level above the rise.  Returns
    the highest such edge, or ``low_hz`` when there is none (or it is lower).
    ``level_db`` ``(F,)`` is a smoothed spectrum (dB) at ``freqs`` Hz.
    """
    sel = freqs > 0
    lf = np.log2(freqs[sel])
    lv = level_db[sel]

    def level(x: float) -> float:
        return float(np.interp(np.log2(x), lf, lv))

    f = min(top_hz, max(400.0, 2.0 * low_hz))
    bottom = max(low_hz, 2.0 * freqs[sel][0], 20.0)
    step = 2.0 ** (-1.0 / 48.0)
    while f > bottom:
        slope = (level(f * 2.0 ** half_window_oct) - level(f * 2.0 ** -half_window_oct)) / (2.0 * half_window_oct)
        if slope >= slope_db_per_oct:
            edge = f * 2.0 ** -half_window_oct
            below = max(level(edge * 2.0 ** (-k / 24.0)) for k in range(12, 25))
            if level(f * 2.0 ** half_window_oct) - below >= min_drop_db:
                return float(max(edge, low_hz))
        f *= step
    return float(low_hz)


class BandLimitDetector(Stage):
    """Streaming long-term-average-spectrum band-limit detector.

    A pass-through stage (latency 0, output = input) that accumulates the
    LTAS of the channel-mean signal in ``n_fft``-sample Blackman-Harris frames
    (hop ``n_fft // 2``); :meth:`limits` returns the effective
    ``(low_hz, high_hz)`` so far (see :func:`band_limits_from_psd`).  Memory is
    ``O(n_fft)`` whatever the stream length.  A phone recording typically
    gives about ``(100, 8000)``.  ``edge_slope_db_per_oct`` (None = off) moves
    the high edge to the knee of a steep roll-off (:func:`roll_off_knee`) and
    the low edge to a steep high-pass edge (:func:`high_pass_edge`).
    """

    name = "band_limit_detector"

    def __init__(self, sample_rate: int = SAMPLE_RATE, channels: int = CHANNELS, n_fft: int = 8192,
                 drop_db: float = 30.0, low_drop_db: float | None = None,
                 edge_slope_db_per_oct: float | None = EDGE_SLOPE_DB_PER_OCT):
        if n_fft < 64 or n_fft % 2:
            raise SettingsError(f"n_fft must be an even number >= 64, got {n_fft}")
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.n_fft = int(n_fft)
        self.hop = self.n_fft // 2
        self.drop_db = float(drop_db)
        self.low_drop_db = low_drop_db
        self.edge_slope_db_per_oct = edge_slope_db_per_oct
        self._win = blackman_harris(self.n_fft)
        self.freqs = np.fft.rfftfreq(self.n_fft, 1.0 / self.sample_rate)
        self._smear_hz = window_smear_bins(self._win, self.drop_db) * self.sample_rate / self.n_fft
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.float64)
        self._psd_sum = np.zeros(self.n_fft // 2 + 1, dtype=np.float64)
        self._frames = 0

    def _process(self, block: np.ndarray) -> np.ndarray:
        self.update(block)
        return np.array(block, dtype=np.float32, copy=True)

    def update(self, block: np.ndarray) -> None:
        """Accumulate ``block`` ``(channels, n)`` (or mono ``(n,)``) into the LTAS."""
        x = np.asarray(block, dtype=np.float64)
        mono = x if x.ndim == 1 else x.mean(axis=0)
        buf = np.concatenate([self._buf, mono])
        n_frames = (len(buf) - self.n_fft) // self.hop + 1 if len(buf) >= self.n_fft else 0
        for start in range(0, n_frames, 256):
            t = min(256, n_frames - start)
            idx = (start + np.arange(t))[:, None] * self.hop + np.arange(self.n_fft)[None, :]
            spec = np.fft.rfft(buf[idx] * self._win, axis=-1)
            self._psd_sum += np.sum(spec.real ** 2 + spec.imag ** 2, axis=0)
        self._frames += n_frames
        self._buf = buf[n_frames * self.hop:]

    @property
    def frames(self) -> int:
        """Number of analysis frames accumulated."""
        return self._frames

    def average_psd(self) -> np.ndarray:
        """Long-term average power spectrum ``(n_fft // 2 + 1,)`` (arbitrary scale)."""
        return self._psd_sum / max(self._frames, 1)

    def limits(self) -> tuple[float, float]:
        """Effective ``(low_hz, high_hz)`` of what was seen so far; ``(0, 0)`` if nothing."""
        if self._frames == 0:
            return 0.0, 0.0
        return band_limits_from_psd(self.freqs, self.average_psd(), self.drop_db, self.low_drop_db,
                                    smear_hz=self._smear_hz, edge_slope_db_per_oct=self.edge_slope_db_per_oct)

    def high_edge(self) -> "HighEdge":
        """The high band edge seen so far and a confidence (see :func:`high_edge_from_psd`);
        ``(nyquist, 0)`` before any frame."""
        if self._frames == 0:
            return HighEdge(self.sample_rate / 2.0, 0.0)
        return high_edge_from_psd(self.freqs, self.average_psd())


def detect_band_limits(x: np.ndarray, sample_rate: int = SAMPLE_RATE, drop_db: float = 30.0,
                       low_drop_db: float | None = None, n_fft: int = 8192,
                       edge_slope_db_per_oct: float | None = EDGE_SLOPE_DB_PER_OCT) -> tuple[float, float]:
    """Effective ``(low_hz, high_hz)`` of ``x`` ``(channels, samples)`` or ``(samples,)``.

    Offline convenience around :class:`BandLimitDetector` (processed in
    1-second pieces, so memory stays small).
    """
    x = np.asarray(x)
    det = BandLimitDetector(sample_rate, 1, n_fft, drop_db, low_drop_db, edge_slope_db_per_oct)
    mono = x if x.ndim == 1 else x.mean(axis=0)
    step = int(sample_rate)
    for i in range(0, len(mono), step):
        det.update(mono[i:i + step])
    return det.limits()


# --------------------------------------------------------------------------
# the high band edge with a confidence (what the high-band extension reads)
# --------------------------------------------------------------------------

#: mean deficit (dB under the in-band trend, half an octave above the edge) that
#: gives a step confidence of 0 and of 1: a phone's 36 dB/octave low-pass makes
#: about 18 dB, a natural roll-off seldom more than 8
EDGE_STEP_DB = (9.0, 15.0)
#: median deficit (dB) of what lies above the edge that gives a floor confidence
#: of 0 and 1: a recording that already has energy there (crowd, AGC / codec
#: by-products) within ``EDGE_FLOOR_DB[0]`` dB of the continued trend is not extended
EDGE_FLOOR_DB = (10.0, 20.0)
#: steps (dB) above this count as equally strong when choosing among edges
STEP_SATURATES_DB = 18.0


class HighEdge(tuple):
    """``(edge_hz, confidence)`` with the measurements behind them as attributes:
    ``step_db`` (mean deficit under the in-band trend over 1/4..3/4 octave above
    the edge), ``floor_db`` (median deficit over 1/2..5/4 octave above the edge), ``slope_db_per_oct`` (the in-band trend below the edge)."""

    def __new__(cls, edge_hz: float, confidence: float, step_db: float = 0.0, floor_db: float = 0.0,
                slope_db_per_oct: float = 0.0):
        obj = super().__new__(cls, (float(edge_hz), float(confidence)))
        obj.step_db = float(step_db)
        obj.floor_db = float(floor_db)
        obj.slope_db_per_oct = float(slope_db_per_oct)
        return obj

    @property
    def edge_hz(self) -> float:
        return self[0]

    @property
    def confidence(self) -> float:
        return self[1]

    def describe(self) -> dict:
        return {"edge_hz": self.edge_hz, "confidence": self.confidence, "step_db": self.step_db,
                "floor_db": self.floor_db, "slope_db_per_oct": self.slope_db_per_oct}


def _ramp(x: float, lo_hi: tuple[float, float]) -> float:
    return float(np.clip((x - lo_hi[0]) / (lo_hi[1] - lo_hi[0]), 0.0, 1.0))


def high_edge_from_psd(freqs: np.ndarray, psd: np.ndarray, search_hz: tuple[float, float] = (2800.0, 18000.0),
                       full_band_hz: float = KNEE_BELOW_HZ, knee_db: float = 3.0,
                       step_db: tuple[float, float] = EDGE_STEP_DB,
                       floor_db: tuple[float, float] = EDGE_FLOOR_DB) -> HighEdge:
    """The recording's high band edge and a confidence (:class:`HighEdge`).

    The long-term spectrum is median-smoothed (1/12 octave, dB) and resampled on
    a 1/96-octave grid.  For every candidate ``c`` in ``search_hz`` the in-band
    trend is a line (dB against octaves) fitted over ``[c / 4, c / 2^0.25]`` (its
    slope clamped to ``[-30, 0]`` dB/octave) and the *deficit* is how far the
    level lies under that line.  A low-pass edge is where the deficit, whatever
    the music's own slope, first reaches ``knee_db`` (a Butterworth's -3 dB
    point) while half an octave above it the deficit is large
    (the *step*: mean over ``[c * 2^0.25, c * 2^0.75]`` at least ``step_db[0]``).
    Of those candidates the one with the strongest step wins (steps above
    :data:`STEP_SATURATES_DB` count alike, the lowest within 2 dB of the
    strongest is taken: a phone's edge under a codec's brick wall).  The
    *floor* is the median deficit over ``[edge * 2^0.5, edge * 2^1.25]``: how
    far under the continued trend what the recording already has there lies.  Robust to a floor of AGC / clipping
    by-products and crowd noise (only the deficit counts, not a threshold), to
    codec holes (averaged in the long-term spectrum) and to the music's slope
    (-3 .. -18 dB/octave and more: the trend is measured, not assumed).

    ``confidence`` is the product of two ramps: the step (``step_db``: a
    36 dB/octave low-pass makes about 18 dB, a natural roll-off rarely more
    than 8) and the floor (``floor_db``: a recording that already has energy
    above the edge within ``floor_db[0]`` dB of the trend gets 0, so nothing
    is added there).  Without an edge, at or above ``full_band_hz``, or on
    silence the edge is Nyquist and the confidence 0.
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    psd = np.asarray(psd, dtype=np.float64)
    nyq = float(freqs[-1])
    if psd.size < 16 or not np.any(psd > 0):
        return HighEdge(nyq, 0.0)
    level = 10.0 * np.log10(median_smooth_fractional_octave(freqs, psd) + 1e-30)
    sel = freqs > 0
    lf, lv = np.log2(freqs[sel]), level[sel]
    top_f = np.log2(min(nyq * 0.98, 20000.0))
    c_hi = min(np.log2(search_hz[1]), top_f - 0.75)
    c_lo = np.log2(search_hz[0])
    if c_hi <= c_lo:
        return HighEdge(nyq, 0.0)
    res = 96
    grid = np.arange(c_lo - 2.0, top_f + 1e-9, 1.0 / res)
    y = np.interp(grid, lf, lv)
    cand = np.nonzero((grid >= c_lo) & (grid <= c_hi))[0]
    # least-squares lines over [c - 2, c - 0.25] for every candidate, from running sums
    x = grid - grid[0]
    cs = [np.concatenate([[0.0], np.cumsum(v)]) for v in (np.ones_like(x), x, y, x * x, x * y)]
    a = cand - 2 * res
    b = cand - res // 4 + 1
    n, sx, sy, sxx, sxy = [(c[b] - c[a]) for c in cs]
    mx, my = sx / n, sy / n
    varx = sxx / n - mx * mx
    slope = np.clip((sxy / n - mx * my) / np.maximum(varx, 1e-12), -30.0, 0.0)
    # deficits at, and above, each candidate: line(grid[k]) - y[k]
    line_at = lambda k: my[:, None] + slope[:, None] * (x[k] - mx[:, None])  # noqa: E731
    offs = np.arange(0, 2 * res + 1)
    k = np.minimum(cand[:, None] + offs[None, :], len(grid) - 1)
    deficit = line_at(k) - y[k]
    valid = (cand[:, None] + offs[None, :]) < len(grid)
    knee = deficit[:, 0]
    step_zone = (offs >= res // 4) & (offs <= 3 * res // 4)
    step = deficit[:, step_zone].mean(axis=1)
    floor_zone = (offs >= res // 2) & (offs <= 5 * res // 4)
    fz = np.where(valid & floor_zone[None, :], deficit, np.nan)
    floor = np.nanmedian(fz, axis=1)
    ok = (knee >= knee_db) & (step >= step_db[0])
    hits = np.nonzero(ok)[0]
    if hits.size == 0:
        return HighEdge(nyq, 0.0)
    # the strongest step (saturating: a codec's 50 dB brick wall above a phone's
    # 20 dB edge does not win), the lowest of those within 2 dB of it
    score = np.minimum(step[hits], STEP_SATURATES_DB)
    i = int(hits[np.nonzero(score >= score.max() - 2.0)[0][0]])
    # sub-grid: where the deficit crossed knee_db between the previous point and this one
    edge_log = grid[cand[i]]
    if i > 0:
        d0 = float(line_at(np.array([cand[i] - 1]))[i, 0] - y[cand[i] - 1])
        d1 = float(knee[i])
        if d1 > d0 and d0 < knee_db:
            edge_log -= min((d1 - knee_db) / (d1 - d0), 1.0) / res
    edge = float(2.0 ** edge_log)
    conf = _ramp(float(step[i]), step_db) * _ramp(float(floor[i]), floor_db)
    if edge >= full_band_hz:
        conf = 0.0
    return HighEdge(edge, conf, float(step[i]), float(floor[i]), float(slope[i]))


def detect_high_edge(x: np.ndarray, sample_rate: int = SAMPLE_RATE, n_fft: int = 8192) -> HighEdge:
    """Offline :class:`HighEdge` of ``x`` ``(channels, samples)`` or ``(samples,)``."""
    x = np.asarray(x)
    det = BandLimitDetector(sample_rate, 1, n_fft)
    mono = x if x.ndim == 1 else x.mean(axis=0)
    for i in range(0, len(mono), int(sample_rate)):
        det.update(mono[i:i + int(sample_rate)])
    return det.high_edge()
