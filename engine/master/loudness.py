"""Streaming loudness meters (ITU-R BS.1770-4 / EBU R128).

Nothing here holds the audio.  :class:`StreamingLoudnessMeter` K-weights each
block with carried filter state and keeps, per 100 ms *hop* (at absolute
sample positions ``k * hop``), one float: the channel-weighted sum of squared
K-weighted samples.  The 400 ms gating blocks (75 % overlap) are sums of four
consecutive hops, the 3 s short-term windows sums of thirty.  Gating needs
every block of the programme, so completed blocks go into a fine histogram
(0.01 LU bins from -70 to +30 LUFS) that stores, per bin, the block count and
the exact sum of block energies: memory is flat (about 320 KB) however long
the programme, queries cost a few tens of microseconds, and the gated mean is
exact except for the one bin the relative gate cuts through (error well
below 0.01 LU).

Per-sample work runs in numba kernels with explicit state, so results are
bit-identical whatever the block sizes (chunk-size invariance).

True-peak meters are in :mod:`engine.master.true_peak`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numba import njit

from ..audio import db_to_gain

#: Loudness of digital silence (no gating block above the absolute gate), LUFS.
SILENCE_LUFS = float("-inf")
#: Absolute gate of BS.1770-4, LUFS.
ABSOLUTE_GATE_LUFS = -70.0
#: Relative gate of BS.1770-4 integrated loudness, LU below the abs-gated mean.
RELATIVE_GATE_LU = -10.0
#: Relative gate of EBU Tech 3342 loudness range, LU.
LRA_RELATIVE_GATE_LU = -20.0

_HIST_LO = -70.0  # LUFS, lower edge of the first histogram bin
_HIST_HI = 30.0  # LUFS, values above go into the top bin (energies stay exact)
_HIST_RES = 0.01  # LU per bin
_HIST_BINS = int(round((_HIST_HI - _HIST_LO) / _HIST_RES))


# --------------------------------------------------------------------------
# K-weighting
# --------------------------------------------------------------------------
def k_weighting_sos(sample_rate: float) -> np.ndarray:
    """K-weighting filter of BS.1770-4 for any sample rate, shape ``(2, 6)``.

    Two biquads (``b0 b1 b2 a0 a1 a2`` rows, ``a0 == 1``): the high-shelf
    "head" filter and the RLB high-pass.  Derived from the analogue prototype
    (as libebur128 does), so at 48 kHz they equal the coefficients printed in
    the recommendation.
    """
    fs = float(sample_rate)
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / fs)
    vh = db_to_gain(gain_db)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / fs)
    a0 = 1.0 + k / q + k * k
    hp = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, hp], dtype=np.float64)


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770-4 channel weights ``G``: 1.0 for L, R, C; 1.41 for surrounds."""
    g = [1.0, 1.0, 1.0, 1.41, 1.41]
    if channels > len(g):
        return np.ones(channels, dtype=np.float64)
    return np.array(g[:channels], dtype=np.float64)


@njit(cache=True, nogil=True)
def _kweight_hops(x, sos, zi, weights, acc, count, hop, out):  # pragma: no cover - numba
    """K-weight ``x`` (C, n) and emit one weighted energy per completed hop.

    ``zi`` (C, 2, 2) float64 transposed-direct-form state of the two biquads;
    ``acc[0]`` energy of the hop in progress, ``count[0]`` its length so far;
    ``out`` receives the energies (sum over samples of sum_c G_c y_c^2) of the
    hops completed in this call; returns how many.
    """
    C = x.shape[0]
    n = x.shape[1]
    nout = 0
    for i in range(n):
        e = 0.0
        for c in range(C):
            v = np.float64(x[c, i])
            for s in range(2):
                y = sos[s, 0] * v + zi[c, s, 0]
                zi[c, s, 0] = sos[s, 1] * v - sos[s, 4] * y + zi[c, s, 1]
                zi[c, s, 1] = sos[s, 2] * v - sos[s, 5] * y
                v = y
            e += weights[c] * v * v
        acc[0] += e
        count[0] += 1
        if count[0] == hop:
            out[nout] = acc[0]
            nout += 1
            acc[0] = 0.0
            count[0] = 0
    return nout


class KWeightedHopEnergy:
    """K-weighted energy per 100 ms hop, streaming, chunk-size invariant.

    ``process(block (C, n))`` returns a float64 array with one entry per hop
    completed inside the block: ``sum_n sum_c G_c * y_c[n]**2`` over the hop's
    ``hop`` samples (``y`` the K-weighted signal).  Hops sit on absolute sample
    positions ``[k * hop, (k + 1) * hop)`` from the start of the stream.
    """

    def __init__(self, sample_rate: int = 44100, channels: int = 2, hop_s: float = 0.1):
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.hop = int(round(hop_s * self.sample_rate))
        self._sos = k_weighting_sos(self.sample_rate)
        self._weights = channel_weights(self.channels)
        self.reset()

    def reset(self) -> None:
        self._zi = np.zeros((self.channels, 2, 2), dtype=np.float64)
        self._acc = np.zeros(1, dtype=np.float64)
        self._count = np.zeros(1, dtype=np.int64)
        self.samples = 0  # samples consumed so far
        self.hops = 0  # hops completed so far

    @property
    def samples_to_next_hop(self) -> int:
        """Samples still needed to complete the hop in progress (1..hop)."""
        return self.hop - int(self._count[0])

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(block, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ValueError(f"expected a ({self.channels}, n) block, got shape {x.shape}")
        n = x.shape[1]
        out = np.empty(n // self.hop + 1, dtype=np.float64)
        k = _kweight_hops(x, self._sos, self._zi, self._weights, self._acc, self._count, self.hop, out)
        self.samples += n
        self.hops += k
        return out[:k]


# --------------------------------------------------------------------------
# Gated histogram
# --------------------------------------------------------------------------
def energy_to_lufs(mean_square: float | np.ndarray) -> float | np.ndarray:
    """Channel-weighted K-weighted mean square to LUFS (``-0.691 + 10 log10``)."""
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(mean_square)


def lufs_to_energy(lufs: float) -> float:
    """LUFS to channel-weighted K-weighted mean square."""
    return 10.0 ** ((lufs + 0.691) / 10.0)


class GatedHistogram:
    """Counts and exact energy sums of gating blocks in 0.01 LU bins.

    Blocks below the -70 LUFS absolute gate are not stored (they never count).
    """

    def __init__(self):
        self.counts = np.zeros(_HIST_BINS, dtype=np.int64)
        self.energy = np.zeros(_HIST_BINS, dtype=np.float64)  # sums of mean squares

    def add(self, mean_squares: np.ndarray) -> None:
        """Add blocks given as mean squares (float64 array)."""
        ms = np.asarray(mean_squares, dtype=np.float64)
        if ms.size == 0:
            return
        lufs = energy_to_lufs(np.maximum(ms, 1e-300))
        keep = lufs >= ABSOLUTE_GATE_LUFS
        if not np.any(keep):
            return
        idx = np.floor((lufs[keep] - _HIST_LO) / _HIST_RES).astype(np.int64)
        idx = np.clip(idx, 0, _HIST_BINS - 1)
        np.add.at(self.counts, idx, 1)
        np.add.at(self.energy, idx, ms[keep])

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def gated_mean(self, relative_gate_lu: float) -> tuple[float, np.ndarray]:
        """Mean square of blocks above both gates, and the selected-bin mask.

        Returns ``(0.0, mask)`` when no block passes the absolute gate.
        """
        n = self.counts.sum()
        if n == 0:
            return 0.0, np.zeros(_HIST_BINS, dtype=bool)
        threshold = float(energy_to_lufs(self.energy.sum() / n)) + relative_gate_lu
        nz = self.counts > 0
        # a bin counts when its blocks' mean loudness lies above the gate
        # (exact except for the single bin the threshold cuts through)
        bin_lufs = np.full(_HIST_BINS, -np.inf)
        bin_lufs[nz] = energy_to_lufs(self.energy[nz] / self.counts[nz])
        mask = nz & (bin_lufs > threshold)
        m = self.counts[mask].sum()
        if m == 0:
            return 0.0, mask
        return float(self.energy[mask].sum() / m), mask


# --------------------------------------------------------------------------
# The meter
# --------------------------------------------------------------------------
class StreamingLoudnessMeter:
    """ITU-R BS.1770-4 / EBU R128 loudness meter fed block by block.

    Parameters
    ----------
    sample_rate : Hz.
    channels : channel count of the blocks ``(channels, n)`` it is fed.

    A sink (:mod:`engine.stage`): ``update(block)`` consumes float32
    ``(channels, n)`` audio; then

    * :meth:`integrated_lufs` - gated integrated loudness so far (LUFS),
      :data:`SILENCE_LUFS` (``-inf``) when no 400 ms block passes -70 LUFS;
    * :meth:`momentary_lufs` - last 400 ms (LUFS);
    * :meth:`short_term_lufs` - last 3 s (LUFS);
    * :meth:`loudness_range_lu` - EBU Tech 3342 LRA (LU);
    * :attr:`duration_s` - seconds consumed.

    Momentary and short-term windows end at the last completed 100 ms hop and
    treat time before the stream as silence.  All values are updated on the
    100 ms grid of absolute positions, so they do not depend on block sizes.
    Memory is constant in the programme length.
    """

    BLOCK_HOPS = 4  # 400 ms gating block
    SHORT_TERM_HOPS = 30  # 3 s short-term window

    def __init__(self, sample_rate: int = 44100, channels: int = 2):
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self._hops = KWeightedHopEnergy(self.sample_rate, self.channels)
        self.hop = self._hops.hop
        self.reset()

    def reset(self) -> None:
        self._hops.reset()
        # last 30 hop energies, oldest first
        self._recent = np.zeros(self.SHORT_TERM_HOPS, dtype=np.float64)
        self._blocks = GatedHistogram()  # 400 ms gating blocks
        self._short = GatedHistogram()  # 3 s short-term blocks (LRA)
        self.last_block_lufs = SILENCE_LUFS
        self.last_hop_energies = np.zeros(0)  # what the last update completed (see update)

    # -- feeding -----------------------------------------------------------
    @property
    def hops_completed(self) -> int:
        """Number of completed 100 ms hops (the update grid)."""
        return self._hops.hops

    @property
    def samples_to_next_hop(self) -> int:
        return self._hops.samples_to_next_hop

    @property
    def duration_s(self) -> float:
        """Seconds of audio consumed."""
        return self._hops.samples / self.sample_rate

    def update(self, block: np.ndarray) -> None:
        """Consume ``block`` float32 ``(channels, n)``.  ``last_hop_energies`` is then the
        K-weighted energy of each 100 ms hop the block completed (:class:`KWeightedHopEnergy`)."""
        energies = self._hops.process(block)
        self.last_hop_energies = energies
        if energies.size == 0:
            return
        first = self._hops.hops - energies.size  # absolute index of energies[0]
        hist = np.concatenate([self._recent, energies])
        self._recent = hist[-self.SHORT_TERM_HOPS:].copy()
        # hop k completes gating block j = k - 3 (hops j..j+3) when k >= 3
        base = self.SHORT_TERM_HOPS  # position of energies[0] in hist
        ks = np.arange(first, first + energies.size)
        pos = base + np.arange(energies.size)
        bl = self.BLOCK_HOPS * self.hop
        full = ks >= self.BLOCK_HOPS - 1
        if np.any(full):
            p = pos[full]
            blocks = np.array([hist[q + 1 - self.BLOCK_HOPS:q + 1].sum() / bl for q in p])
            self._blocks.add(blocks)
            self.last_block_lufs = float(energy_to_lufs(max(blocks[-1], 0.0)))
        full = ks >= self.SHORT_TERM_HOPS - 1
        if np.any(full):
            sl = self.SHORT_TERM_HOPS * self.hop
            st = np.array([hist[q + 1 - self.SHORT_TERM_HOPS:q + 1].sum() / sl for q in pos[full]])
            self._short.add(st)

    # -- readings ----------------------------------------------------------
    def integrated_lufs(self) -> float:
        """Gated integrated loudness so far, LUFS (``-inf`` for silence)."""
        ms, _ = self._blocks.gated_mean(RELATIVE_GATE_LU)
        return float(energy_to_lufs(ms)) if ms > 0 else SILENCE_LUFS

    def gated_blocks(self) -> int:
        """Number of 400 ms blocks above the absolute gate so far."""
        return self._blocks.total

    def _window_lufs(self, hops: int) -> float:
        if self._hops.hops == 0:
            return SILENCE_LUFS
        e = self._recent[-hops:].sum() / (hops * self.hop)
        return float(energy_to_lufs(e)) if e > 0 else SILENCE_LUFS

    def momentary_lufs(self) -> float:
        """Loudness of the last 400 ms, LUFS (``-inf`` for silence)."""
        return self._window_lufs(self.BLOCK_HOPS)

    def short_term_lufs(self) -> float:
        """Loudness of the last 3 s, LUFS (``-inf`` for silence)."""
        return self._window_lufs(self.SHORT_TERM_HOPS)

    def loudness_range_lu(self) -> float:
        """Loudness range (EBU Tech 3342), LU.

        Short-term (3 s) values every 100 ms, absolute gate -70 LUFS, relative
        gate -20 LU, then the 95th minus the 10th percentile.  ``nan`` before
        3 s of non-silent audio.  Only complete 3 s windows count (the audio
        is not padded with silence at the end).
        """
        _, mask = self._short.gated_mean(LRA_RELATIVE_GATE_LU)
        counts = np.where(mask, self._short.counts, 0)
        n = counts.sum()
        if n == 0:
            return float("nan")
        centres = _HIST_LO + (np.arange(_HIST_BINS) + 0.5) * _HIST_RES
        cum = np.cumsum(counts)

        def pct(p: float) -> float:
            # linear-interpolated order statistic, as numpy.percentile
            r = p / 100.0 * (n - 1)
            lo, hi = int(math.floor(r)), int(math.ceil(r))
            vlo = centres[np.searchsorted(cum, lo + 1)]
            vhi = centres[np.searchsorted(cum, hi + 1)]
            return float(vlo + (vhi - vlo) * (r - lo))

        return pct(95.0) - pct(10.0)


class RunningLoudness:
    """Cheap gated running loudness (LUFS) of a stream, for gain riders.

    Every 100 ms hop (absolute grid) the last 400 ms block's K-weighted mean
    square updates an estimate when the block passes the -70 LUFS absolute
    gate and lies within ``relative_gate_lu`` of the current estimate, so
    pauses and quiet gaps do not drag it down.  The estimate is the plain mean
    of the accepted blocks until ``time_constant_s`` worth of them have been
    seen, then an exponential average with that time constant (energy
    domain), so it follows a long concert from song to song.
    ``lufs`` is ``-inf`` until a block has been accepted.
    """

    BLOCK_HOPS = 4

    def __init__(self, sample_rate: int = 44100, channels: int = 2, time_constant_s: float = 10.0,
                 relative_gate_lu: float = -20.0):
        self._hops = KWeightedHopEnergy(sample_rate, channels)
        self.hop = self._hops.hop
        self.hop_s = self.hop / float(sample_rate)
        self.time_constant_s = float(time_constant_s)
        self.relative_gate_lu = float(relative_gate_lu)
        self._w_tau = 1.0 - math.exp(-self.hop_s / self.time_constant_s)
        self.reset()

    def reset(self) -> None:
        self._hops.reset()
        self._recent = np.zeros(self.BLOCK_HOPS, dtype=np.float64)
        self._est = 0.0
        self.accepted = 0

    @property
    def hops_completed(self) -> int:
        return self._hops.hops

    def update(self, block: np.ndarray) -> None:
        """Consume ``(channels, n)`` (a sink, :mod:`engine.stage`)."""
        energies = self._hops.process(block)
        first = self._hops.hops - energies.size
        gate = lufs_to_energy(ABSOLUTE_GATE_LUFS)
        rel = 10.0 ** (self.relative_gate_lu / 10.0)
        bl = self.BLOCK_HOPS * self.hop
        for i, e in enumerate(energies):
            self._recent[:-1] = self._recent[1:]
            self._recent[-1] = e
            if first + i < self.BLOCK_HOPS - 1:
                continue
            ms = float(self._recent.sum()) / bl
            if ms < gate or (self.accepted and ms <= self._est * rel):
                continue
            self.accepted += 1
            w = max(1.0 / self.accepted, self._w_tau)
            self._est += w * (ms - self._est)

    @property
    def lufs(self) -> float:
        """Current estimate, LUFS (``-inf`` before any audible block)."""
        return float(energy_to_lufs(self._est)) if self.accepted and self._est > 0 else SILENCE_LUFS


def integrated_lufs(x: np.ndarray, sample_rate: int = 44100) -> float:
    """Integrated loudness of a whole ``(channels, n)`` array, LUFS (convenience)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    m = StreamingLoudnessMeter(sample_rate, x.shape[0])
    m.update(x)
    return m.integrated_lufs()


__all__: Sequence[str] = (
    "SILENCE_LUFS", "StreamingLoudnessMeter", "RunningLoudness", "KWeightedHopEnergy",
    "integrated_lufs", "k_weighting_sos", "energy_to_lufs", "lufs_to_energy",
)
