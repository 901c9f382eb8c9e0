"""Closed-loop tonal balance: a correction measured on each recording, capped and zero-phase.

The open-loop fixed per-stem EQ curves boost bands where noise dominates and
never check the result.  This module replaces them:

1. :meth:`TonalProfile.measure` measures the recording's head (the first
   seconds the runner reads ahead anyway) up front: the long-term power of
   each 1/3-octave band (:data:`BAND_CENTRES_HZ`, 50 Hz - 16 kHz) and its
   noise floor (a low percentile of the band's frame powers), so the
   *signal* level of each band is the long-term power with the noise
   subtracted, and its SNR says whether the band holds any signal at all.
2. :class:`TonalModel` predicts the clean level of each band from the
   measured one, relative to the 250 Hz - 2 kHz body (always inside a
   phone's band): ``clean_k = a_k + b_k * measured_k``, a per-band linear
   regression fitted on clean material and its degraded versions (never on one
   clip: ``benchmarks/restoration_eval.py --loo tonal`` fits it leave one
   source out), with ``b_k`` shrunk towards 1 (trust the recording) and a
   per-band ``weight_k`` in [0, 1]: the share of the squared error the
   correction removed on the training material (0 where it did not help, so
   a band where the model cannot tell does nothing).  :data:`DEFAULT_MODEL`
   is the fit on all 20 benchmark cases.
3. :func:`correction_db` turns both into per-band gains: ``weight_k *
   (predicted_k - measured_k)``, capped to ``+-max_db``, never a boost where
   the band's SNR is under ``min_snr_db`` or the band lies above the detected
   upper band edge (what is missing there is the high-band extension's job),
   normalised to 0 dB over the body.
4. :class:`TonalCorrector` applies the gains as one fixed, smooth, real
   (zero-phase) gain per STFT bin on :class:`~engine.dsp.stft.StreamingSTFTStage`
   (latency ``frame_length - 1``); the pipeline puts the same corrector on
   every stem, so it is one linear-phase filter on the mix.  It measures its
   input and output long-term band levels as they stream and
   :meth:`TonalCorrector.report` lists the gains, the predicted and the
   realised change per band, and whether it backed off.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from numba import njit

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.stft import StreamingSTFTStage
from ..errors import SettingsError

#: 1/3-octave band centres (Hz), base 2, as the benchmark's tonal-balance score
BAND_CENTRES_HZ: tuple[float, ...] = tuple(float(1000.0 * 2.0 ** (k / 3.0)) for k in range(-13, 13))
#: the body the levels are relative to (Hz): inside every phone's band
BODY_HZ = (250.0, 2000.0)
#: analysis of :meth:`TonalProfile.measure`
MEASURE_FFT = 4096
MEASURE_HOP = 1024
#: a correction is shrunk towards 0 by this share of the model's own error in the band (``sigma``).
#: 0: on the whole restoration benchmark (20 cases, leave-one-source-out, balanced) shrinking by
#: 0.5 / 1.0 sigma raised the mean tonal error (4.73 -> 4.87 / 5.22 dB) and fixed no case that was
#: worse than its input, so the fitted ``weight`` alone scales the correction
DOUBT = 0.0
#: percentile of the frame powers taken as a band's noise floor, and its bias to the mean noise power (dB)
NOISE_PERCENTILE = 10.0
NOISE_BIAS_DB = 2.0


def _band_matrix(freqs: np.ndarray, centres=BAND_CENTRES_HZ) -> np.ndarray:
    """``(bins, bands)`` 0/1: bin ``i`` in band ``[fc 2^-1/6, fc 2^1/6)``."""
    c = np.asarray(centres)
    lo, hi = c * 2.0 ** (-1.0 / 6.0), c * 2.0 ** (1.0 / 6.0)
    return ((freqs[:, None] >= lo[None, :]) & (freqs[:, None] < hi[None, :])).astype(np.float64)


def _body_mask(centres=BAND_CENTRES_HZ) -> np.ndarray:
    c = np.asarray(centres)
    return (c >= BODY_HZ[0]) & (c <= BODY_HZ[1])


@dataclass(frozen=True)
class TonalProfile:
    """Long-term band levels of a recording's head.

    level_db: long-term power per band (signal + noise), dB; noise_db: the
    band's noise floor, dB; both per :data:`BAND_CENTRES_HZ`.  seconds:
    how much was measured.
    """

    level_db: tuple[float, ...]
    noise_db: tuple[float, ...]
    seconds: float = 0.0

    @classmethod
    def measure(cls, blocks: Iterable[np.ndarray], sample_rate: int = SAMPLE_RATE) -> "TonalProfile":
        """Measure float32 ``(channels, n)`` blocks (the channel mean)."""
        parts = [np.asarray(b, dtype=np.float64).mean(axis=0) for b in blocks if b.shape[-1]]
        x = np.concatenate(parts) if parts else np.zeros(0)
        return cls.from_signal(x, sample_rate)

    @classmethod
    def from_signal(cls, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> "TonalProfile":
        """Measure a mono (or ``(channels, n)``, averaged) signal."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=0)
        nb = len(BAND_CENTRES_HZ)
        if x.size < MEASURE_FFT:
            return cls(tuple([-200.0] * nb), tuple([-200.0] * nb), x.size / sample_rate)
        n_frames = 1 + (x.size - MEASURE_FFT) // MEASURE_HOP
        idx = np.arange(MEASURE_FFT)[None, :] + MEASURE_HOP * np.arange(n_frames)[:, None]
        win = np.hanning(MEASURE_FFT)
        spec = np.fft.rfft(x[idx] * win, axis=1)
        power = (spec.real ** 2 + spec.imag ** 2) / np.sum(win ** 2)
        freqs = np.fft.rfftfreq(MEASURE_FFT, 1.0 / sample_rate)
        bands = power @ _band_matrix(freqs)  # (frames, bands)
        active = bands.sum(axis=1) > 1e-12  # digital silence says nothing about the noise
        if not np.any(active):
            return cls(tuple([-200.0] * nb), tuple([-200.0] * nb), x.size / sample_rate)
        bands = bands[active]
        level = bands.mean(axis=0)
        noise = np.percentile(bands, NOISE_PERCENTILE, axis=0) * 10.0 ** (NOISE_BIAS_DB / 10.0)
        noise = np.minimum(noise, level)
        return cls(tuple(float(v) for v in 10.0 * np.log10(level + 1e-20)),
                   tuple(float(v) for v in 10.0 * np.log10(noise + 1e-20)), x.size / sample_rate)

    def signal_db(self) -> np.ndarray:
        """Noise-subtracted level per band (dB; at most 13 dB under the total when the noise dominates)."""
        lv, nz = 10.0 ** (np.asarray(self.level_db) / 10.0), 10.0 ** (np.asarray(self.noise_db) / 10.0)
        return 10.0 * np.log10(np.maximum(lv - nz, 0.05 * lv) + 1e-20)

    def snr_db(self) -> np.ndarray:
        """Long-term level over the noise floor per band (dB)."""
        return np.asarray(self.level_db) - np.asarray(self.noise_db)

    def relative_db(self) -> np.ndarray:
        """:meth:`signal_db` relative to its mean over the body (:data:`BODY_HZ`)."""
        s = self.signal_db()
        return s - float(np.mean(s[_body_mask()]))


@dataclass(frozen=True)
class TonalModel:
    """Per-band regression ``clean_k = a_k + b_k * measured_k`` (levels relative to the body, dB)
    and per-band ``weight_k`` in [0, 1] (see the module doc)."""

    a: tuple[float, ...]
    b: tuple[float, ...]
    weight: tuple[float, ...]
    trained_on: int = 0
    #: per band, the RMS error (dB) of the corrected level on the training material
    #: (degrees-of-freedom adjusted): a correction smaller than this is not trusted
    sigma: tuple[float, ...] | None = None

    def __post_init__(self):
        n = len(BAND_CENTRES_HZ)
        if not (len(self.a) == len(self.b) == len(self.weight) == n):
            raise SettingsError(f"a tonal model needs {n} bands of a, b and weight")
        if self.sigma is not None and (len(self.sigma) != n or min(self.sigma) < 0.0):
            raise SettingsError(f"a tonal model's sigma needs {n} bands >= 0 dB")

    def uncertainty_db(self) -> np.ndarray:
        """:attr:`sigma` (zeros for a model saved without it)."""
        return np.zeros(len(BAND_CENTRES_HZ)) if self.sigma is None else np.asarray(self.sigma)

    def predict(self, measured_rel_db: np.ndarray) -> np.ndarray:
        return np.asarray(self.a) + np.asarray(self.b) * np.asarray(measured_rel_db)

    def to_dict(self) -> dict:
        d = {"a": list(self.a), "b": list(self.b), "weight": list(self.weight), "trained_on": self.trained_on,
             "centres_hz": list(BAND_CENTRES_HZ)}
        if self.sigma is not None:
            d["sigma"] = list(self.sigma)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TonalModel":
        sigma = d.get("sigma")
        return cls(tuple(map(float, d["a"])), tuple(map(float, d["b"])), tuple(map(float, d["weight"])),
                   int(d.get("trained_on", 0)), None if sigma is None else tuple(map(float, sigma)))

    @classmethod
    def load(cls, path: str | Path) -> "TonalModel":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SettingsError(f"cannot read the tonal model {path}: {e}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def fit(cls, measured: list[TonalProfile], clean: list[TonalProfile], band_edges_hz: list[float],
            shrink: float = 2.0, min_snr_db: float = 6.0, low_edges_hz: list[float] | None = None) -> "TonalModel":
        """Fit on pairs (degraded head profile, clean profile) with each degraded recording's
        detected upper (and, optionally, lower) band edge; bands outside the band or under
        ``min_snr_db`` are left out of that band's fit.  ``shrink``: ridge weight pulling ``b``
        towards 1, in cases."""
        nb = len(BAND_CENTRES_HZ)
        centres = np.asarray(BAND_CENTRES_HZ)
        a, b, w, sig = np.zeros(nb), np.ones(nb), np.zeros(nb), np.zeros(nb)
        X = np.array([m.relative_db() for m in measured])
        Y = np.array([c.relative_db() for c in clean])
        lows = low_edges_hz if low_edges_hz is not None else [0.0] * len(measured)
        ok = np.array([(m.snr_db() >= min_snr_db) & (centres * 2 ** (1 / 6) <= edge) & (centres * 2 ** (-1 / 6) >= lo)
                       for m, edge, lo in zip(measured, band_edges_hz, lows)])
        for k in range(nb):
            sel = ok[:, k]
            n = int(sel.sum())
            if n < 4:
                continue
            x, y = X[sel, k], Y[sel, k]
            xm, ym = x.mean(), y.mean()
            sxx = float(np.sum((x - xm) ** 2))
            sxy = float(np.sum((x - xm) * (y - ym)))
            bk = (sxy + shrink * 1.0 * max(sxx / n, 1.0)) / (sxx + shrink * max(sxx / n, 1.0))
            bk = float(np.clip(bk, 0.0, 1.2))
            ak = float(ym - bk * xm)
            corr = ak + (bk - 1.0) * x  # the correction on the training cases
            before = float(np.mean((y - x) ** 2))
            after = float(np.mean((y - x - corr) ** 2))
            a[k], b[k] = ak, bk
            w[k] = float(np.clip(1.0 - after / before, 0.0, 1.0)) if before > 0 else 0.0
            sig[k] = float(np.sqrt(after * n / (n - 2)))  # two parameters fitted
        return cls(tuple(a), tuple(b), tuple(w), trained_on=len(measured), sigma=tuple(sig))


def correction_db(profile: TonalProfile, model: TonalModel, high_edge_hz: float, amount: float = 1.0,
                  max_db: float = 9.0, min_snr_db: float = 6.0, low_edge_hz: float = 0.0,
                  doubt: float = DOUBT) -> np.ndarray:
    """Per-band gains (dB, :data:`BAND_CENTRES_HZ`) that move ``profile`` towards the model's
    prediction: weighted, shrunk towards 0 by ``doubt`` x the model's own error in the band
    (with ``doubt`` 1 a correction within the model's uncertainty is not made), scaled by ``amount``,
    capped to ``+-max_db``, no boost where the band's SNR is under ``min_snr_db`` or the band
    reaches outside the detected band ``[low_edge_hz, high_edge_hz]``, 0 dB on average over the
    body."""
    centres = np.asarray(BAND_CENTRES_HZ)
    rel = profile.relative_db()
    g = np.asarray(model.weight) * (model.predict(rel) - rel)
    g = g - float(np.mean(g[_body_mask()]))
    g = np.sign(g) * np.maximum(np.abs(g) - float(doubt) * model.uncertainty_db(), 0.0) * float(amount)
    lo, hi = centres * 2 ** (-1 / 6), centres * 2 ** (1 / 6)
    no_boost = (profile.snr_db() < min_snr_db) | (hi > high_edge_hz) | (lo < low_edge_hz)
    g = np.where(no_boost, np.minimum(g, 0.0), g)
    # wholly outside the band: not ours (the high-band extension and the sub-bass synthesis own them)
    g = np.where((lo > high_edge_hz) | (hi < low_edge_hz), 0.0, g)
    return np.clip(g, -float(max_db), float(max_db))


def _bin_gains_db(band_db: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Band gains interpolated over log-frequency onto ``freqs`` (held flat beyond the ends)."""
    lc = np.log2(np.asarray(BAND_CENTRES_HZ))
    return np.interp(np.log2(np.maximum(freqs, 1.0)), lc, band_db)


def _load_default_model() -> TonalModel:
    path = Path(__file__).with_name("tonal_model.json")
    if path.is_file():
        return TonalModel.load(path)
    nb = len(BAND_CENTRES_HZ)
    return TonalModel(tuple([0.0] * nb), tuple([1.0] * nb), tuple([0.0] * nb))


#: the model shipped with the engine (``tonal_model.json`` beside this module: the fit on all
#: benchmark cases; an identity model, which corrects nothing, when it is missing)
DEFAULT_MODEL = _load_default_model()


@njit(cache=True, nogil=True)
def _measure_and_apply(spectra, gain, power, identity):
    """Add each bin's ``|Y|^2`` over frames and channels of ``spectra`` ``(frames, channels,
    bins)`` to ``power`` ``(bins,)``; unless ``identity``, multiply the spectra by ``gain`` in place."""
    f_count, c_count, k_count = spectra.shape
    for f in range(f_count):
        for c in range(c_count):
            for k in range(k_count):
                z = spectra[f, c, k]
                power[k] += float(z.real) * float(z.real) + float(z.imag) * float(z.imag)
                if not identity:
                    spectra[f, c, k] = z * gain[k]


class TonalCorrector(StreamingSTFTStage):
    """A fixed zero-phase gain per bin from band gains ``gains_db`` (:data:`BAND_CENTRES_HZ`).

    All-zero gains make the stage a pure delay (``latency = frame_length - 1``).
    It measures its input and output long-term band powers as they stream, for
    :meth:`report`.  ``predicted_db``: what the corrector expects to change (for
    the report); ``backed_off``: the planner scaled it down (for the report).
    """

    name = "tonal_corrector"
    fft_dtype = np.float32

    def __init__(self, gains_db=None, frame_length: int = 2048, hop: int = 512, channels: int = CHANNELS,
                 sample_rate: int = SAMPLE_RATE, backed_off: bool = False, notes: tuple[str, ...] = ()):
        super().__init__(frame_length=frame_length, hop=hop, channels=channels, sample_rate=sample_rate)
        nb = len(BAND_CENTRES_HZ)
        g = np.zeros(nb) if gains_db is None else np.asarray(gains_db, dtype=np.float64)
        if g.shape != (nb,) or not np.all(np.isfinite(g)):
            raise SettingsError(f"tonal gains need {nb} finite band values (dB)")
        self.gains_db = g
        self.backed_off = bool(backed_off)
        self.notes = tuple(notes)
        freqs = np.arange(self.bins) * self.bin_hz
        self._gain = 10.0 ** (_bin_gains_db(g, freqs) / 20.0)
        self._gain32 = self._gain.astype(np.float32)
        self._identity = bool(np.all(g == 0.0))
        self._bands = _band_matrix(freqs)
        self.reset_spectral_state()

    def reset_spectral_state(self) -> None:
        self._power = np.zeros(self.bins)  # input power per bin, summed over frames and channels

    def process_frames(self, spectra: np.ndarray, frame_ends: np.ndarray) -> np.ndarray:
        _measure_and_apply(spectra, self._gain32, self._power, self._identity)
        return spectra

    @property
    def _in(self) -> np.ndarray:
        """Long-term input power per band."""
        return self._power @ self._bands

    @property
    def _out(self) -> np.ndarray:
        """Long-term output power per band."""
        return (self._power * self._gain ** 2) @ self._bands

    def report(self) -> dict:
        """Gains per band (dB), the realised long-term change per band (dB) and the back-off flag."""
        with np.errstate(divide="ignore", invalid="ignore"):
            real = np.where(self._in > 0, 10.0 * np.log10(np.maximum(self._out, 1e-30) / np.maximum(self._in, 1e-30)),
                            0.0)
        return {"stage": self.name, "band_centres_hz": [round(c, 1) for c in BAND_CENTRES_HZ],
                "gain_db_per_band": [round(float(v), 2) for v in self.gains_db],
                "realised_change_db_per_band": [round(float(v), 2) for v in real],
                "backed_off": self.backed_off, "notes": list(self.notes)}


def plan_corrector(profile: TonalProfile | None, high_edge_hz: float, amount: float, max_db: float,
                   min_snr_db: float, model: TonalModel | None = None, min_seconds: float = 2.0,
                   channels: int = CHANNELS, low_edge_hz: float = 0.0) -> TonalCorrector | None:
    """The corrector for a recording (None when ``amount`` is 0 or nothing was measured).

    Backs off (a zero-gain corrector that only reports) when the head is shorter
    than ``min_seconds`` or the model was trained on nothing."""
    if amount <= 0.0 or profile is None:
        return None
    model = model or DEFAULT_MODEL
    notes = []
    if profile.seconds < min_seconds:
        notes.append(f"only {profile.seconds:.1f} s measured: no correction")
    if model.trained_on == 0 or not any(model.weight):
        notes.append("the tonal model holds no fitted band: no correction")
    if notes:
        return TonalCorrector(None, channels=channels, backed_off=True, notes=tuple(notes))
    g = correction_db(profile, model, high_edge_hz, amount, max_db, min_snr_db, low_edge_hz)
    capped = int(np.sum(np.abs(g) >= max_db - 1e-9))
    if capped:
        notes.append(f"{capped} band(s) at the +-{max_db:g} dB cap")
    return TonalCorrector(g, channels=channels, notes=tuple(notes))
