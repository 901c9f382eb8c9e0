"""Reference matching: shape the mix's long-term spectrum, stereo width and loudness after a
studio recording (the same song, or a record the user likes), as Matchering does.

Pure numpy/scipy, no files: the runner decodes the reference through ``engine.io`` and feeds
its blocks to :meth:`SpectrumProfile.measure`.

**Analysis** (:class:`SpectrumProfiler`, a sink; :class:`SpectrumProfile`, what it reports).
Mid ``(L+R)/2`` and side ``(L-R)/2`` are cut into Hann frames of ``FRAME`` (4096) samples every
``HOP`` (2048) samples of absolute position; each frame's power spectrum (``FRAME//2+1`` bins)
is added into a histogram by the frame's level (1 dB bins, -100..0 dBFS), so memory stays flat
however long the recording (about 3 MB).  The *loud passages* are the frames at or above the
mean RMS of the audible frames (above -60 dBFS), as Matchering keeps the pieces louder than
the average: their mean mid and side spectra are the profile.  The integrated loudness
(BS.1770, LUFS) is measured alongside.

**Design** (:func:`design_gains`).  Both profiles' spectra (mid + side power,
i.e. the mean of L and R) are smoothed over ``smoothing_octaves`` (default 1/3 octave) around
each bin; the spectral gain is the ratio of the reference's spectrum to the mix's, each
normalised by its own total, in dB, centred on its median over log-spaced frequencies, its
shape capped to ``+-max_gain_db`` (9 dB), no boost where the mix has nothing (more than 70 dB
below its strongest band), then offset so the mix's power is unchanged (the master sets the
level).  Mid and side both get it; the side adds the width correction: the reference's
side/mid energy ratio over the mix's, per bin smoothed over an octave (so a colouring of the
bass does not read as a change of width), capped to ``+-max_width_db`` (6 dB).  ``amount`` scales every
gain in dB (0 = off).

**Filtering** (:class:`ReferenceMatch`, a :class:`~engine.stage.Stage`).  Linear-phase FIR of
``FRAME`` taps (a windowed, centred inverse FFT of the gain curve) on mid and side, applied by
FFT convolution over each block: latency ``FRAME // 2`` = 2048 samples (46 ms at 44.1 kHz).
The first filter is designed before the stream starts, from the reference's profile and the
*input's first seconds* (``prior``, measured by the runner).  Every ``update_s`` seconds of
absolute position the filter is re-designed from the mix this stage has measured so far (once
at least ``min_measure_s`` of loud frames are in), each bin moving at most ``max_step_db``
(3 dB) per update, and the old and new filters' outputs are crossfaded linearly over
``crossfade_s`` (1 s): no audible jump, and the result does not depend on block sizes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE
from ..config_fields import Flag, Number, build, check_fields, setting
from ..stage import Stage

#: analysis frame and FIR length, samples (10.8 Hz bins at 44.1 kHz)
FRAME = 4096
#: analysis hop, samples
HOP = FRAME // 2
#: level histogram: 1 dB bins from LEVEL_FLOOR_DB to 0 dBFS
LEVEL_FLOOR_DB = -100.0
LEVEL_BINS = 100
#: frames quieter than this (dBFS RMS) never count as loud passages
AUDIBLE_DB = -60.0
#: no boost in bins this far below the mix's strongest smoothed band (dB)
NO_SIGNAL_DB = 70.0


@dataclass(frozen=True)
class ReferenceConfig:
    """How the mix is matched to a reference recording (used only when a reference is given).

    amount: 0..1, how much of the matching gains is applied (scales dB; 0 = off).
    max_gain_db: cap of each spectral gain, +-dB.
    smoothing_octaves: width of the spectral smoothing, octaves (1/3 default).
    width: match the stereo width (side/mid energy ratio) too.
    max_width_db: cap of the width correction, +-dB on the side.
    match_loudness: master to the reference's integrated loudness instead of
        ``master.target_lufs`` (clamped to -40..-5 LUFS).
    update_s: seconds between refinements of the filter as the stream goes on.
    crossfade_s: length of the crossfade from one filter to the next, s.
    max_step_db: largest change of any gain at one refinement, dB.
    min_measure_s: seconds of the mix's loud frames needed before it replaces the input's
        first seconds in the design.
    """

    amount: float = setting(Number(0.0, 1.0), 1.0)
    max_gain_db: float = setting(Number(0.0, 24.0), 9.0)
    smoothing_octaves: float = setting(Number(0.05, 2.0), 1.0 / 3.0)
    width: bool = setting(Flag(), True)
    max_width_db: float = setting(Number(0.0, 12.0), 6.0)
    match_loudness: bool = setting(Flag(), True)
    update_s: float = setting(Number(1.0, 600.0), 5.0)
    crossfade_s: float = setting(Number(0.01, 5.0), 1.0)
    max_step_db: float = setting(Number(0.1, 24.0), 3.0)
    min_measure_s: float = setting(Number(0.5, 60.0), 3.0)

    def __post_init__(self) -> None:
        check_fields(self, "reference")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, base: "ReferenceConfig | None" = None) -> "ReferenceConfig":
        return build(cls, data, "reference", base)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SpectrumProfile:
    """Long-term mid/side power spectra of the loud passages of a recording.

    ``mid`` / ``side``: float64 ``(FRAME//2+1,)`` mean power per bin of the loud frames
    (Hann-windowed, arbitrary but common units); ``loud_s``: seconds those frames span;
    ``integrated_lufs``: BS.1770 loudness of the whole (None when silent).
    """

    mid: np.ndarray
    side: np.ndarray
    loud_s: float
    integrated_lufs: float | None = None

    @property
    def width_ratio(self) -> float:
        """Side/mid energy ratio of the loud passages (0 = mono)."""
        m = float(np.sum(self.mid))
        return float(np.sum(self.side)) / m if m > 0 else 0.0

    @classmethod
    def measure(cls, blocks: Iterable[np.ndarray], sample_rate: int = SAMPLE_RATE) -> "SpectrumProfile":
        """Profile of a stream of float32 ``(2, n)`` blocks (a reference file, block by block)."""
        from .loudness import StreamingLoudnessMeter

        prof = SpectrumProfiler()
        meter = StreamingLoudnessMeter(sample_rate, CHANNELS)
        for b in blocks:
            prof.update(b)
            meter.update(b)
        lufs = meter.integrated_lufs()
        return prof.result(float(lufs) if math.isfinite(lufs) else None)

    def describe(self) -> dict:
        return {"loud_s": round(self.loud_s, 2), "width_ratio": round(self.width_ratio, 4),
                "integrated_lufs": self.integrated_lufs}


class SpectrumProfiler:
    """Streaming mid/side long-term spectrum by frame level (a sink; see the module doc).

    ``update(block (2, n))``; ``result()`` -> :class:`SpectrumProfile`; ``reset()``.
    Frames sit at absolute positions ``k * HOP``: readings do not depend on block sizes.
    """

    def __init__(self):
        self.window = np.hanning(FRAME + 1)[:FRAME].astype(np.float64)
        self._wnorm = float(np.sum(self.window ** 2))
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros((2, 0), dtype=np.float64)  # mid/side from the next frame's start
        self.mid = np.zeros((LEVEL_BINS, FRAME // 2 + 1))
        self.side = np.zeros((LEVEL_BINS, FRAME // 2 + 1))
        self.count = np.zeros(LEVEL_BINS)
        self.frames = 0

    def update(self, block: np.ndarray) -> None:
        x = np.asarray(block, dtype=np.float64)
        ms = np.stack([0.5 * (x[0] + x[1]), 0.5 * (x[0] - x[1])])
        buf = np.concatenate([self._buf, ms], axis=1)
        n_frames = (buf.shape[1] - FRAME) // HOP + 1 if buf.shape[1] >= FRAME else 0
        if n_frames > 0:
            idx = np.arange(n_frames)[:, None] * HOP + np.arange(FRAME)[None, :]
            frames = buf[:, idx]  # (2, k, FRAME)
            energy = np.mean(frames ** 2, axis=(0, 2)) * 2.0  # mid^2 + side^2 = (L^2 + R^2) / 2
            level = 10.0 * np.log10(energy + 1e-20)
            bins = np.clip(np.floor(level - LEVEL_FLOOR_DB), 0, LEVEL_BINS - 1).astype(np.int64)
            spec = np.abs(np.fft.rfft(frames * self.window, axis=-1)) ** 2 / self._wnorm
            np.add.at(self.mid, bins, spec[0])
            np.add.at(self.side, bins, spec[1])
            np.add.at(self.count, bins, 1.0)
            self.frames += n_frames
            buf = buf[:, n_frames * HOP:]
        self._buf = buf

    def loud_bins(self) -> np.ndarray:
        """Level bins of the loud passages (at or above the mean RMS of the audible frames)."""
        centres = LEVEL_FLOOR_DB + np.arange(LEVEL_BINS) + 0.5
        audible = (centres >= AUDIBLE_DB) & (self.count > 0)
        if not np.any(audible):
            return audible
        rms = 10.0 ** (centres / 20.0)
        gate = np.sum(self.count[audible] * rms[audible]) / np.sum(self.count[audible])
        return audible & (rms >= gate * 10 ** (-0.5 / 20))  # the gate's own 1 dB bin counts

    def result(self, integrated_lufs: float | None = None) -> SpectrumProfile:
        sel = self.loud_bins()
        n = float(np.sum(self.count[sel]))
        if n == 0:
            z = np.zeros(FRAME // 2 + 1)
            return SpectrumProfile(z, z.copy(), 0.0, integrated_lufs)
        return SpectrumProfile(self.mid[sel].sum(axis=0) / n, self.side[sel].sum(axis=0) / n,
                               n * HOP / SAMPLE_RATE, integrated_lufs)


def smooth_octave(power: np.ndarray, octaves: float) -> np.ndarray:
    """Mean of ``power`` (per rfft bin) over ``+-octaves/2`` around each bin (at least +-1 bin)."""
    k = np.arange(power.shape[-1], dtype=np.float64)
    half = 2.0 ** (octaves / 2.0)
    lo = np.clip(np.floor(k / half), 0, None).astype(np.int64)
    hi = np.clip(np.ceil(k * half), 0, power.shape[-1] - 1).astype(np.int64)
    lo = np.minimum(lo, np.maximum(k.astype(np.int64) - 1, 0))
    hi = np.maximum(hi, np.minimum(k.astype(np.int64) + 1, power.shape[-1] - 1))
    c = np.concatenate([[0.0], np.cumsum(power)])
    return (c[hi + 1] - c[lo]) / (hi - lo + 1)


def _ratio_db(ref: np.ndarray, mix: np.ndarray, cfg: ReferenceConfig, sample_rate: int) -> np.ndarray:
    """Smoothed, normalised ``ref / mix`` per bin in dB, capped, power-preserving on ``mix``."""
    freqs = np.fft.rfftfreq(FRAME, 1.0 / sample_rate)
    r = smooth_octave(ref, cfg.smoothing_octaves)
    m = smooth_octave(mix, cfg.smoothing_octaves)
    band = (freqs >= 20.0) & (freqs <= min(20000.0, 0.49 * sample_rate))
    rs, ms = float(np.sum(r[band])), float(np.sum(m[band]))
    if rs <= 0 or ms <= 0:
        return np.zeros_like(freqs)
    g = 10.0 * np.log10((r / rs + 1e-30) / (m / ms + 1e-30))
    # centre the curve (median over log-spaced frequencies in the band) before capping its shape
    probe = np.searchsorted(freqs, np.geomspace(20.0, freqs[band][-1], 60)).clip(0, len(freqs) - 1)
    g = np.clip(g - float(np.median(g[probe])), -cfg.max_gain_db, cfg.max_gain_db)
    no_signal = m < np.max(m[band]) * 10 ** (-NO_SIGNAL_DB / 10)
    g[no_signal] = np.minimum(g[no_signal], 0.0)
    # hold the edge values outside 20 Hz .. 20 kHz
    first, last = np.flatnonzero(band)[[0, -1]]
    g[:first], g[last + 1:] = g[first], g[last]
    # then keep the mix's power (a broadband offset, not capped: the master sets the level)
    p = float(np.sum(m[band] * 10 ** (g[band] / 10))) / ms
    return g - 10 * math.log10(max(p, 1e-12))


def width_db(reference: SpectrumProfile, mix: SpectrumProfile, cfg: ReferenceConfig) -> np.ndarray:
    """Per-bin side/mid energy ratio of ``reference`` over ``mix``'s, dB, smoothed over an octave
    and capped to ``+-cfg.max_width_db`` (0 where either side is silent)."""
    oct_ = max(1.0, cfg.smoothing_octaves)
    rm, rs = smooth_octave(reference.mid, oct_), smooth_octave(reference.side, oct_)
    mm, msd = smooth_octave(mix.mid, oct_), smooth_octave(mix.side, oct_)
    ok = (rm > 0) & (rs > 0) & (mm > 0) & (msd > 0)
    w = np.zeros_like(rm)
    w[ok] = 10.0 * np.log10((rs[ok] / rm[ok]) / (msd[ok] / mm[ok]))
    return np.clip(w, -cfg.max_width_db, cfg.max_width_db)


def design_gains(reference: SpectrumProfile, mix: SpectrumProfile, cfg: ReferenceConfig,
                 sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """``(mid_db, side_db)``: gains per rfft bin of ``FRAME`` that match ``mix`` to ``reference``:
    the spectral gain on both, plus the width correction on the side (when ``cfg.width``)."""
    g_mid = _ratio_db(reference.mid + reference.side, mix.mid + mix.side, cfg, sample_rate)
    g_side = g_mid + width_db(reference, mix, cfg) if cfg.width else g_mid.copy()
    return cfg.amount * g_mid, cfg.amount * g_side


def fir_from_gains(gains_db: np.ndarray) -> np.ndarray:
    """Linear-phase FIR ``(FRAME,)`` float64 with magnitude ``gains_db`` (rfft bins of FRAME),
    centred on tap ``FRAME // 2`` (its delay), Hann-windowed."""
    h = np.fft.irfft(10.0 ** (np.asarray(gains_db, dtype=np.float64) / 20.0), n=FRAME)
    h = np.roll(h, FRAME // 2)
    return h * np.hanning(FRAME + 1)[:FRAME]


class ReferenceMatch(Stage):
    """Match a stereo mix to a reference's spectrum and width (a :class:`Stage`, see module doc).

    Args:
        reference: the reference recording's :class:`SpectrumProfile`.
        prior: the input's first seconds (:class:`SpectrumProfile`), for the filter used from the
            first sample; None: start flat and design from the mix as it comes.
        config: :class:`ReferenceConfig`.

    ``process(block (2, n))`` -> float32 ``(2, n)`` delayed by :attr:`latency` (``FRAME // 2``).
    :meth:`report` says what it applied (dB per 1/3 octave of mid and side, width correction).
    """

    name = "reference_match"

    def __init__(self, reference: SpectrumProfile, prior: SpectrumProfile | None = None,
                 config: ReferenceConfig | None = None, sample_rate: int = SAMPLE_RATE):
        self.reference = reference
        self.prior = prior if prior is not None and prior.loud_s > 0 else None
        self.config = config if config is not None else ReferenceConfig()
        self.sample_rate = int(sample_rate)
        self.channels = CHANNELS
        self.latency = FRAME // 2
        self.update = max(HOP, int(round(self.config.update_s * self.sample_rate)))
        self.xfade = max(1, int(round(self.config.crossfade_s * self.sample_rate)))
        self.reset()

    def reset(self) -> None:
        self.profiler = SpectrumProfiler()
        if self.prior is not None:
            self.gains = design_gains(self.reference, self.prior, self.config, self.sample_rate)
        else:
            z = np.zeros(FRAME // 2 + 1)
            self.gains = (z, z.copy())
        self._h = self._filters(self.gains)
        self._h_old = None
        self._fade_start = 0
        self._hist = np.zeros((2, FRAME - 1), dtype=np.float64)  # mid/side before the next sample
        self.samples = 0
        self.updates = 0

    @staticmethod
    def _filters(gains) -> np.ndarray:
        return np.stack([fir_from_gains(gains[0]), fir_from_gains(gains[1])])

    def _refine(self) -> None:
        """A grid point: re-design from the mix measured so far; crossfade to the new filter."""
        measured = self.profiler.result()
        if measured.loud_s < self.config.min_measure_s:
            return
        target = design_gains(self.reference, measured, self.config, self.sample_rate)
        step = self.config.max_step_db
        new = tuple(g + np.clip(t - g, -step, step) for g, t in zip(self.gains, target))
        self.gains = new
        self._h_old, self._h = self._h, self._filters(new)
        self._fade_start = self.samples
        self.updates += 1

    def _convolve(self, ext: np.ndarray, h: np.ndarray) -> np.ndarray:
        from scipy import signal  # only with a reference: keeps scipy.signal out of the plain start-up

        return signal.fftconvolve(ext, h, mode="valid", axes=1)

    def _filter_segment(self, ms: np.ndarray) -> np.ndarray:
        ext = np.concatenate([self._hist, ms], axis=1)
        y = self._convolve(ext, self._h)
        if self._h_old is not None:
            pos = self.samples + np.arange(ms.shape[1])
            r = (pos - self._fade_start + 1) / (self.xfade + 1.0)
            if pos[0] - self._fade_start >= self.xfade:
                self._h_old = None
            else:
                r = np.clip(r, 0.0, 1.0)
                y = r * y + (1.0 - r) * self._convolve(ext, self._h_old)
        self._hist = ext[:, -(FRAME - 1):]
        return y

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != 2:
            raise ValueError(f"{self.name}: expected a (2, n) block, got shape {x.shape}")
        ms = np.stack([0.5 * (x[0] + x[1]), 0.5 * (x[0] - x[1])])
        out = np.empty_like(ms)
        a = 0
        n = ms.shape[1]
        while a < n:
            next_update = (self.samples // self.update + 1) * self.update
            b = min(n, a + next_update - self.samples)
            if self._h_old is not None:  # end the crossfade on a segment boundary
                fade_end = self._fade_start + self.xfade
                if self.samples < fade_end:
                    b = min(b, a + fade_end - self.samples)
            out[:, a:b] = self._filter_segment(ms[:, a:b])
            self.profiler.update(x[:, a:b])
            self.samples += b - a
            a = b
            if self.samples % self.update == 0:
                self._refine()
        y = np.stack([out[0] + out[1], out[0] - out[1]])
        return y.astype(np.float32)

    def report(self) -> dict:
        """What the filter applies now: dB per 1/3-octave centre (mid, side), refinements."""
        freqs = np.fft.rfftfreq(FRAME, 1.0 / self.sample_rate)
        centres = 1000.0 * 2.0 ** (np.arange(-15, 14) / 3.0)
        idx = np.searchsorted(freqs, centres).clip(0, len(freqs) - 1)
        ms = self.gains[1] - self.gains[0]
        return {"centres_hz": [round(float(c), 1) for c in centres],
                "width_db": round(float(np.median(ms[idx])), 2),
                "mid_db": [round(float(self.gains[0][i]), 2) for i in idx],
                "side_db": [round(float(self.gains[1][i]), 2) for i in idx],
                "updates": self.updates, "reference": self.reference.describe()}
