"""Streaming de-clipper: consistent sparse reconstruction (S-SPADE) on overlapping frames.

Phone recordings of loud concerts clip, and the AAC codec then blurs each flat
top into a rippled plateau (decoded values scatter roughly +-10 % around the
clip level, with overshoots far above it).  This stage finds the clipped
samples and re-estimates them from the rest of the signal; every other sample
passes through bit-exactly.

**Detection (a plateau with a tolerance).**  A histogram of ``|x|`` over the
stream so far (both channels, 0.01-wide bins, lightly smoothed) is searched for
the pile-up that clipping leaves at the top of the amplitude distribution: the
bin above the median with the largest *prominence* ``h[b] / min(h[median..b])``.
An unclipped recording's upper tail falls monotonically (prominence 1); a
clipped one rises again towards the clip level (1.5-4 measured after AAC).
Clipping is declared when the prominence reaches ``spike_ratio``; the clip threshold
``theta`` is the lower half-height edge of the pile-up, so the blurred plateau
is inside it.  Samples with ``x >= theta`` (``<= -theta``) are clipped.  The
decision is re-made per frame from the histogram of all samples up to the
frame's end, after ``min_stats_s`` of audio (before that nothing is touched).
When many samples sit exactly at the largest value (a digital flat top, no
codec after the clipping), ``theta`` is that value instead.

**Reconstruction (S-SPADE "done right", Zaviska et al. 2018).**  Frames of
``frame`` samples (hop ``frame / 2``, periodic Hann for the overlap-add, which
sums to one), each channel on its own; a frame with clipped samples is solved
for the sparsest spectrum (real DFT of twice the frame length) consistent with
the observation: reliable samples equal the input, clipped ones lie beyond
``theta`` with their sign.  ADMM-style: hard thresholding to ``k`` coefficients
(``k`` grows by one per iteration), projection onto the consistent set, stop
when the sparse and the consistent estimates agree within ``rel_tol`` (or after
``max_iterations``).  Frames are solved in batches.  The output is the input
plus the window-weighted corrections of the solved frames; a correction is
exactly zero on reliable samples, so they are never changed.

Streaming: frames lie on a fixed grid of absolute sample positions and every
decision depends only on samples before a frame's end, so the output does not
depend on how the stream is cut into blocks.  :attr:`Declipper.latency` is one
frame (2048 samples, 46 ms; 1024-sample frames repair less: 5.7 instead of
6.9 dB on the test music).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..audio import CHANNELS
from ..errors import SettingsError
from ..stage import Stage

MODES = ("off", "auto")
_BINS = 200  # |x| histogram over [0, 2), 0.01 wide (AAC overshoots reach ~1.9)
_BIN_W = 2.0 / _BINS
_FLAT_TOL = 1e-4  # samples this close (relative) to the largest one sit on a digital flat top


@dataclass
class DeclipConfig:
    """Settings of :class:`Declipper`.

    mode : ``off`` (bit-exact passthrough, no latency change) or ``auto``
        (repair where clipping is detected).
    frame : frame length in samples (even); the hop is half of it.
    max_iterations : S-SPADE iterations per frame at most.
    rel_tol : stop when ``||z_sparse - z_consistent|| <= rel_tol * ||z_input||``.
    spike_ratio : prominence of the amplitude pile-up that counts as clipping.
    min_peak_fraction : share of all samples the pile-up's densest bin must hold.
    min_stats_s : seconds of audio measured before any decision.
    """

    mode: str = "auto"
    frame: int = 2048
    max_iterations: int = 120
    rel_tol: float = 1e-3
    spike_ratio: float = 1.25
    min_peak_fraction: float = 2e-3
    min_stats_s: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SettingsError(f"restore.declip must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.frame < 64 or self.frame % 2:
            raise SettingsError(f"declip frame must be an even number >= 64, got {self.frame}")
        if not (1 <= int(self.max_iterations) <= 2000):
            raise SettingsError(f"declip max_iterations must be 1..2000, got {self.max_iterations}")
        if self.spike_ratio <= 1.0:
            raise SettingsError(f"declip spike_ratio must exceed 1, got {self.spike_ratio}")

    def to_dict(self) -> dict:
        return asdict(self)


def clip_threshold(hist: np.ndarray, spike_ratio: float, min_peak_fraction: float) -> float | None:
    """Clip level ``theta`` (linear) from a ``|x|`` histogram over [0, 2), or ``None``
    when the histogram shows no clipping pile-up (see the module notes)."""
    total = float(hist.sum())
    if total <= 0:
        return None
    g = np.convolve(hist.astype(np.float64), np.ones(3) / 3.0, mode="same")
    med = int(np.searchsorted(np.cumsum(hist), 0.5 * total))
    tail = g[med:]
    if tail.size < 3:
        return None
    running_min = np.minimum.accumulate(np.maximum(tail, 1e-9))
    prominence = np.where(tail >= min_peak_fraction * total, tail / running_min, 0.0)
    b = int(np.argmax(prominence))
    if prominence[b] < spike_ratio:
        return None
    valley = int(np.argmin(tail[:b + 1]))
    half = tail[valley] + 0.5 * (tail[b] - tail[valley])
    edge = valley + int(np.argmax(tail[valley:b + 1] >= half))
    return (med + edge) * _BIN_W


def _hard_threshold(z: np.ndarray, k: int) -> np.ndarray:
    """Keep the ``k`` largest-magnitude coefficients of each row."""
    mag = np.abs(z)
    m = mag.shape[1]
    if k >= m:
        return z
    thr = np.partition(mag, m - k, axis=1)[:, m - k][:, None]
    return np.where(mag >= thr, z, 0)


def sspade(y: np.ndarray, high: np.ndarray, low: np.ndarray, theta: np.ndarray, max_iterations: int = 120,
           rel_tol: float = 1e-3) -> np.ndarray:
    """Consistent S-SPADE on a batch of frames.

    ``y`` ``(B, N)`` float64 observed frames; ``high`` / ``low`` ``(B, N)`` masks of
    samples clipped at ``+theta`` / ``-theta`` (``theta`` ``(B,)``).  Returns the
    reconstructed frames: equal to ``y`` (exactly) where neither mask is set,
    ``>= theta`` on ``high``, ``<= -theta`` on ``low``.
    """
    n = y.shape[1]
    reliable = ~(high | low)
    th = theta[:, None]

    def project(w: np.ndarray) -> np.ndarray:
        x = np.where(reliable, y, w)
        x = np.where(high, np.maximum(x, th), x)
        return np.where(low, np.minimum(x, -th), x)

    def analysis(x: np.ndarray) -> np.ndarray:
        return np.fft.rfft(x, 2 * n, axis=1)

    def synthesis(z: np.ndarray) -> np.ndarray:
        return np.fft.irfft(z, 2 * n, axis=1)[:, :n]

    z_hat = analysis(y)
    scale = rel_tol * np.linalg.norm(z_hat, axis=1)
    u = np.zeros_like(z_hat)
    out = project(y)
    active = np.arange(y.shape[0])
    for i in range(1, int(max_iterations) + 1):
        zb = _hard_threshold(z_hat + u, i)
        v = zb - u
        w = synthesis(v)
        x = project(w)
        z_hat = v + analysis(x - w)
        out[active] = x
        done = np.linalg.norm(z_hat - zb, axis=1) <= scale[active]
        if done.all():
            break
        if done.any():
            keep = ~done
            active, z_hat, u, zb = active[keep], z_hat[keep], u[keep], zb[keep]
            y, high, low, reliable, th = y[keep], high[keep], low[keep], reliable[keep], th[keep]
        u = u + z_hat - zb
    return out


class Declipper(Stage):
    """Streaming de-clipper (a :class:`~engine.stage.Stage`): see the module notes.

    ``process(block (channels, n))`` returns float32 ``(channels, n)`` delayed by
    :attr:`latency` (``config.frame`` samples; 0 when ``mode`` is ``off``).
    :meth:`report` says what it found and changed.
    """

    name = "declip"

    def __init__(self, config: DeclipConfig | None = None, sample_rate: int = 44100, channels: int = CHANNELS):
        self.config = config if config is not None else DeclipConfig()
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.frame = int(self.config.frame)
        self.hop = self.frame // 2
        self.latency = 0 if self.config.mode == "off" else self.frame
        n = np.arange(self.frame)
        self.window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.frame)  # periodic Hann: halves sum to 1
        self.reset()

    def reset(self) -> None:
        c = self.channels
        # input from absolute position -hop (zeros before the stream), corrections alongside
        self._buf = np.zeros((c, self.hop), dtype=np.float64)
        self._acc = np.zeros((c, self.hop), dtype=np.float64)
        self._buf_start = -self.hop
        self._next_frame = -self.hop  # absolute start of the next frame to solve
        self._in_total = 0
        self._hist = np.zeros(_BINS, dtype=np.int64)
        self._hist_pos = 0  # absolute position up to which samples are in the histogram
        self._peak = 0.0  # largest |x| so far and how many samples sit within 1e-4 of it
        self._peak_count = 0
        self._pending = np.zeros((c, self.latency), dtype=np.float32)  # output not yet handed out
        self._final_end = 0  # absolute position up to which output is final
        self.clipped_samples = 0
        self.frames_repaired = 0
        self.theta: float | None = None

    def report(self) -> dict:
        """What the de-clipper found and changed so far: ``stage`` (``"declip"``), ``mode``,
        ``detected`` (clipping was found), ``clip_level`` (linear threshold ``theta``, None
        when none was found), ``clipped_samples`` (samples re-estimated, all channels),
        ``frames_repaired`` (frames solved, counted per channel) and ``repaired``
        (``frames_repaired > 0``: some samples were re-estimated)."""
        return {"stage": self.name, "mode": self.config.mode, "detected": self.theta is not None,
                "clip_level": self.theta, "clipped_samples": int(self.clipped_samples),
                "frames_repaired": int(self.frames_repaired), "repaired": self.frames_repaired > 0}

    # ------------------------------------------------------------------ streaming

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(block, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ValueError(f"{self.name}: expected a ({self.channels}, n) block, got shape {x.shape}")
        if self.config.mode == "off":
            return x.copy()
        self._buf = np.concatenate([self._buf, x.astype(np.float64)], axis=1)
        self._acc = np.concatenate([self._acc, np.zeros(x.shape, dtype=np.float64)], axis=1)
        self._in_total += x.shape[1]
        self._solve_ready_frames()
        # every sample before the next frame's start has all its frames solved
        final_end = max(self._final_end, min(self._next_frame, self._in_total))
        a, b = self._final_end - self._buf_start, final_end - self._buf_start
        fresh = self._buf[:, a:b] + self._acc[:, a:b]
        fresh = np.where(self._acc[:, a:b] == 0.0, self._buf[:, a:b], fresh).astype(np.float32)
        self._final_end = final_end
        self._pending = np.concatenate([self._pending, fresh], axis=1)
        out, self._pending = self._pending[:, :x.shape[1]], self._pending[:, x.shape[1]:]
        self._trim()
        return np.ascontiguousarray(out)

    def _trim(self) -> None:
        """Drop input no frame or output needs any more."""
        keep_from = min(self._next_frame, self._final_end)
        cut = keep_from - self._buf_start
        if cut > 0:
            self._buf, self._acc = self._buf[:, cut:], self._acc[:, cut:]
            self._buf_start = keep_from

    def _solve_ready_frames(self) -> None:
        starts, thetas = [], []
        min_stats = int(self.config.min_stats_s * self.sample_rate) * self.channels
        while self._next_frame + self.frame <= self._in_total:
            p = self._next_frame
            end = p + self.frame
            a, b = self._hist_pos - self._buf_start, end - self._buf_start
            if b > a:
                self._count(np.abs(self._buf[:, a:b]))
                self._hist_pos = end
            theta = None
            total = int(self._hist.sum())
            if total >= min_stats:
                theta = clip_threshold(self._hist, self.config.spike_ratio, self.config.min_peak_fraction)
                if theta is not None and self._peak_count >= 0.25 * self.config.min_peak_fraction * total:
                    # a digital flat top (no codec after the clipping): its exact level
                    theta = self._peak * (1.0 - _FLAT_TOL)
            if theta is not None:
                self.theta = theta
                starts.append(p)
                thetas.append(theta)
            self._next_frame += self.hop
        if starts:
            self._repair(starts, thetas)

    def _count(self, mag: np.ndarray) -> None:
        """Add ``|x|`` samples to the histogram and the flat-top counter."""
        self._hist += np.bincount(np.minimum((mag / _BIN_W).astype(np.int64), _BINS - 1).ravel(), minlength=_BINS)
        m = float(mag.max())
        if m > self._peak * (1.0 + _FLAT_TOL):
            self._peak, self._peak_count = m, 0
        self._peak_count += int(np.count_nonzero(mag >= self._peak * (1.0 - _FLAT_TOL)))

    def _repair(self, starts: list[int], thetas: list[float]) -> None:
        idx = np.asarray(starts)[:, None] - self._buf_start + np.arange(self.frame)[None, :]  # (F, N)
        frames = self._buf[:, idx].reshape(-1, self.frame)  # (C*F, N), channel-major
        theta = np.tile(np.asarray(thetas, dtype=np.float64), self.channels)
        high, low = frames >= theta[:, None], frames <= -theta[:, None]
        hit = (high | low).any(axis=1)
        if not hit.any():
            return
        solved = sspade(frames[hit], high[hit], low[hit], theta[hit], self.config.max_iterations,
                        self.config.rel_tol)
        corr = np.zeros_like(frames)
        corr[hit] = (solved - frames[hit]) * self.window[None, :]
        corr = corr.reshape(self.channels, len(starts), self.frame)
        for f, p in enumerate(starts):
            a = p - self._buf_start
            self._acc[:, a:a + self.frame] += corr[:, f]
        self.frames_repaired += int(hit.sum())
        # clipped samples counted once: those in the first half of each frame (hop grid)
        self.clipped_samples += int((high | low)[hit][:, :self.hop].sum())
