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
3. LSA gain ``G = xi / (1 + xi) * exp(E1(v) / 2)``, ``v = xi * gamma / (1 + xi)``
   (``exp(E1(v) / 2)`` from a table of ``sqrt(v) exp(E1(v) / 2)``, smooth down to
   ``v = 0``, over ``sqrt(v)``, linearly interpolated: within 1e-4 of the exact
   function, as the per-bin evaluation it replaces was, and a third faster),
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

import functools
import math

import numpy as np
from numba import njit

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.median_network import apply_network, median_network
from ..dsp.stft import StreamingSTFTStage
from ..errors import SettingsError

#: octave bands of :meth:`LSANoiseSuppressor.report` (upper edges, Hz)
REPORT_BAND_EDGES_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 22050.0)
#: bias from the smoothed minimum to the mean noise power (dB)
MINIMUM_BIAS_DB = 3.0


@njit(cache=True, nogil=True, error_model="numpy")
def _expint_e1(x):
    """Exponential integral E1(x), x > 0 (series below 1, Abramowitz-Stegun 5.1.56 above)."""
    if x < 1.0:
        # -gamma - ln x + x - x^2/4 + x^3/18 - x^4/96 + x^5/600
        return (-0.5772156649015329 - math.log(x) + x - x * x / 4.0 + x ** 3 / 18.0 - x ** 4 / 96.0
                + x ** 5 / 600.0)
    num = x * x + 2.334733 * x + 0.250621
    den = x * x + 3.330657 * x + 1.681534
    return math.exp(-x) / x * num / den


#: the LSA gain table: ``sqrt(v) * exp(E1(v) / 2)`` at ``sqrt(v) = k * GAIN_TABLE_STEP``, v < 40
GAIN_TABLE_SIZE = 8192
GAIN_TABLE_STEP = math.sqrt(40.0) / GAIN_TABLE_SIZE


@njit(cache=True, nogil=True, error_model="numpy")
def _gain_table_values(n, step):
    q = np.empty(n + 2)
    q[0] = math.exp(-0.5 * 0.5772156649015329)  # the limit at v -> 0 (E1(v) ~ -gamma - ln v)
    for k in range(1, n + 2):
        u = k * step
        v = u * u
        q[k] = u * math.exp(0.5 * _expint_e1(v)) if v < 40.0 else u
    return q


@functools.cache
def gain_table() -> np.ndarray:
    """The table of ``sqrt(v) exp(E1(v) / 2)`` the kernel interpolates (built once)."""
    return _gain_table_values(GAIN_TABLE_SIZE, GAIN_TABLE_STEP)


@njit(cache=True, nogil=True, error_model="numpy")
def _block_medians(power, width, blocks, med, wires, ca, cb, target):
    """``med[b]``: twice the median (the median of noise power sits ~1.6 dB under its mean) of bins
    ``[b * width, (b + 1) * width)`` of ``power`` (odd ``width``; the last block padded by repeating
    the last bin), by the sorting network :func:`~engine.dsp.median_network.median_network`
    (``ca``, ``cb``, ``target``) on ``wires`` ``(width, blocks)``, every block at once (5x faster
    than an insertion sort per block, the same medians to the bit)."""
    k_count = power.shape[0]
    for b in range(blocks):
        base = b * width
        for i in range(width):
            j = base + i
            wires[i, b] = power[j] if j < k_count else power[k_count - 1]
    apply_network(wires, ca, cb)
    for b in range(blocks):
        med[b] = wires[target, b] * 2.0


@njit(cache=True, nogil=True, error_model="numpy")
def lsa_apply(spectra, frame_ok, state_s, state_min, state_p, state_noise, state_gain2gamma, ready,
              alpha_s, rise, delta, alpha_p, alpha_d, dd_alpha, xi_min, gain_floor, bias,
              power_scale, silence_power, width, blocks, lo, hi, frac, energy_in, energy_out, table, inv_step,
              net_a, net_b, net_target):
    """Apply the LSA gains to ``spectra`` ``(frames, channels, bins)`` in place (see the module doc).

    Per frame: the power ``|Y|^2`` averaged over the channels (times ``power_scale``); the
    frame is active when its mean power exceeds ``silence_power`` and ``frame_ok``; the
    median cap: per block of ``width`` bins the median power (x2), interpolated between
    block centres with ``lo``/``hi``/``frac`` (the highest the minimum may be, before the
    bias; ``net_a``/``net_b``/``net_target``: the median network of ``width``); ``table`` / ``inv_step``: :func:`gain_table` and ``1 / GAIN_TABLE_STEP``.  State
    arrays ``(bins,)`` are updated in place; ``ready[0]`` is 0 until the first active frame
    (which initialises every tracker to its power).  Inactive frames (digital silence, stream
    start) hold the state and get gain 1.  ``energy_in`` / ``energy_out``
    ``(bins,)`` accumulate the power before and after the gains.
    """
    f_count, c_count, k_count = spectra.shape
    power = np.empty(k_count, dtype=np.float64)
    sm = np.empty(k_count, dtype=np.float64)
    med = np.empty(blocks, dtype=np.float64)
    wires = np.empty((width, blocks), dtype=np.float64)  # the median network's scratch
    cap_k = np.empty(k_count, dtype=np.float64)  # per-bin values handed from one pass to the next
    gamma_k = np.empty(k_count, dtype=np.float64)
    v_k = np.empty(k_count, dtype=np.float64)
    g_k = np.empty(k_count, dtype=np.float64)
    sqrt_v = np.empty(k_count, dtype=np.float64)
    inv_c = 1.0 / c_count
    for f in range(f_count):
        total = 0.0
        for k in range(k_count):
            acc = 0.0
            for c in range(c_count):
                z = spectra[f, c, k]
                acc += float(z.real) * float(z.real) + float(z.imag) * float(z.imag)
            pk = acc * inv_c * power_scale
            power[k] = pk
            total += pk
            energy_in[k] += pk
        if not (frame_ok[f] and total / k_count > silence_power):
            for k in range(k_count):
                energy_out[k] += power[k]
            continue
        _block_medians(power, width, blocks, med, wires, net_a, net_b, net_target)
        # frequency smoothing (1/4, 1/2, 1/4)
        for k in range(k_count):
            a = power[k - 1] if k > 0 else power[k]
            b = power[k + 1] if k + 1 < k_count else power[k]
            sm[k] = 0.25 * a + 0.5 * power[k] + 0.25 * b
        if ready[0] == 0.0:
            for k in range(k_count):
                state_s[k] = sm[k]
                state_min[k] = sm[k]
                state_noise[k] = sm[k]
                state_p[k] = 0.0
                state_gain2gamma[k] = 1.0
            ready[0] = 1.0
        # three passes over the bins, so the compiler vectorises the first two (the same operations
        # in the same order as one loop: the same result to the bit, 2x faster): the trackers and
        # the SNRs; the square roots; the gain table (a gather) and the gains
        for k in range(k_count):
            cap_k[k] = med[lo[k]] * (1.0 - frac[k]) + med[hi[k]] * frac[k]
        for k in range(k_count):
            pk = power[k]
            s = alpha_s * state_s[k] + (1.0 - alpha_s) * sm[k]
            state_s[k] = s
            m = state_min[k] * rise
            if s < m:
                m = s
            cap = cap_k[k]
            if cap < 1e-30:
                cap = 1e-30
            if m > cap:
                m = cap
            state_min[k] = m
            ind = 1.0 if s > delta * m * bias else 0.0
            p = alpha_p * state_p[k] + (1.0 - alpha_p) * ind
            state_p[k] = p
            ad = alpha_d + (1.0 - alpha_d) * p
            lam = ad * state_noise[k] + (1.0 - ad) * pk
            # never above the bias-corrected minimum's level when music holds the bin up
            lim = m * bias
            if lam > lim * 2.0:
                lam = lim * 2.0
            if lam < 1e-30:
                lam = 1e-30
            state_noise[k] = lam
            gamma = pk / lam
            if gamma > 1e6:
                gamma = 1e6
            xi = dd_alpha * state_gain2gamma[k] + (1.0 - dd_alpha) * max(gamma - 1.0, 0.0)
            if xi < xi_min:
                xi = xi_min
            v = xi * gamma / (1.0 + xi)
            if v < 1e-10:
                v = 1e-10
            gamma_k[k] = gamma
            v_k[k] = v
            g_k[k] = xi / (1.0 + xi)
        for k in range(k_count):
            sqrt_v[k] = math.sqrt(v_k[k])
        for k in range(k_count):
            g = g_k[k]
            if v_k[k] < 40.0:  # above, exp(E1(v) / 2) rounds to exactly 1.0
                u = sqrt_v[k]
                t = u * inv_step
                i = int(t)
                g *= (table[i] + (t - i) * (table[i + 1] - table[i])) / u
            if g > 1.0:
                g = 1.0
            if g < gain_floor:
                g = gain_floor
            state_gain2gamma[k] = g * g * gamma_k[k]
            energy_out[k] += power[k] * g * g
            for c in range(c_count):
                spectra[f, c, k] *= g


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
    fft_dtype = np.float32

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
        self._table = gain_table()
        self._bias = 10.0 ** (MINIMUM_BIAS_DB / 10.0)
        self._median_bins = 2 * max(1, int(round(0.5 * float(median_hz) / self.bin_hz))) + 1
        self._power_scale = 1.0 / float(np.sum(self.analysis_window ** 2))
        self._silence_power = 10.0 ** (float(silence_dbfs) / 10.0)
        freqs = np.arange(self.bins) * self.bin_hz
        self._band_of_bin = np.searchsorted(np.asarray(REPORT_BAND_EDGES_HZ), freqs, side="right")
        self._band_of_bin = np.minimum(self._band_of_bin, len(REPORT_BAND_EDGES_HZ) - 1)
        self._band_matrix = np.zeros((self.bins, len(REPORT_BAND_EDGES_HZ)))
        self._band_matrix[np.arange(self.bins), self._band_of_bin] = 1.0
        # the median cap: blocks of ``_median_bins`` bins (the last block padded by repeating its edge),
        # each bin interpolating linearly between the medians of the blocks whose centres surround it
        w = self._median_bins
        self._blocks = b = -(-self.bins // w)
        centres = (np.arange(b) + 0.5) * w - 0.5
        pos = np.clip(np.interp(np.arange(self.bins), centres, np.arange(b)), 0, b - 1)
        self._cap_lo = np.floor(pos).astype(np.int64)
        self._cap_hi = np.minimum(self._cap_lo + 1, b - 1)
        self._cap_frac = pos - self._cap_lo
        self._network = median_network(w)
        self.reset_spectral_state()

    def reset_spectral_state(self) -> None:
        k = self.bins
        self._s = np.zeros(k)
        self._min = np.zeros(k)
        self._p = np.zeros(k)
        self._noise = np.zeros(k)
        self._g2g = np.ones(k)
        self._ready = np.zeros(1)
        self._energy_in = np.zeros(k)  # per bin (the report sums them per band)
        self._energy_out = np.zeros(k)

    def process_frames(self, spectra: np.ndarray, frame_ends: np.ndarray) -> np.ndarray:
        if self.strength == 0.0:
            return spectra
        frame_ok = frame_ends >= self.frame_length
        lsa_apply(spectra, frame_ok, self._s, self._min, self._p, self._noise, self._g2g, self._ready,
                  self._alpha_s, self._rise, self._delta, self._alpha_p, self._alpha_d, self.dd_alpha,
                  self.xi_min, self._gain_floor, self._bias, self._power_scale, self._silence_power,
                  self._median_bins, self._blocks, self._cap_lo, self._cap_hi, self._cap_frac,
                  self._energy_in, self._energy_out, self._table, 1.0 / GAIN_TABLE_STEP,
                  *self._network)
        return spectra

    def report(self) -> dict:
        """What the stage changed so far: mean gain per octave band (dB, energy
        weighted), energy removed (dB of the total), the floor (dB)."""
        ein, eout = self._energy_in @ self._band_matrix, self._energy_out @ self._band_matrix
        with np.errstate(divide="ignore", invalid="ignore"):
            per_band = np.where(ein > 0, 10.0 * np.log10(np.maximum(eout, 1e-30) / np.maximum(ein, 1e-30)), 0.0)
        total = float(10.0 * np.log10(max(eout.sum(), 1e-30) / max(ein.sum(), 1e-30))) if ein.sum() > 0 else 0.0
        return {"stage": self.name, "floor_db": self.floor_db, "strength": self.strength,
                "band_upper_hz": list(REPORT_BAND_EDGES_HZ), "gain_db_per_band": [round(float(v), 2) for v in per_band],
                "energy_change_db": round(total, 2), "backed_off": False}
