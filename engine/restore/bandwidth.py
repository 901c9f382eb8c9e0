"""High-band extension (module 04).

* :class:`HighBandExtender`: regenerates the band above a cutoff (a phone's
  ~8 kHz) from the octave below it: spectral band replication (the top
  octave's fine structure translated upward, with an envelope that continues
  the measured slope and then rolls off) mixed with a harmonic exciter
  (rectified top octave, whose 2nd harmonics land above the cutoff).

The cutoff comes from :class:`engine.estimators.band_limits.BandLimitDetector`.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

from ..audio import CHANNELS, SAMPLE_RATE, db_to_gain
from ..dsp.stft import StreamingSTFTStage
from ..errors import SettingsError
from ..stage import Stage


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
    cutoff_hz: detected high cutoff (Hz), e.g. from
        :class:`~engine.estimators.band_limits.BandLimitDetector`.
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
                gain = db_to_gain(env[k:k2] - env[src])
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
