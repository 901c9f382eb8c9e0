"""High-band extension (module 04).

* :class:`HighBandExtender`: regenerates the band above a cutoff (a phone's
  ~8 kHz) from the octave below it: spectral band replication (the top
  octave's fine structure translated upward, with an envelope that continues
  the measured slope and then rolls off) mixed with a harmonic exciter
  (rectified top octave, whose 2nd harmonics land above the cutoff).

The cutoff comes from :class:`engine.estimators.band_limits.BandLimitDetector`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..audio import CHANNELS, SAMPLE_RATE, db_to_gain
from ..dsp.filters import butter_sos, sosfilt
from ..dsp.stft import StreamingSTFTStage
from ..errors import SettingsError
from ..stage import Stage


# --------------------------------------------------------------------------
# high-band extension
# --------------------------------------------------------------------------

@njit(cache=True, nogil=True, error_model="numpy")
def _level_and_apply(fine, idx, p_above, at_cut, slope, bin_x, blend, band_of, band_sizes, amt, fill_only,
                     alpha, state, ready, out, kc):  # pragma: no cover - compiled
    """The replicated band levelled to the target envelope and written to ``out``, frame by frame.

    ``fine`` ``(F, C, nsrc)``: the whitened source; ``idx`` ``(nout,)``: the source bin of each
    output bin ``kc + j``; ``p_above`` ``(F, nout)``: the input's power there (channels summed);
    ``at_cut``/``slope`` ``(F,)``: the target line (dB, dB/oct, the extra roll-off included);
    ``bin_x``/``blend``/``band_of`` ``(nout,)``: octaves above the cutoff, fade, levelling band;
    ``state`` ``(2, bands)``: the time-smoothed [existing, generated] band powers (``ready[0]``
    0 until the first frame sets them).  Returns the generated power (for the report).
    """
    f_count, c_count, _ = fine.shape
    nout = idx.shape[0]
    nb = band_sizes.shape[0]
    pf = np.empty(nout)
    shape = np.empty(nout)
    pg = np.empty(nb)
    ex = np.empty(nb)
    gen = np.empty(nb)
    gain = np.empty(nb)
    db_to_amp = math.log(10.0) / 20.0
    added = 0.0
    for f in range(f_count):
        for b in range(nb):
            pg[b] = 0.0
            ex[b] = 0.0
            gen[b] = 0.0
        for j in range(nout):
            src = idx[j]
            acc = 0.0
            for c in range(c_count):
                z = fine[f, c, src]
                acc += z.real * z.real + z.imag * z.imag
            pf[j] = acc
            pg[band_of[j]] += acc
            shape[j] = math.exp((at_cut[f] + slope[f] * bin_x[j]) * db_to_amp)
        for b in range(nb):
            m = pg[b] / band_sizes[b]
            gain[b] = amt / math.sqrt(m) if m > 1e-30 else 0.0
        if fill_only:
            for j in range(nout):
                b = band_of[j]
                ex[b] += p_above[f, j]
                w = blend[j] * shape[j]
                gen[b] += gain[b] * gain[b] * pf[j] * w * w
            if ready[0] == 0.0:
                for b in range(nb):
                    state[0, b] = alpha * ex[b]
                    state[1, b] = alpha * gen[b]
                ready[0] = 1.0
            for b in range(nb):
                se = (1.0 - alpha) * ex[b] + state[0, b]
                sg = (1.0 - alpha) * gen[b] + state[1, b]
                state[0, b] = alpha * se
                state[1, b] = alpha * sg
                if sg > 1e-30:
                    r = 1.0 - se / sg
                    gain[b] *= math.sqrt(min(max(r, 0.0), 1.0))
        for j in range(nout):
            g = gain[band_of[j]] * shape[j] * blend[j]
            added += g * g * pf[j]
            src = idx[j]
            for c in range(c_count):
                out[f, c, kc + j] = fine[f, c, src] * g
    return added


@njit(cache=True, nogil=True, error_model="numpy")
def _fine_structure_kernel(S, env_lo, env_hi, env_inv, expo, phasors, frame_phase, out):  # pragma: no cover
    """:meth:`HighBandExtender._fine_structure` in one pass: for each frame and channel the power
    ``|S|^2`` (float32) and its running envelope (the moving mean over ``[env_lo, env_hi)`` by a
    float32 cumulative sum, times ``env_inv``); per bin ``share = sqrt(env_c / sum_c env)``,
    ``rel = |S|^2 / env_c``; a hole (``rel < 0.01``) gets ``share * phasors[frame_phase[f], c]``,
    any other bin ``S * share * rel ** expo / |S|`` (``expo`` 0.25, the default whitening, by two
    square roots).  The numpy expression it replaced gave the same values to within 1 ulp of
    float64, about three times slower."""
    F, C, n = S.shape
    pw = np.empty((C, n), dtype=np.float32)
    env = np.empty((C, n))
    cs = np.empty(n + 1, dtype=np.float32)
    floor32 = np.float32(1e-30)
    quarter = expo == 0.25
    for f in range(F):
        for c in range(C):
            acc = np.float32(0.0)
            cs[0] = acc
            for j in range(n):
                z = S[f, c, j]
                p = z.real * z.real + z.imag * z.imag
                pw[c, j] = p
                acc += p
                cs[j + 1] = acc
            for j in range(n):
                e = (np.float64(cs[env_hi[j]]) - np.float64(cs[env_lo[j]])) * env_inv[j]
                env[c, j] = e if e > 1e-30 else 1e-30
        t = frame_phase[f]
        for j in range(n):
            tot = env[0, j]
            for c in range(1, C):
                tot += env[c, j]
            for c in range(C):
                e = env[c, j]
                share = math.sqrt(e / tot)
                p = pw[c, j]
                rel = np.float64(p) / e
                if rel < 0.01:
                    ph = phasors[t, c, j]
                    out[f, c, j] = complex(share * ph.real, share * ph.imag)
                else:
                    w = math.sqrt(math.sqrt(rel)) if quarter else rel ** expo
                    q = p if p > floor32 else floor32
                    fac = share * w / np.float64(np.sqrt(q))
                    z = S[f, c, j]
                    out[f, c, j] = complex(np.float64(z.real) * fac, np.float64(z.imag) * fac)


class HighBandExtender(StreamingSTFTStage):
    """Regenerate the band above ``cutoff_hz`` from the octave below it, conservatively.

    Per STFT frame (``frame_length`` 2048 / hop 512 at 44.1 kHz; the envelope and the
    whitening vectorised over frames, the levelling and the copy in one numba kernel):

    * **envelope**: the mean power per bin of six 1/3-octave bands over the two
      octaves below the cutoff (time-smoothed over ``smoothing_s``) is fitted
      with a line in dB against octaves; the target level above the cutoff
      continues that line from its value at the cutoff with the measured slope
      (clamped to ``[-max_fall_db_per_oct, 0]``: never rising, never steeper
      than the steepest natural roll-off) minus ``rolloff_db_per_oct``, and fades
      to zero towards ``max_hz``.
    * **fine structure**: spectral band replication: the spectrum of
      ``[cutoff - shift, cutoff)`` is copied to ``[cutoff, cutoff + shift)``, then
      again from there (``shift`` about half the cutoff, a multiple of
      ``frame_length / hop`` bins so partials stay phase-coherent).  Before the
      copy its tonal peaks are whitened (magnitude relative to a 1/6-octave
      running envelope raised to ``whiten``, 0.5: a peak 20 dB above the
      envelope becomes 10 dB) and its codec holes (bins more than 20 dB under
      that envelope) are filled with noise at the envelope (deterministic
      phases from the frame position), so holes are not replicated and tones
      are not multiplied.  Optionally (``harmonic_ratio`` > 0) a harmonic
      exciter (rectified top octave) is mixed in.
    * **levelling**: the generated band is scaled per 1/3 octave to the target
      envelope of the frame; with ``fill_only`` only the deficit is added
      (existing + generated power reaches the target, never more, on
      time-smoothed powers), so an already present high band is left alone.

    The generated band fades in over 1/6 octave above the cutoff and is *added*
    (times ``amount * confidence``) to the untouched, delayed input: amount 0 or
    confidence 0 is bit-exactly transparent and nothing below the cutoff
    changes.  Latency ``frame_length - 1`` samples.  :meth:`report` says what
    it did.

    Parameters
    ----------
    cutoff_hz: detected high cutoff (Hz), e.g. from
        :class:`~engine.estimators.band_limits.BandLimitDetector`.
    amount: 0..2, linear gain of the generated band (1 = envelope continuation).
    confidence: 0..1, the detector's confidence in the edge; scales the amount.
    """

    name = "high_band_extender"
    add_to_dry = True
    fft_dtype = np.float32  # single-precision STFT (engine.dsp.stft): the added band is far above float32 noise

    def __init__(self, cutoff_hz: float = 8000.0, amount: float = 1.0, sample_rate: int = SAMPLE_RATE,
                 channels: int = CHANNELS, harmonic_ratio: float = 0.0, rolloff_db_per_oct: float = 6.0,
                 max_hz: float = 20000.0, frame_length: int = 2048, hop: int = 512,
                 smoothing_s: float = 0.2, fill_only: bool = True, confidence: float = 1.0,
                 max_fall_db_per_oct: float = 30.0, whiten: float = 0.5):
        nyq = sample_rate / 2.0
        if not (500.0 <= cutoff_hz < 0.9 * nyq):
            raise SettingsError(f"cutoff_hz must be in [500, {0.9 * nyq:.0f}) Hz, got {cutoff_hz}")
        if not (0.0 <= amount <= 2.0):
            raise SettingsError(f"amount must be in [0, 2], got {amount}")
        if not (0.0 <= harmonic_ratio <= 1.0):
            raise SettingsError(f"harmonic_ratio must be in [0, 1], got {harmonic_ratio}")
        if not (0.0 <= confidence <= 1.0):
            raise SettingsError(f"confidence must be in [0, 1], got {confidence}")
        if not (0.0 <= whiten <= 1.0):
            raise SettingsError(f"whiten must be in [0, 1], got {whiten}")
        self.harmonic_ratio = float(harmonic_ratio)
        analysis = 2 * channels if self.harmonic_ratio > 0.0 else channels
        super().__init__(frame_length, hop, channels, sample_rate, analysis_channels=analysis)
        self.cutoff_hz = float(cutoff_hz)
        self.amount = float(amount)
        self.confidence = float(confidence)
        self.rolloff_db_per_oct = float(rolloff_db_per_oct)
        self.max_fall_db_per_oct = float(max_fall_db_per_oct)
        self.whiten = float(whiten)
        self.max_hz = float(min(max_hz, nyq))
        self.fill_only = bool(fill_only)
        df = self.bin_hz
        self._freqs = np.arange(self.bins) * df
        self._kc = kc = int(np.ceil(self.cutoff_hz / df))
        ratio = self.frame_length // self.hop
        shift = max(ratio, int(round(self.cutoff_hz / 2.0 / df / ratio)) * ratio)
        if shift >= kc:
            shift = max(ratio, (kc - 1) // ratio * ratio)
        self._shift = shift
        self._kmax = kmax = max(min(self.bins, int(np.floor(self.max_hz / df)) + 1), kc + 1)
        # slope-fit bands: 1/3 octave over the two octaves below the cutoff (contiguous bins)
        edges = self.cutoff_hz * 2.0 ** (np.arange(-6, 1) / 3.0)
        kb = np.unique(np.clip(np.ceil(edges / df).astype(int), 1, kc))
        self._fit_starts = kb[:-1]
        self._fit_sizes = np.diff(kb)
        centres = np.sqrt(np.maximum(kb[:-1], 0.5) * kb[1:]) * df
        self._fit_x = np.log2(centres / self.cutoff_hz)
        # levelling bands: 1/3 octave from the cutoff to max_hz (contiguous bins kc..kmax)
        starts = [kc]
        f = self.cutoff_hz
        while True:
            f *= 2.0 ** (1.0 / 3.0)
            k = int(np.ceil(f / df))
            if k >= kmax:
                break
            if k > starts[-1]:
                starts.append(k)
        self._lev_starts = np.asarray(starts)
        self._lev_sizes = np.diff(np.append(self._lev_starts, kmax))
        lev_centres = np.sqrt(self._lev_starts * (self._lev_starts + self._lev_sizes)) * df
        self._lev_x = np.log2(lev_centres / self.cutoff_hz)  # octaves above the cutoff
        # fade-in above the cutoff (1/6 octave, raised cosine) and fade-out to max_hz
        fr = self._freqs
        x_in = np.clip(np.log2(np.maximum(fr, 1e-9) / self.cutoff_hz) * 6.0, 0.0, 1.0)
        fade_in = 0.5 - 0.5 * np.cos(np.pi * x_in)
        top0 = 0.85 * self.max_hz
        x_out = np.clip((fr - top0) / max(self.max_hz - top0, 1.0), 0.0, 1.0)
        fade_out = 0.5 + 0.5 * np.cos(np.pi * x_out)
        w = fade_in * fade_out
        w[kmax:] = 0.0
        w[:kc] = 0.0
        self._blend = w[kc:kmax]
        self._lev_sizes_f = self._lev_sizes.astype(np.float64)
        self._band_of = np.repeat(np.arange(len(self._lev_sizes)), self._lev_sizes)  # levelling band of each bin
        self._bin_x = np.log2(np.maximum(fr[kc:kmax], 1e-9) / self.cutoff_hz)  # octaves above the cutoff
        # running 1/6-octave envelope of the replication source (a moving mean of power)
        src_lo = max(kc - shift, 1)
        self._src = (src_lo, kc)
        half = np.maximum(1, np.round(np.arange(src_lo, kc) * (2.0 ** (1.0 / 12.0) - 1.0))).astype(int)
        idx = np.arange(src_lo, kc)
        self._env_lo = np.clip(idx - half, src_lo, kc) - src_lo
        self._env_hi = np.clip(idx + half + 1, src_lo, kc) - src_lo
        self._env_inv = 1.0 / (self._env_hi - self._env_lo)
        rng = np.random.default_rng(12345)
        self._phasors = np.exp(2j * np.pi * rng.random((97, channels, kc - src_lo)))  # noise phases per frame
        self._rep_idx = self._replicate_index()
        self._alpha = float(np.exp(-self.hop / (self.sample_rate * smoothing_s)))
        # the time smoothing over frames: one first-order section y = (1 - a) x + a y[-1]
        self._smooth_sos = np.array([1.0 - self._alpha, 0.0, 0.0, 1.0, -self._alpha, 0.0])
        if self.harmonic_ratio > 0.0:
            # exciter filters: band-pass [cutoff/2, cutoff], then DC-blocking high-pass
            self._sos_bp = butter_sos(4, [self.cutoff_hz / 2.0, self.cutoff_hz], "bandpass", self.sample_rate)
            self._sos_hp = butter_sos(2, self.cutoff_hz / 2.0, "highpass", self.sample_rate)
        self.reset_spectral_state()

    @property
    def effective_amount(self) -> float:
        """``amount * confidence``: the gain actually applied to the generated band."""
        return self.amount * self.confidence

    def reset_spectral_state(self) -> None:
        c = self.channels
        if self.harmonic_ratio > 0.0:
            self._zi_bp = np.zeros((self._sos_bp.shape[0], c, 2))
            self._zi_hp = np.zeros((self._sos_hp.shape[0], c, 2))
        self._zi_fit = None  # time-smoothing states (lfilter over frames)
        self._zi_exist = None
        self._fill_state = np.zeros((2, len(self._lev_sizes)))  # the kernel's smoothed band powers
        self._fill_ready = np.zeros(1)
        self._existing_sum = 0.0  # powers above the cutoff, for the report
        self._added_sum = 0.0
        self._frames_seen = 0
        self._slope_sum = 0.0

    def report(self) -> dict:
        """What the extender did: ``cutoff_hz``, ``confidence``, ``amount`` (requested),
        ``effective_amount``, ``added_db`` (energy above the cutoff, output vs input, dB),
        ``mean_slope_db_per_oct`` (of the envelope), ``backed_off`` (the amount was
        reduced for lack of confidence)."""
        ex, ad = self._existing_sum, self._added_sum
        added_db = 10.0 * np.log10((ex + ad + 1e-30) / (ex + 1e-30)) if ad > 0 else 0.0
        return {"cutoff_hz": self.cutoff_hz, "confidence": self.confidence, "amount": self.amount,
                "effective_amount": self.effective_amount, "added_db": float(added_db),
                "mean_slope_db_per_oct": (self._slope_sum / self._frames_seen) if self._frames_seen else None,
                "backed_off": bool(self.amount > 0.0 and self.confidence < 1.0)}

    # the STFT sees [input channels, exciter channels] when the exciter is on
    def analysis_input(self, x: np.ndarray) -> np.ndarray:
        if self.harmonic_ratio <= 0.0:
            return x
        xd = x.astype(np.float64)
        bp, self._zi_bp = sosfilt(self._sos_bp, xd, axis=1, zi=self._zi_bp)
        exc, self._zi_hp = sosfilt(self._sos_hp, np.abs(bp), axis=1, zi=self._zi_hp)
        return np.concatenate([xd, exc], axis=0)

    def _process(self, block: np.ndarray) -> np.ndarray:
        if self.effective_amount == 0.0:
            # a pure delay of `latency` samples: nothing is generated
            return self._delayed_dry(np.asarray(block, dtype=np.float32))
        return super()._process(block)

    def _smooth(self, x: np.ndarray, state_name: str) -> np.ndarray:
        """One-pole smoothing of ``x`` ``(frames, ...)`` along frames, state carried
        (the first frame ever initialises the state to itself)."""
        zi = getattr(self, state_name)
        if zi is None:
            zi = self._alpha * x[0]
        state = np.stack([zi, np.zeros_like(zi)])[None]  # a first-order section's second state stays 0
        y, zf = sosfilt(self._smooth_sos, x, axis=0, zi=state)
        setattr(self, state_name, zf[0, 0])
        return y

    def _envelope(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per frame: the fitted line's level at the cutoff ``(F,)`` (dB, power per bin
        summed over channels) and its slope ``(F,)`` (dB/oct), from ``p`` ``(F, bins)``."""
        bp = np.add.reduceat(p[:, :self._kc], self._fit_starts, axis=1)[:, :len(self._fit_sizes)] / self._fit_sizes
        bp = self._smooth(bp, "_zi_fit")
        lv = 10.0 * np.log10(bp + 1e-30)
        ok = bp > 1e-18
        w = ok.astype(np.float64)
        n = w.sum(axis=1)
        xs = self._fit_x[None, :]
        mx = (w * xs).sum(axis=1) / np.maximum(n, 1)
        my = (w * lv).sum(axis=1) / np.maximum(n, 1)
        sxx = (w * (xs - mx[:, None]) ** 2).sum(axis=1)
        sxy = (w * (xs - mx[:, None]) * (lv - my[:, None])).sum(axis=1)
        slope = np.where((n >= 2) & (sxx > 0), sxy / np.maximum(sxx, 1e-12), -12.0)
        slope = np.clip(slope, -self.max_fall_db_per_oct, 0.0)
        at_cut = my - slope * mx  # the fitted line's level at the cutoff (dB)
        at_cut = np.where(n >= 1, at_cut, -300.0)
        return at_cut, slope

    def _fine_structure(self, S: np.ndarray, frame_ends: np.ndarray) -> np.ndarray:
        """The replication source ``S`` ``(F, C, nsrc)`` flattened: each bin's magnitude
        relative to its channel's 1/6-octave running envelope raised to ``whiten``
        (tonal peaks whitened), times that channel's share of the envelope summed
        over channels (so the source's own slope is removed and the channel balance
        kept); holes (bins 20 dB under the envelope) filled with noise at that share, its
        phases drawn from the frame position (chunk-size invariant).  Complex128 ``(F, C, nsrc)``
        from :func:`_fine_structure_kernel`."""
        t = ((np.asarray(frame_ends) // self.hop) % self._phasors.shape[0]).astype(np.int64)
        out = np.empty(S.shape, dtype=np.complex128)
        _fine_structure_kernel(np.ascontiguousarray(S, dtype=np.complex64), self._env_lo, self._env_hi,
                               self._env_inv, 0.5 * self.whiten, self._phasors, t, out)
        return out

    def _replicate_index(self) -> np.ndarray:
        """For each bin in ``[kc, kmax)`` the source bin in ``[kc - shift, kc)`` it is
        copied from (copies of copies: one shift at a time), relative to the source start."""
        kc, sh = self._kc, self._shift
        pos = kc - sh + (np.arange(kc, self._kmax) - kc) % sh
        return np.maximum(pos, self._src[0]) - self._src[0]

    def process_frames(self, spectra: np.ndarray, frame_ends: np.ndarray) -> np.ndarray:
        c = self.channels
        X = spectra[:, :c]
        out = np.zeros(X.shape, dtype=X.dtype)  # complex64 on the float32 STFT: no double-precision inverse
        amt = self.effective_amount
        if amt == 0.0:
            return out
        kc, kmax = self._kc, self._kmax
        Xs = X[:, :, :kmax]
        p = (Xs.real ** 2 + Xs.imag ** 2).sum(axis=1)  # (F, kmax) power summed over channels
        at_cut, slope = self._envelope(p)  # (F,) dB at the cutoff, dB/oct
        lo = self._src[0]
        fine = self._fine_structure(X[:, :, lo:kc], frame_ends)  # (F, C, nsrc), unit envelope
        if self.harmonic_ratio <= 0.0:
            # the common path in one kernel (no (frames, bins) temporaries)
            added = _level_and_apply(fine, self._rep_idx, p[:, kc:kmax], at_cut, slope - self.rolloff_db_per_oct,
                                     self._bin_x, self._blend, self._band_of, self._lev_sizes_f,
                                     amt, self.fill_only, self._alpha, self._fill_state, self._fill_ready, out, kc)
        else:
            added = self._level_with_exciter(spectra, fine, p, at_cut, slope, out)
        self._existing_sum += float(p[:, kc:kmax].sum())
        self._added_sum += added
        self._frames_seen += X.shape[0]
        self._slope_sum += float(slope.sum())
        return out

    def _level_with_exciter(self, spectra: np.ndarray, fine: np.ndarray, p: np.ndarray, at_cut: np.ndarray,
                            slope: np.ndarray, out: np.ndarray) -> float:
        """:func:`_level_and_apply` with the harmonic exciter's spectrum (``spectra[:, channels:]``)
        mixed in, in numpy; writes ``out`` and returns the generated power (for the report)."""
        c, kc, kmax, amt = self.channels, self._kc, self._kmax, self.effective_amount
        idx = self._rep_idx
        G = fine[:, :, idx]  # (F, C, kmax - kc)
        pf = (fine.real ** 2 + fine.imag ** 2).sum(axis=1)[:, idx]  # (F, kmax - kc)
        starts = self._lev_starts - kc
        pg = np.add.reduceat(pf, starts, axis=1) / self._lev_sizes  # (F, nb) mean per bin
        # the target per bin continues the fitted line (minus the extra roll-off)
        tdb = at_cut[:, None] + (slope - self.rolloff_db_per_oct)[:, None] * self._bin_x[None, :]
        shape = np.power(10.0, tdb / 20.0)  # (F, kmax - kc) amplitude
        norm = np.where(pg > 1e-30, 1.0 / np.sqrt(np.maximum(pg, 1e-30)), 0.0) * amt  # (F, nb)
        E = spectra[:, c:, kc:kmax]
        pe = np.add.reduceat((E.real ** 2 + E.imag ** 2).sum(axis=1), starts, axis=1) / self._lev_sizes
        ge = np.where(pe > 1e-30, 1.0 / np.sqrt(np.maximum(pe, 1e-30)), 0.0) * amt
        # the blend of the two normalised sources carries the level; what is left is the fill gain
        G = (np.sqrt(1.0 - self.harmonic_ratio) * G * np.repeat(norm, self._lev_sizes, axis=1)[:, None, :]
             + np.sqrt(self.harmonic_ratio) * E * np.repeat(ge, self._lev_sizes, axis=1)[:, None, :])
        pf = (G.real ** 2 + G.imag ** 2).sum(axis=1)
        gain = np.ones_like(norm)
        if self.fill_only:
            ex = np.add.reduceat(p[:, kc:kmax], starts, axis=1)
            gen = np.add.reduceat(pf * self._blend ** 2 * shape ** 2, starts, axis=1)
            sm = self._smooth(np.stack([ex, gen], axis=1), "_zi_exist")
            se, sg = sm[:, 0], sm[:, 1]
            fill = np.sqrt(np.clip(1.0 - se / np.maximum(sg, 1e-30), 0.0, 1.0))
            gain = np.where(sg <= 1e-30, 1.0, fill)
        g = np.repeat(gain, self._lev_sizes, axis=1) * shape * self._blend  # (F, kmax - kc)
        np.multiply(G, g[:, None, :], out=out[:, :, kc:kmax])
        return float((g ** 2 * pf).sum())


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
