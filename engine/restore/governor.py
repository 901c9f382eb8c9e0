"""Do no harm, measured inside: the whole job's long-term spectrum, checked before the final master.

Every restoration stage plans from what it measured up front (the head of
the recording) and reports what it changed; none of them sees what the
others did to the mix.  The governor closes the loop over the whole job:

1. :class:`SpectrumAccumulator` measures the long-term 1/3-octave band levels
   and noise floors (as :class:`~engine.restore.tonal.TonalProfile`) of a
   stream block by block: frames on a fixed grid of absolute sample positions
   (so the result does not depend on how the stream was cut), a per-band
   histogram for the noise-floor percentile (memory does not grow with the
   length).  The runner feeds it the input as it streams and the stored,
   unmastered mix once the stream has ended.
2. :func:`plan_governor` compares, band by band inside the detected band,
   the output's distance to a plausible clean target with the input's: the
   target is the tonal model's prediction of the clean levels from the
   input's own (``predict``, trusted to within the model's error
   ``sigma``); where the model holds no fitted band (weight 0) it cannot tell
   what is right, so the input's own level is the target.  A band whose
   output is further from the target than the input was, by more than
   ``tol_db``, is pulled back towards the input by the excess (capped at
   ``max_db``): the pipeline backs off there.
3. The gains are one fixed zero-phase filter
   (:class:`~engine.restore.tonal.TonalCorrector`) applied to the stored mix
   on its way to the final master, so the final file carries the correction;
   the streamed preview does not (it is already out).  :meth:`GovernorPlan.report`
   lists per band the input, output and target levels, the gain and whether
   the governor backed off.

Bands above the detected high edge (the high-band extension's, with its own
envelope and confidence) and below the low edge are left alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from .tonal import (BAND_CENTRES_HZ, DEFAULT_MODEL, MEASURE_FFT, NOISE_BIAS_DB, NOISE_PERCENTILE, TonalCorrector,
                    TonalModel, TonalProfile, _band_matrix)

#: spacing of the measuring frames (samples): every other :data:`MEASURE_FFT` frame
STRIDE = 2 * MEASURE_FFT
#: histogram of the frame band levels for the noise floor: dB range and bin width
HIST_LO_DB, HIST_HI_DB, HIST_STEP_DB = -200.0, 40.0, 0.25


class SpectrumAccumulator:
    """Long-term band levels of a stream (channel mean), chunk-size invariant, flat memory."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, fft: int = MEASURE_FFT, stride: int = STRIDE):
        if stride < 1 or fft < 16:
            raise ValueError("fft >= 16 and stride >= 1 needed")
        self.sample_rate, self.fft, self.stride = int(sample_rate), int(fft), int(stride)
        self._win = np.hanning(self.fft)
        self._bands = _band_matrix(np.fft.rfftfreq(self.fft, 1.0 / self.sample_rate))
        self._edges = np.arange(HIST_LO_DB, HIST_HI_DB + HIST_STEP_DB, HIST_STEP_DB)
        self.reset()

    def reset(self) -> None:
        nb = len(BAND_CENTRES_HZ)
        self._buf = np.zeros(0)
        self._buf_start = 0  # absolute position of _buf[0]
        self._next = 0  # absolute start of the next frame
        self._sum = np.zeros(nb)
        self._frames = 0
        self._hist = np.zeros((nb, len(self._edges) + 1), dtype=np.int64)
        self.samples = 0

    def update(self, block: np.ndarray) -> None:
        """Feed a float ``(channels, n)`` (or mono ``(n,)``) block."""
        x = np.asarray(block, dtype=np.float64)
        x = x.mean(axis=0) if x.ndim == 2 else x
        self.samples += x.size
        self._buf = np.concatenate([self._buf, x])
        starts = []
        while self._next + self.fft <= self._buf_start + self._buf.size:
            starts.append(self._next - self._buf_start)
            self._next += self.stride
        if starts:  # consecutive frames ``stride`` apart: a strided view, no gather
            frames = np.lib.stride_tricks.sliding_window_view(self._buf, self.fft)[starts[0]::self.stride]
            spec = np.fft.rfft(frames[:len(starts)] * self._win, axis=1)
            power = (spec.real ** 2 + spec.imag ** 2) / np.sum(self._win ** 2)
            bands = power @ self._bands
            active = bands.sum(axis=1) > 1e-12
            bands = bands[active]
            if bands.size:
                self._sum += bands.sum(axis=0)
                self._frames += bands.shape[0]
                db = 10.0 * np.log10(bands + 1e-30)
                pos = np.searchsorted(self._edges, db, side="right")  # (frames, bands)
                for k in range(bands.shape[1]):
                    self._hist[k] += np.bincount(pos[:, k], minlength=self._hist.shape[1])
        keep_from = min(max(0, self._next - self._buf_start), self._buf.size)  # nothing before the next frame
        self._buf = self._buf[keep_from:]
        self._buf_start += keep_from

    def profile(self) -> TonalProfile:
        """The :class:`TonalProfile` of everything fed so far (-200 dB bands when nothing was)."""
        nb = len(BAND_CENTRES_HZ)
        seconds = self.samples / self.sample_rate
        if self._frames == 0:
            return TonalProfile(tuple([-200.0] * nb), tuple([-200.0] * nb), seconds)
        level = 10.0 * np.log10(self._sum / self._frames + 1e-20)
        cum = np.cumsum(self._hist, axis=1)
        rank = np.ceil(NOISE_PERCENTILE / 100.0 * self._frames)
        pos = np.argmax(cum >= rank, axis=1)
        noise = np.take(np.concatenate([[HIST_LO_DB], self._edges]), pos) + NOISE_BIAS_DB
        noise = np.minimum(noise, level)
        return TonalProfile(tuple(float(v) for v in level), tuple(float(v) for v in noise), seconds)


@dataclass(frozen=True)
class GovernorPlan:
    """What :func:`plan_governor` decided (levels relative to the body, dB, per band)."""

    gains_db: np.ndarray
    input_db: np.ndarray
    output_db: np.ndarray
    target_db: np.ndarray
    considered: np.ndarray
    notes: tuple[str, ...] = ()

    @property
    def backed_off(self) -> bool:
        return bool(np.any(self.gains_db != 0.0))

    def corrector(self, sample_rate: int = SAMPLE_RATE) -> TonalCorrector | None:
        """The zero-phase filter that applies the gains (None when there is nothing to do)."""
        if not self.backed_off:
            return None
        c = TonalCorrector(self.gains_db, sample_rate=sample_rate, backed_off=True, notes=self.notes)
        c.name = "governor"
        return c

    def report(self) -> dict:
        r = lambda a: [round(float(v), 2) for v in a]  # noqa: E731
        return {"stage": "governor", "band_centres_hz": [round(c, 1) for c in BAND_CENTRES_HZ],
                "input_rel_db": r(self.input_db), "output_rel_db": r(self.output_db),
                "target_rel_db": r(self.target_db), "considered": [bool(v) for v in self.considered],
                "gain_db_per_band": r(self.gains_db), "backed_off": self.backed_off,
                "bands_pulled_back": int(np.sum(self.gains_db != 0.0)), "notes": list(self.notes)}


def plan_governor(inp: TonalProfile, out: TonalProfile, band_limits_hz: tuple[float, float],
                  model: TonalModel | None = None, tol_db: float = 1.0, max_db: float = 6.0,
                  min_snr_db: float = 6.0, min_seconds: float = 2.0) -> GovernorPlan:
    """Per band, pull the output back where it ended further from the target than the input was."""
    model = model or DEFAULT_MODEL
    nb = len(BAND_CENTRES_HZ)
    centres = np.asarray(BAND_CENTRES_HZ)
    xin, xout = inp.relative_db(), out.relative_db()
    w = np.asarray(model.weight)
    target = np.where(w > 0.0, model.predict(xin), xin)
    sigma = np.where(w > 0.0, model.uncertainty_db(), 0.0)
    low, high = band_limits_hz
    considered = ((centres * 2 ** (-1 / 6) >= low) & (centres * 2 ** (1 / 6) <= high)
                  & (inp.snr_db() >= min_snr_db) & (np.asarray(out.level_db) > -150.0))
    notes: list[str] = []
    if min(inp.seconds, out.seconds) < min_seconds:
        notes.append(f"under {min_seconds:g} s measured: nothing checked")
        considered = np.zeros(nb, dtype=bool)
    d_in = np.maximum(np.abs(xin - target) - sigma, 0.0)
    d_out = np.maximum(np.abs(xout - target) - sigma, 0.0)
    excess = d_out - d_in - float(tol_db)
    pull = np.minimum(np.maximum(excess, 0.0), np.abs(xout - xin))
    gains = np.where(considered & (excess > 0.0), -np.sign(xout - xin) * np.minimum(pull, float(max_db)), 0.0)
    if np.any(gains != 0.0):
        notes.append(f"{int(np.sum(gains != 0.0))} band(s) pulled back towards the input")
    return GovernorPlan(gains, xin, xout, target, considered, tuple(notes))
