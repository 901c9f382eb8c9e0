"""Streaming noise suppression without spectral holes (Ephraim-Malah log-spectral amplitude).

A bin pushed to -60 dB costs far more log-spectral error than noise left at
the right level, so this suppressor never gates: every bin keeps at least
``floor_db`` of its level.  On :class:`engine.dsp.stft.StreamingSTFTStage`
(one gain per bin, shared by the channels so the stereo image stays):

1. Noise power per bin by MCRA (Cohen & Berdugo 2002), frame by frame:
   the power smoothed over time and three neighbouring bins ``S``; a
   continuous minimum ``S_min`` that falls at once and rises at most
   ``floor_rise_db_per_s`` (cf. Doblinger; minimum statistics without the
   windows); the speech/music presence probability ``p`` smoothed from the
   indicator ``S > delta * S_min``; the noise estimate follows the frame power
   with ``alpha_d + (1 - alpha_d) * p`` (it freezes while music is present).
   The minimum is capped by the median of ``S`` across ``median_hz`` of
   neighbouring bins, so a sustained note, which stands far above its
   neighbours, is never taken for noise however long it lasts.
2. A-priori SNR by the decision-directed rule
   ``xi = a * G_prev^2 * gamma_prev + (1 - a) * max(gamma - 1, 0)`` (``a =
   dd_alpha``, ``xi >= xi_min``), a-posteriori SNR ``gamma = |Y|^2 / lambda``.
3. LSA gain ``G = xi / (1 + xi) * exp(E1(v) / 2)``, ``v = xi * gamma / (1 + xi)``,
   limited below by the floor ``10 ** (-strength * max_reduction_db / 20)``:
   ``strength`` (0..1) is the user's control, 0 = every gain exactly 1 (the
   stage only delays the signal).

The recursion (noise tracker, DD) runs over frames inside one numba kernel
on ``(bins,)`` state arrays, so a streaming caller gets the same result
however its frames were batched (chunk-size invariant).  Latency:
``frame_length - 1`` samples (2047 at the defaults).

:meth:`report` says what it did: mean gain (dB) per octave band and the
share of the input's energy it removed.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.stft import StreamingSTFTStage
from ..errors import SettingsError

#: octave bands of :meth:`LSANoiseSuppressor.report` (upper edges, Hz)
REPORT_BAND_EDGES_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 22050.0)
#: bias from the smoothed minimum to the mean noise power (dB)
MINIMUM_BIAS_DB = 3.0


@njit(cache=True)
def _expint_e1(x):
    """Exponential integral E1(x), x > 0 (series below 1, Abramowitz-Stegun 5.1.56 above)."""
    if x < 1.0:
        # -gamma - ln x + x - x^2/4 + x^3/18 - x^4/96 + x^5/600
        return (-0.5772156649015329 - math.log(x) + x - x * x / 4.0 + x ** 3 / 18.0 - x ** 4 / 96.0
                + x ** 5 / 600.0)
    num = x * x + 2.334733 * x + 0.250621
    den = x * x + 3.330657 * x + 1.681534
    return math.exp(-x) / x * num / den


@njit(cache=True)
def lsa_gains(power, active, state_s, state_min, state_p, state_noise, state_gain2gamma, ready,
              alpha_s, rise, delta, alpha_p, alpha_d, dd_alpha, xi_min, gain_floor, median_cap, bias):
    """LSA gains ``(frames, bins)`` of ``power`` ``(frames, bins)`` (see the module doc).

    State arrays ``(bins,)`` are updated in place; ``ready[0]`` is 0 until the
    first active frame (which initialises every tracker to its power).
    ``median_cap`` ``(frames, bins)``: the across-frequency median of the
    smoothed power, the highest the minimum may be (already bias-scaled).
    Inactive frames (digital silence, stream start) hold the state and get gain 1.
    """
    f_count, k_count = power.shape
    out = np.ones((f_count, k_count), dtype=np.float64)
    sm = np.empty(k_count, dtype=np.float64)
    for f in range(f_count):
        if not active[f]:
            continue
        row = power[f]
        # frequency smoothing (1/4, 1/2, 1/4)
        for k in range(k_count):
            a = row[k - 1] if k > 0 else row[k]
            b = row[k + 1] if k + 1 < k_count else row[k]
            sm[k] = 0.25 * a + 0.5 * row[k] + 0.25 * b
        if ready[0] == 0.0:
            for k in range(k_count):
                state_s[k] = sm[k]
                state_min[k] = sm[k]
                state_noise[k] = sm[k]
                state_p[k] = 0.0
                state_gain2gamma[k] = 1.0
            ready[0] = 1.0
        for k in range(k_count):
            s = alpha_s * state_s[k] + (1.0 - alpha_s) * sm[k]
            state_s[k] = s
            m = state_min[k] * rise
            if s < m:
                m = s
            cap = median_cap[f, k]
            if m > cap:
                m = cap
            state_min[k] = m
            ind = 1.0 if s > delta * m * bias else 0.0
            p = alpha_p * state_p[k] + (1.0 - alpha_p) * ind
            state_p[k] = p
            ad = alpha_d + (1.0 - alpha_d) * p
            lam = ad * state_noise[k] + (1.0 - ad) * row[k]
            # never above the bias-corrected minimum's level when music holds the bin up
            lim = m * bias
            if lam > lim * 2.0:
                lam = lim * 2.0
            if lam < 1e-30:
                lam = 1e-30
            state_noise[k] = lam
            gamma = row[k] / lam
            if gamma > 1e6:
                gamma = 1e6
            xi = dd_alpha * state_gain2gamma[k] + (1.0 - dd_alpha) * max(gamma - 1.0, 0.0)
            if xi < xi_min:
                xi = xi_min
            v = xi * gamma / (1.0 + xi)
            if v < 1e-10:
                v = 1e-10
            g = xi / (1.0 + xi) * math.exp(0.5 * _expint_e1(v))
            if g > 1.0:
                g = 1.0
            if g < gain_floor:
                g = gain_floor
            state_gain2gamma[k] = g * g * gamma
            out[f, k] = g
    return out


class LSANoiseSuppressor(StreamingSTFTStage):
    """Ephraim-Malah LSA suppressor with an MCRA noise tracker and a gain floor.

    Parameters (units):
        strength: 0..1, the floor is ``-strength * max_reduction_db`` dB (0 = transparent).
        max_reduction_db: deepest attenuation of a noise-only bin at strength 1, dB (1..40;
            12..18 keeps the noise at its natural shape, without holes).
        dd_alpha: decision-directed smoothing of the a-priori SNR (0..1, 0.98 typical).
        xi_min_db: lowest a-priori SNR, dB.
        floor_rise_db_per_s: fastest rise of the minimum tracker, dB/s.
        presence_delta: the bin holds signal when its smoothed power exceeds this
            multiple of the noise minimum (linear power ratio).
        smoothing_ms / presence_ms / noise_ms: time constants of the power smoothing,
            the presence probability and the noise update, ms.
        median_hz: width of the across-frequency median that caps the minimum, Hz.
        silence_dbfs: frames below this RMS (dBFS) do not move the trackers.
        frame_length, hop: STFT geometry in samples (latency = frame_length - 1).
    """

    name = "noise_reduction"

    def __init__(self, strength: float = 1.0, max_reduction_db: float = 15.0, dd_alpha: float = 0.98,
                 xi_min_db: float = -25.0, floor_rise_db_per_s: float = 3.0, presence_delta: float = 4.0,
                 smoothing_ms: float = 25.0, presence_ms: float = 60.0, noise_ms: float = 150.0,
                 median_hz: float = 600.0, silence_dbfs: float = -100.0, frame_length: int = 2048, hop: int = 512,
                 channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE):
        if not 0.0 <= float(strength) <= 1.0:
            raise SettingsError(f"noise suppression strength must be in [0, 1], not {strength!r}")
        if not 1.0 <= float(max_reduction_db) <= 40.0:
            raise SettingsError(f"max_reduction_db must be in [1, 40], not {max_reduction_db!r}")
        if not 0.0 <= float(dd_alpha) < 1.0:
            raise SettingsError(f"dd_alpha must be in [0, 1), not {dd_alpha!r}")
        self.strength = float(strength)
        self.max_reduction_db = float(max_reduction_db)
        self.floor_db = -self.strength * self.max_reduction_db
        self.dd_alpha = float(dd_alpha)
        self.xi_min = 10.0 ** (float(xi_min_db) / 10.0)
        super().__init__(frame_length=frame_length, hop=hop, channels=channels, sample_rate=sample_rate)
        hop_s = self.hop / self.sample_rate

        def coeff(ms):
            return math.exp(-hop_s / (ms / 1000.0)) if ms > 0 else 0.0

        self._alpha_s = coeff(float(smoothing_ms))
        self._alpha_p = coeff(float(presence_ms))
        self._alpha_d = coeff(float(noise_ms))
        self._rise = 10.0 ** (float(floor_rise_db_per_s) * hop_s / 10.0)
        self._delta = float(presence_delta)
        self._gain_floor = 10.0 ** (self.floor_db / 20.0)
        self._bias = 10.0 ** (MINIMUM_BIAS_DB / 10.0)
        self._median_bins = 2 * max(1, int(round(0.5 * float(median_hz) / self.bin_hz))) + 1
        self._power_scale = 1.0 / float(np.sum(self.analysis_window ** 2))
        self._silence_power = 10.0 ** (float(silence_dbfs) / 10.0)
        freqs = np.arange(self.bins) * self.bin_hz
        self._band_of_bin = np.searchsorted(np.asarray(REPORT_BAND_EDGES_HZ), freqs, side="right")
        self._band_of_bin = np.minimum(self._band_of_bin, len(REPORT_BAND_EDGES_HZ) - 1)
        self._band_matrix = np.zeros((self.bins, len(REPORT_BAND_EDGES_HZ)))
        self._band_matrix[np.arange(self.bins), self._band_of_bin] = 1.0
        # the median cap: blocks of ``_median_bins`` bins (the last block padded by repeating its edge)
        self._blocks = -(-self.bins // self._median_bins)
        self.reset_spectral_state()

    def reset_spectral_state(self) -> None:
        k = self.bins
        self._s = np.zeros(k)
        self._min = np.zeros(k)
        self._p = np.zeros(k)
        self._noise = np.zeros(k)
        self._g2g = np.ones(k)
        self._ready = np.zeros(1)
        nb = len(REPORT_BAND_EDGES_HZ)
        self._energy_in = np.zeros(nb)
        self._energy_out = np.zeros(nb)

    def process_frames(self, spectra: np.ndarray, frame_ends: np.ndarray) -> np.ndarray:
        power = (spectra.real ** 2 + spectra.imag ** 2).mean(axis=1) * self._power_scale  # (F, K)
        if self.strength == 0.0:
            return spectra
        active = (power.mean(axis=1) > self._silence_power) & (frame_ends >= self.frame_length)
        cap = self._median_cap(power)
        gains = lsa_gains(power, active, self._s, self._min, self._p, self._noise, self._g2g, self._ready,
                          self._alpha_s, self._rise, self._delta, self._alpha_p, self._alpha_d, self.dd_alpha,
                          self.xi_min, self._gain_floor, cap, self._bias)
        self._energy_in += power.sum(axis=0) @ self._band_matrix
        self._energy_out += (power * (gains * gains)).sum(axis=0) @ self._band_matrix
        return spectra * gains[:, None, :]

    def _median_cap(self, power: np.ndarray) -> np.ndarray:
        """Per frame, the median power of each block of ``median_hz`` of bins, as the
        largest noise minimum (x2: the median of noise power sits ~1.6 dB under its mean),
        interpolated linearly between block centres ``(frames, bins)``."""
        f, k = power.shape
        w, b = self._median_bins, self._blocks
        padded = np.concatenate([power, np.repeat(power[:, -1:], b * w - k, axis=1)], axis=1)
        med = np.median(padded.reshape(f, b, w), axis=2) * 2.0
        centres = (np.arange(b) + 0.5) * w - 0.5
        idx = np.arange(k)
        pos = np.clip(np.interp(idx, centres, np.arange(b)), 0, b - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, b - 1)
        frac = pos - lo
        return np.maximum(med[:, lo] * (1.0 - frac) + med[:, hi] * frac, 1e-30)

    def report(self) -> dict:
        """What the stage changed so far: mean gain per octave band (dB, energy
        weighted), energy removed (dB of the total), the floor (dB)."""
        ein, eout = self._energy_in, self._energy_out
        with np.errstate(divide="ignore", invalid="ignore"):
            per_band = np.where(ein > 0, 10.0 * np.log10(np.maximum(eout, 1e-30) / np.maximum(ein, 1e-30)), 0.0)
        total = float(10.0 * np.log10(max(eout.sum(), 1e-30) / max(ein.sum(), 1e-30))) if ein.sum() > 0 else 0.0
        return {"stage": self.name, "floor_db": self.floor_db, "strength": self.strength,
                "band_upper_hz": list(REPORT_BAND_EDGES_HZ), "gain_db_per_band": [round(float(v), 2) for v in per_band],
                "energy_change_db": round(total, 2), "backed_off": False}
