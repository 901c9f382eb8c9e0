"""Band-limit detection and high-band extension (module 04).

* :func:`band_limits_from_psd` / :func:`detect_band_limits` /
  :class:`BandLimitDetector`: estimate a recording's effective low and high
  cutoff (Hz) from its long-term average spectrum (LTAS).
* :class:`HighBandExtender`: regenerates the band above a cutoff (a phone's
  ~8 kHz) from the octave below it: spectral band replication (the top
  octave's fine structure translated upward, with an envelope that continues
  the measured slope and then rolls off) mixed with a harmonic exciter
  (rectified top octave, whose 2nd harmonics land above the cutoff).
"""
from __future__ import annotations

import numpy as np
from scipy import signal

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.stft import StreamingSTFTStage
from ..errors import SettingsError
from ..stage import Stage


# --------------------------------------------------------------------------
# band-limit detection
# --------------------------------------------------------------------------

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
    for k in range(len(psd)):
        a, b = min(lo[k], k - 1), max(hi[k], k + 1)
        out[k] = np.median(psd[max(a, 0):b + 1])
    return out


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
        self._win = signal.get_window("blackmanharris", self.n_fft)
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
# high-band extension
# --------------------------------------------------------------------------

class HighBandExtender(StreamingSTFTStage):
    """Regenerate the band above ``cutoff_hz`` from the octave below it.

    Two generators, mixed with ``harmonic_ratio`` (energy share of the exciter):

    * **spectral band replication** (STFT, ``frame_length`` 2048 / hop 512 at
      44.1 kHz): the spectral fine structure of ``[cutoff - shift, cutoff)``
      is copied to ``[cutoff, cutoff + shift)``, then again from there, up to
      ``max_hz``.  ``shift`` is about half the cutoff, rounded to a multiple of
      ``frame_length / hop`` bins so translated partials stay phase-coherent from
      frame to frame.  Copies are re-levelled so the envelope continues the
      slope (dB/octave) measured over the two octaves below the cutoff
      (time-smoothed, clamped to [-24, 0] dB/oct), minus an extra
      ``rolloff_db_per_oct`` natural roll-off, and fades to zero at ``max_hz``.
    * **harmonic exciter**: the top octave below the cutoff
      (4th-order band-pass) is full-wave rectified, which puts its 2nd
      harmonics in ``[cutoff, 2 * cutoff)``; its spectrum above the cutoff is
      re-levelled per 1/3-octave band to the same envelope.

    The generated band fades in over 1/6 octave above the cutoff and is
    *added* (times ``amount``) to the untouched, delayed input, so
    ``amount = 0`` is bit-exactly transparent and nothing below the cutoff
    changes.  Latency ``frame_length - 1`` samples.

    Parameters
    ----------
    cutoff_hz: detected high cutoff (Hz), e.g. from :class:`BandLimitDetector`.
    amount: 0..2, linear gain of the generated band (1 = envelope continuation).
    """

    name = "high_band_extender"
    add_to_dry = True

    def __init__(self, cutoff_hz: float = 8000.0, amount: float = 1.0, sample_rate: int = SAMPLE_RATE,
                 channels: int = CHANNELS, harmonic_ratio: float = 0.3, rolloff_db_per_oct: float = 6.0,
                 max_hz: float = 20000.0, frame_length: int = 2048, hop: int = 512,
                 smoothing_s: float = 0.2, fill_only: bool = True):
        nyq = sample_rate / 2.0
        if not (500.0 <= cutoff_hz < 0.9 * nyq):
            raise SettingsError(f"cutoff_hz must be in [500, {0.9 * nyq:.0f}) Hz, got {cutoff_hz}")
        if not (0.0 <= amount <= 2.0):
            raise SettingsError(f"amount must be in [0, 2], got {amount}")
        if not (0.0 <= harmonic_ratio <= 1.0):
            raise SettingsError(f"harmonic_ratio must be in [0, 1], got {harmonic_ratio}")
        super().__init__(frame_length, hop, channels, sample_rate, analysis_channels=2 * channels)
        self.cutoff_hz = float(cutoff_hz)
        self.amount = float(amount)
        self.harmonic_ratio = float(harmonic_ratio)
        self.rolloff_db_per_oct = float(rolloff_db_per_oct)
        self.max_hz = float(min(max_hz, nyq))
        self.fill_only = bool(fill_only)
        df = self.bin_hz
        self._freqs = np.arange(self.bins) * df
        self._kc = int(np.ceil(self.cutoff_hz / df))
        ratio = self.frame_length // self.hop
        shift = max(ratio, int(round(self.cutoff_hz / 2.0 / df / ratio)) * ratio)
        if shift >= self._kc:
            shift = max(ratio, (self._kc - 1) // ratio * ratio)
        self._shift = shift
        self._kmax = min(self.bins, int(np.floor(self.max_hz / df)) + 1)
        # slope-fit bands: 1/3 octave bands over the two octaves below the cutoff
        edges = self.cutoff_hz * 2.0 ** (np.arange(-6, 1) / 3.0)
        self._fit_bands = [(int(np.ceil(a / df)), int(np.ceil(b / df))) for a, b in zip(edges[:-1], edges[1:])]
        self._fit_x = np.log2(np.sqrt(edges[:-1] * edges[1:]) / self.cutoff_hz)
        # exciter levelling bands: 1/3 octave above the cutoff
        up = []
        f = self.cutoff_hz
        while f < self.max_hz:
            g = min(f * 2.0 ** (1.0 / 3.0), self.max_hz)
            a, b = int(np.ceil(f / df)), min(int(np.ceil(g / df)), self._kmax)
            if b > a:
                up.append((a, b))
            f = g
        self._exc_bands = up
        # fade-in above the cutoff (1/6 octave, raised cosine) and fade-out to max_hz
        fr = self._freqs
        x_in = np.clip(np.log2(np.maximum(fr, 1e-9) / self.cutoff_hz) * 6.0, 0.0, 1.0)
        fade_in = 0.5 - 0.5 * np.cos(np.pi * x_in)
        top0 = 0.85 * self.max_hz
        x_out = np.clip((fr - top0) / max(self.max_hz - top0, 1.0), 0.0, 1.0)
        fade_out = 0.5 + 0.5 * np.cos(np.pi * x_out)
        w = fade_in * fade_out
        w[self._kmax:] = 0.0
        w[:self._kc] = 0.0
        self._blend = w
        self._alpha = float(np.exp(-self.hop / (self.sample_rate * smoothing_s)))
        # exciter filters: band-pass [cutoff/2, cutoff], then DC-blocking high-pass
        self._sos_bp = signal.butter(4, [self.cutoff_hz / 2.0, self.cutoff_hz], btype="bandpass",
                                     fs=self.sample_rate, output="sos")
        self._sos_hp = signal.butter(2, self.cutoff_hz / 2.0, btype="highpass", fs=self.sample_rate,
                                     output="sos")
        self.reset_spectral_state()

    def reset_spectral_state(self) -> None:
        c = self.channels
        self._zi_bp = np.zeros((self._sos_bp.shape[0], c, 2))
        self._zi_hp = np.zeros((self._sos_hp.shape[0], c, 2))
        self._band_pow = None  # time-smoothed slope-fit band powers
        self._fill_pow = None  # time-smoothed (existing, generated) powers of the bands above the cutoff

    # the STFT sees [input channels, exciter channels]
    def analysis_input(self, x: np.ndarray) -> np.ndarray:
        xd = x.astype(np.float64)
        bp, self._zi_bp = signal.sosfilt(self._sos_bp, xd, axis=1, zi=self._zi_bp)
        exc, self._zi_hp = signal.sosfilt(self._sos_hp, np.abs(bp), axis=1, zi=self._zi_hp)
        return np.concatenate([xd, exc], axis=0)

    def _process(self, block: np.ndarray) -> np.ndarray:
        if self.amount == 0.0:
            # a pure delay of `latency` samples: nothing is generated
            return self._delayed_dry(np.asarray(block, dtype=np.float32))
        return super()._process(block)

    def _envelope_db(self, f: np.ndarray, slope: float) -> np.ndarray:
        """Target envelope (dB re the cutoff) for frequencies ``f`` Hz."""
        o = np.log2(np.maximum(f, 1.0) / self.cutoff_hz)
        return slope * np.minimum(o, 0.0) + (slope - self.rolloff_db_per_oct) * np.maximum(o, 0.0)

    def process_frames(self, spectra: np.ndarray, frame_ends: np.ndarray) -> np.ndarray:
        c = self.channels
        X, E = spectra[:, :c], spectra[:, c:]  # input and exciter spectra (frames, channels, bins)
        out = np.zeros_like(X)
        if self.amount == 0.0:
            return out
        kc, sh, kmax = self._kc, self._shift, self._kmax
        p = (X.real ** 2 + X.imag ** 2).sum(axis=1)  # (frames, bins) power summed over channels
        for t in range(X.shape[0]):
            bp = np.array([p[t, a:b].mean() if b > a else 0.0 for a, b in self._fit_bands])
            if self._band_pow is None:
                self._band_pow = bp
            else:
                self._band_pow = self._alpha * self._band_pow + (1.0 - self._alpha) * bp
            lv = 10.0 * np.log10(self._band_pow + 1e-20)
            ok = self._band_pow > 1e-18
            if ok.sum() >= 2:
                xs = self._fit_x[ok]
                slope = float(np.polyfit(xs, lv[ok], 1)[0])
            else:
                slope = -12.0
            slope = float(np.clip(slope, -24.0, 0.0))
            # spectral band replication, one `shift` at a time
            G = np.zeros((c, kmax), dtype=np.complex128)
            G[:, :kc] = X[t, :, :kc]
            env = self._envelope_db(self._freqs[:kmax], slope)
            k = kc
            while k < kmax:
                k2 = min(k + sh, kmax)
                src = np.arange(k, k2) - sh
                gain = 10.0 ** ((env[k:k2] - env[src]) / 20.0)
                G[:, k:k2] = G[:, src] * gain
                k = k2
            G[:, :kc] = 0.0
            H = np.sqrt(1.0 - self.harmonic_ratio) * G
            if self.harmonic_ratio > 0.0:
                Et = E[t, :, :kmax]
                Es = np.zeros_like(G)
                for a, b in self._exc_bands:
                    eg = np.sum(np.abs(G[:, a:b]) ** 2)
                    ee = np.sum(np.abs(Et[:, a:b]) ** 2)
                    if ee > 1e-30:
                        Es[:, a:b] = Et[:, a:b] * np.sqrt(eg / ee)
                H += np.sqrt(self.harmonic_ratio) * Es
            H = self.amount * self._blend[:kmax] * H
            if self.fill_only:
                H = self._fill_deficit(X[t, :, :kmax], H)
            out[t, :, :kmax] = H
        return out

    def _fill_deficit(self, Xt: np.ndarray, H: np.ndarray) -> np.ndarray:
        """Scale the generated band ``H`` ``(C, kmax)`` per 1/3 octave above the
        cutoff so that existing + generated power reaches the generated target,
        never more: ``gain = sqrt(max(1 - existing / generated, 0))`` on
        time-smoothed powers (``smoothing_s``)."""
        nb = len(self._exc_bands)
        ex = np.empty(nb)
        ge = np.empty(nb)
        for i, (a, b) in enumerate(self._exc_bands):
            ex[i] = np.sum(Xt[:, a:b].real ** 2 + Xt[:, a:b].imag ** 2)
            ge[i] = np.sum(H[:, a:b].real ** 2 + H[:, a:b].imag ** 2)
        if self._fill_pow is None:
            self._fill_pow = np.stack([ex, ge])
        else:
            self._fill_pow = self._alpha * self._fill_pow + (1.0 - self._alpha) * np.stack([ex, ge])
        se, sg = self._fill_pow
        gain = np.sqrt(np.clip(1.0 - se / np.maximum(sg, 1e-30), 0.0, 1.0))
        gain[sg <= 1e-30] = 1.0
        for i, (a, b) in enumerate(self._exc_bands):
            H[:, a:b] *= gain[i]
        return H


def extender_for(high_hz: float, amount: float = 1.0, sample_rate: int = SAMPLE_RATE,
                 channels: int = CHANNELS, min_gap_hz: float = 1000.0) -> Stage:
    """A :class:`HighBandExtender` for a detected ``high_hz``, or a transparent
    stage (same latency) when the recording already reaches within
    ``min_gap_hz`` of 20 kHz / Nyquist, so pipelines keep a fixed latency.
    """
    ext_cutoff = min(max(high_hz, 500.0), 0.9 * sample_rate / 2.0 - 1.0)
    top = min(20000.0, sample_rate / 2.0)
    amt = amount if high_hz < top - min_gap_hz else 0.0
    return HighBandExtender(ext_cutoff, amt, sample_rate=sample_rate, channels=channels)
