"""Streamed preview master: ride a running loudness estimate, then true-peak limit.

The preview cannot know the loudness of the whole concert, so it rides the
*integrated loudness so far* of its input (BS.1770-4 gated, from a
:class:`~.loudness.StreamingLoudnessMeter`): the same quantity the exact final
master (:mod:`.final`) will use once the stream ends, so the preview
converges to roughly the final master's gain.

* The wanted gain ``target_lufs - integrated_so_far`` is re-evaluated on the
  100 ms grid of absolute sample positions, once at least ``min_measure_s``
  (default 1 s) of audible material has been measured; until then the gain
  stays at ``initial_gain_db`` (default 0 dB).  Silence so far keeps the
  current gain.
* **Primed start** (``prior``, a :class:`PreviewPrior` the runner measures on
  the input's first seconds before the stream starts: their integrated
  loudness and K-weighted energy per 100 ms hop).  The restoration changes
  the level (noise removed, EQ, stem gains: the mix measured 2-6 dB quieter
  than the input on the benchmark), so the preview learns that offset on the
  fly: after each hop of mix it compares the mix's K-weighted energy so far
  with the input's over the same hops, and expects the mix to be
  ``prior.integrated_lufs + offset``.  The gain starts at ``target_lufs -
  prior.integrated_lufs`` on the first sample, follows the estimate without
  smoothing for the first ``fast_s`` (0.5 s, still ramped per hop), and the
  estimate is blended with the measured loudness, ``(prior_s * expected +
  measured_s * integrated_so_far) / (prior_s + measured_s)`` (``prior_s``
  3 s), so the measurement takes over as the stream goes on.  Without a prior
  the preview started +4.5..+6.5 dB too loud on the benchmark's phone
  recordings (0 dB gain for the first second, then a 1.5 s glide).
* The gain moves towards the wanted gain with a one-pole of ``smoothing_s``
  (default 1.5 s) at no more than ``max_rate_db_per_s`` (default 6 dB/s),
  bounded to ``[min_gain_db, max_gain_db]`` (default -24..+24 dB), and is
  ramped linearly across each 100 ms hop: chunk-size invariant, no clicks.
* **Level still to come** (:meth:`PreviewMaster.expect_change`): the stem mixer's
  auto-level gains glide from 0 dB to their targets over the first seconds, so the mix of the
  first seconds is louder (or quieter) than the rest: up to 3 dB on the benchmark, the main
  reason the preview was 1-3.6 LU off the final master in its first seconds.  The job's mix
  lane tells the preview, with every block, how much the mix level will still change
  (:class:`LevelDrift` of the mix and :meth:`~engine.mix.StemMixer.converged_mix`: the same
  stems at the gains the auto-level wants), and the estimate includes it.
* Then a :class:`~.limiter.TruePeakLimiter` (ceiling ``ceiling_dbtp``).

The gain stage has no latency; :attr:`PreviewMaster.latency` is the
limiter's look-ahead (220 samples at 5 ms / 44.1 kHz).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE, db_to_gain
from ..errors import SettingsError
from ..stage import Stage
from ._ride import grid_segments, ramp, smooth_step
from .config import CEILING_DBTP, TARGET_LUFS
from .limiter import TruePeakLimiter
from .loudness import KWeightedHopEnergy, StreamingLoudnessMeter


@dataclass(frozen=True)
class PreviewPrior:
    """The input's first seconds, measured before the stream starts.

    ``integrated_lufs``: their BS.1770 integrated loudness (``None`` when silent);
    ``hop_energies``: K-weighted energy of each complete 100 ms hop (as
    :class:`~.loudness.KWeightedHopEnergy` gives it), from the stream's start.
    """

    integrated_lufs: float | None
    hop_energies: tuple[float, ...] = ()

    @classmethod
    def measure(cls, blocks: Iterable[np.ndarray], sample_rate: int = SAMPLE_RATE,
                channels: int = CHANNELS) -> "PreviewPrior":
        """Measure the head of the input (float32 ``(channels, n)`` blocks)."""
        meter = StreamingLoudnessMeter(sample_rate, channels)
        energies: list[float] = []
        for b in blocks:
            meter.update(b)
            energies.extend(meter.last_hop_energies.tolist())
        lufs = meter.integrated_lufs()
        return cls(float(lufs) if math.isfinite(lufs) else None, tuple(energies))


class LevelDrift:
    """How much louder (dB) a mix will be once the stages before the master have settled.

    ``update(mix, settled)`` takes the real mix block and the same block as it will sound once
    settled (e.g. :meth:`~engine.mix.StemMixer.converged_mix`), both ``(channels, n)``; ``db``
    is the K-weighted energy ratio of all ``settled`` hops so far over the real ones (0 dB
    while silent).  Chunk-size invariant (absolute 100 ms hops).
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, channels: int = CHANNELS):
        self._real = KWeightedHopEnergy(sample_rate, channels)
        self._settled = KWeightedHopEnergy(sample_rate, channels)
        self.reset()

    def reset(self) -> None:
        self._real.reset()
        self._settled.reset()
        self._sums = [0.0, 0.0]
        self.db = 0.0

    def update(self, mix: np.ndarray, settled: np.ndarray) -> float:
        self._sums[0] += float(np.sum(self._real.process(mix)))
        self._sums[1] += float(np.sum(self._settled.process(settled)))
        if self._sums[0] > 1e-9 and self._sums[1] > 1e-9:
            self.db = 10.0 * math.log10(self._sums[1] / self._sums[0])
        return self.db


class PreviewMaster(Stage):
    """Loudness-riding master for the streamed preview (a :class:`Stage`).

    Parameters (units in the names): ``target_lufs``, ``ceiling_dbtp``,
    ``lookahead_ms`` / ``release_ms`` of the limiter, ``max_gain_db`` /
    ``min_gain_db`` bounds of the riding gain, ``max_rate_db_per_s``,
    ``smoothing_s``, ``initial_gain_db``, ``min_measure_s``, ``sample_rate``
    (Hz), ``channels``; ``prior`` (:class:`PreviewPrior`, ``None`` = unknown:
    start at ``initial_gain_db``), ``prior_s`` (seconds of measured material
    the prior counts as) and ``fast_s``, see the module notes.

    ``process(block (channels, n))`` returns float32 ``(channels, n)`` delayed
    by :attr:`latency` samples; ``flush()`` the last ``latency`` samples.
    """

    name = "preview_master"

    def __init__(self, target_lufs: float = -14.0, ceiling_dbtp: float = -1.0, lookahead_ms: float = 5.0,
                 release_ms: float = 80.0, max_gain_db: float = 24.0, min_gain_db: float = -24.0,
                 max_rate_db_per_s: float = 6.0, smoothing_s: float = 1.5, initial_gain_db: float = 0.0,
                 min_measure_s: float = 1.0, sample_rate: int = SAMPLE_RATE, channels: int = CHANNELS,
                 prior: PreviewPrior | None = None, prior_s: float = 3.0, fast_s: float = 0.5):
        TARGET_LUFS.check(target_lufs, "target_lufs")
        CEILING_DBTP.check(ceiling_dbtp, "ceiling_dbtp")
        if min_gain_db > max_gain_db:
            raise SettingsError("min_gain_db must not exceed max_gain_db")
        self.target_lufs = float(target_lufs)
        self.max_gain_db = float(max_gain_db)
        self.min_gain_db = float(min_gain_db)
        self.max_rate_db_per_s = float(max_rate_db_per_s)
        self.smoothing_s = float(smoothing_s)
        if prior_s <= 0:
            raise SettingsError(f"prior_s must be positive, got {prior_s}")
        primed = prior is not None and prior.integrated_lufs is not None and math.isfinite(prior.integrated_lufs)
        self.prior = prior if primed else None
        self.prior_s = float(prior_s)
        self.fast_s = float(fast_s)
        start = self.target_lufs - prior.integrated_lufs if primed else initial_gain_db
        self.initial_gain_db = float(min(max(start, min_gain_db), max_gain_db))
        self.min_measure_s = float(min_measure_s)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.limiter = TruePeakLimiter(ceiling_dbtp, lookahead_ms, release_ms, sample_rate=self.sample_rate,
                                       channels=self.channels)
        self.latency = self.limiter.latency
        self.hop = int(round(0.1 * self.sample_rate))
        self.hop_s = self.hop / self.sample_rate
        self.reset()

    def reset(self) -> None:
        self.meter = StreamingLoudnessMeter(self.sample_rate, self.channels)
        self.limiter.reset()
        self.gain_db = self.initial_gain_db  # gain reached at the end of the current hop
        self._g_prev = self._g_next = db_to_gain(self.gain_db)
        self.samples = 0
        self._hop_index = 0  # hops of mix measured
        self._mix_sum = self._in_sum = 0.0
        self.offset_db = 0.0  # mix loudness minus input loudness over the same hops
        self.pending_db = 0.0  # level change of the mix still to come (see expect_change)

    def expect_change(self, db: float) -> None:
        """The mix will become ``db`` louder once the stages before this one have settled (the
        stem mixer's auto-level glide, measured by :class:`LevelDrift`); the
        loudness estimate includes it from the next 100 ms grid point on."""
        self.pending_db = float(db) if math.isfinite(db) else 0.0

    @property
    def input_lufs(self) -> float:
        """Integrated loudness of the input so far, LUFS (``-inf`` while silent)."""
        return self.meter.integrated_lufs()

    def _loudness_estimate(self) -> float:
        """Loudness the gain rides (LUFS; ``-inf`` = nothing to go on yet)."""
        measured_s = self.meter.gated_blocks() * 0.1 + 0.3 if self.meter.gated_blocks() else 0.0
        loud = self.meter.integrated_lufs() if measured_s >= self.min_measure_s else float("-inf")
        if self.prior is None:
            return loud + self.pending_db
        expected = self.prior.integrated_lufs + self.offset_db
        if loud == float("-inf"):
            return expected + self.pending_db
        return (self.prior_s * expected + measured_s * loud) / (self.prior_s + measured_s) + self.pending_db

    def _learn_offset(self, mix_energies: np.ndarray) -> None:
        """Compare the mix's hop energies with the input's over the same hops."""
        head = self.prior.hop_energies if self.prior is not None else ()
        for e in mix_energies:
            if self._hop_index < len(head):
                self._mix_sum += float(e)
                self._in_sum += float(head[self._hop_index])
                if self._mix_sum > 1e-12 * self.hop and self._in_sum > 1e-12 * self.hop:
                    self.offset_db = 10.0 * math.log10(self._mix_sum / self._in_sum)
            self._hop_index += 1

    def _grid_update(self) -> None:
        wanted = self.gain_db
        loud = self._loudness_estimate()
        if loud != float("-inf"):
            wanted = min(self.max_gain_db, max(self.min_gain_db, self.target_lufs - loud))
        if self.prior is not None and self._hop_index * self.hop_s <= self.fast_s:
            self.gain_db = wanted  # still ramped across the next hop
        else:
            self.gain_db = smooth_step(self.gain_db, wanted, self.hop_s, self.smoothing_s, self.max_rate_db_per_s)
        self._g_prev, self._g_next = self._g_next, db_to_gain(self.gain_db)

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(block, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ValueError(f"{self.name}: expected a ({self.channels}, n) block, got shape {x.shape}")
        y = np.empty_like(x)
        for a, b, off, ends in grid_segments(self.samples, x.shape[1], self.hop):
            y[:, a:b] = x[:, a:b] * ramp(self._g_prev, self._g_next, off, b - a, self.hop)
            self.meter.update(x[:, a:b])
            if self.prior is not None:
                self._learn_offset(self.meter.last_hop_energies)  # the meter's K-weighted hops
            if ends:
                self._grid_update()
        self.samples += x.shape[1]
        return self.limiter.process(y)

    def flush(self) -> np.ndarray:
        """End of stream: the limiter's last ``latency`` samples."""
        return self.limiter.flush()
