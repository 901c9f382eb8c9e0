"""The stem mixer: stems in, one stereo mix out (zero latency, chunk-size invariant).

Per stem ``s`` the applied gain is ``auto_s + user_s`` dB (zero when muted):

* ``user_s`` = ``MixConfig.gains_db[s]`` (default 0 dB);
* ``auto_s`` (when ``auto_level``) places the stems at their relative targets
  ``MixConfig.targets_db`` (vocals 0, drums -3, bass -6, other -8 dB).  Each
  stem's loudness ``L_s`` is tracked by a gated running meter
  (:class:`~engine.master.loudness.RunningLoudness`, K-weighted 400 ms blocks
  every 100 ms, mean so far then a ``loudness_window_s`` exponential window,
  pauses gated out).  Among the *active* stems (running loudness at or above
  ``silence_lufs``, -60 LUFS) the reference is
  ``ref = mean_s(L_s - target_s)`` and the wanted gain is
  ``ref + target_s - L_s``, bounded to ``-max_auto_gain_db`` (12 dB) below and
  ``+max_auto_boost_db`` (4 dB) above: a stem far below its target is more
  often separation leakage than a real part, and raising it raises artefacts.  The
  wanted gains average 0 dB, so auto-levelling rebalances without making the
  mix louder or quieter overall.  Inactive (silent) stems get 0 dB: they are
  never boosted.  Muted stems still count for the reference, so muting one
  does not move the others.
* The auto gain moves towards the wanted gain on the 100 ms grid with a
  one-pole of ``smoothing_s`` (2 s) and at most ``max_rate_db_per_s`` (3 dB/s).
* All gains (auto, user, mute) change only at 100 ms grid points of absolute
  sample position and ramp linearly over the next 100 ms, so changing a
  setting mid-stream (:meth:`StemMixer.set_config`) never clicks and the
  output does not depend on block sizes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from .audio import CHANNELS, SAMPLE_RATE, STEM_NAMES, db_to_gain
from .config_fields import Flag, Number, StemMap, build, check_fields, setting
from .master._ride import grid_segments, ramp, smooth_step
from .master.loudness import RunningLoudness
from .stage import Stage

#: Relative loudness targets of the stems, dB (vocals on top).
DEFAULT_TARGETS_DB: dict[str, float] = {"vocals": 0.0, "drums": -3.0, "bass": -6.0, "other": -8.0}


def _default_targets() -> dict[str, float]:
    return dict(DEFAULT_TARGETS_DB)


@dataclass(frozen=True)
class MixConfig:
    """Settings of :class:`StemMixer`.

    targets_db : stem -> relative loudness target, dB (auto-level).  A stem
        missing here uses the ``other`` target.
    gains_db : stem -> user gain on top of auto-level, dB (default 0).
    mute : stem -> muted.
    auto_level : ride each stem's gain to its target.
    max_auto_gain_db : largest auto-level cut, dB.
    max_auto_boost_db : largest auto-level boost, dB (a quiet stem is more
        often leakage than a real part).
    max_rate_db_per_s : fastest auto-gain change, dB per second.
    smoothing_s : time constant of the auto-gain one-pole, s.
    loudness_window_s : time constant of each stem's running loudness, s.
    silence_lufs : a stem quieter than this (LUFS) is treated as silent.
    """

    targets_db: dict[str, float] = setting(StemMap(Number(-60.0, 60.0)), factory=_default_targets)
    gains_db: dict[str, float] = setting(StemMap(Number(-60.0, 60.0)), factory=dict)
    mute: dict[str, bool] = setting(StemMap(Flag()), factory=dict)
    auto_level: bool = setting(Flag(), True)
    max_auto_gain_db: float = setting(Number(0.0, 40.0), 12.0)
    max_auto_boost_db: float = setting(Number(0.0, 40.0), 4.0)
    max_rate_db_per_s: float = setting(Number(0.01, 100.0), 3.0)
    smoothing_s: float = setting(Number(0.0, 600.0), 2.0)
    loudness_window_s: float = setting(Number(0.5, 3600.0), 10.0)
    silence_lufs: float = setting(Number(-120.0, 0.0), -60.0)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~engine.errors.SettingsError` on a bad value (checks the maps again:
        they are mutable)."""
        check_fields(self, "mix")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, base: "MixConfig | None" = None) -> "MixConfig":
        """``base`` (default: the defaults above) updated by a plain dict (settings file,
        protocol); a partial ``targets_db`` / ``gains_db`` / ``mute`` updates the base's map;
        unknown keys raise SettingsError."""
        return build(cls, d, "mix", base)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (round-trips through :meth:`from_dict`)."""
        return asdict(self)

    def target_db(self, stem: str) -> float:
        return float(self.targets_db.get(stem, self.targets_db.get("other", DEFAULT_TARGETS_DB["other"])))


class StemMixer(Stage):
    """Mix a dict of stems into one ``(channels, n)`` block, zero latency.

    A :class:`~engine.stage.Stage` whose block is a mapping of stems:
    ``process(stems)`` takes ``{name: float32 (channels, n)}`` (every stem the
    same ``n``; the set of stems is fixed by the first call) and returns the
    float32 ``(channels, n)`` mix.  ``flush()`` returns an empty block
    (``latency == 0``).  See the module docstring for the gain law.
    """

    name = "stem_mixer"
    latency = 0

    def __init__(self, config: MixConfig | None = None, sample_rate: int = SAMPLE_RATE,
                 channels: int = CHANNELS):
        self.config = config if config is not None else MixConfig()
        self.config.validate()
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.hop = int(round(0.1 * self.sample_rate))
        self.hop_s = self.hop / self.sample_rate
        self.reset()

    def reset(self) -> None:
        self._stems: tuple[str, ...] | None = None
        self._meters: dict[str, RunningLoudness] = {}
        self._auto_db: dict[str, float] = {}
        self._g_prev: dict[str, float] = {}  # linear gain at the start of the current hop
        self._g_next: dict[str, float] = {}  # linear gain at its end
        self.samples = 0

    def set_config(self, config: MixConfig) -> None:
        """Change settings mid-stream; takes effect at the next 100 ms grid point."""
        config.validate()
        self.config = config

    # -- gains ---------------------------------------------------------------
    def _total_db(self, stem: str) -> float:
        if self.config.mute.get(stem, False):
            return float("-inf")
        return self._auto_db[stem] + float(self.config.gains_db.get(stem, 0.0))

    def _start(self, names) -> None:
        # a canonical order, so the float sum does not depend on the dict's order
        known = [s for s in STEM_NAMES if s in names]
        self._stems = tuple(known + sorted(set(names) - set(known)))
        for s in self._stems:
            self._meters[s] = RunningLoudness(self.sample_rate, self.channels, self.config.loudness_window_s)
            self._auto_db[s] = 0.0
            g = db_to_gain(self._total_db(s))
            self._g_prev[s] = self._g_next[s] = g

    def _wanted_auto_db(self) -> dict[str, float]:
        cfg = self.config
        wanted = {s: 0.0 for s in self._stems}
        if not cfg.auto_level:
            return wanted
        loud = {s: self._meters[s].lufs for s in self._stems}
        active = [s for s in self._stems if loud[s] >= cfg.silence_lufs]
        if len(active) < 2:
            return wanted
        ref = sum(loud[s] - cfg.target_db(s) for s in active) / len(active)
        for s in active:
            w = ref + cfg.target_db(s) - loud[s]
            wanted[s] = max(-cfg.max_auto_gain_db, min(cfg.max_auto_gain_db, cfg.max_auto_boost_db, w))
        return wanted

    def _grid_update(self) -> None:
        cfg = self.config
        wanted = self._wanted_auto_db()
        for s in self._stems:
            self._auto_db[s] = smooth_step(self._auto_db[s], wanted[s], self.hop_s, cfg.smoothing_s,
                                           cfg.max_rate_db_per_s)
            self._g_prev[s] = self._g_next[s]
            self._g_next[s] = db_to_gain(self._total_db(s))

    # -- streaming -----------------------------------------------------------
    def process(self, stems: Mapping[str, np.ndarray]) -> np.ndarray:
        """Mix ``stems`` ``{name: (channels, n)}`` into float32 ``(channels, n)``."""
        if not stems:
            raise ValueError("StemMixer.process needs at least one stem")
        if self._stems is None:
            self._start(stems.keys())
        if set(stems) != set(self._stems):
            raise ValueError(f"stem set changed mid-stream: expected {sorted(self._stems)}, got {sorted(stems)}")
        blocks = {s: np.ascontiguousarray(stems[s], dtype=np.float32) for s in self._stems}
        n = blocks[self._stems[0]].shape[-1]
        for s, b in blocks.items():
            if b.shape != (self.channels, n):
                raise ValueError(f"stem {s!r} has shape {b.shape}, expected ({self.channels}, {n})")
        out = np.zeros((self.channels, n), dtype=np.float32)
        for a, b, off, ends in grid_segments(self.samples, n, self.hop):
            for s in self._stems:
                g0, g1 = self._g_prev[s], self._g_next[s]
                if g0 == 0.0 and g1 == 0.0:
                    continue
                out[:, a:b] += blocks[s][:, a:b] * ramp(g0, g1, off, b - a, self.hop)
            if self.config.auto_level:  # the stems' loudness only steers the auto-level
                for s in self._stems:
                    self._meters[s].update(blocks[s][:, a:b])
            if ends:
                self._grid_update()
        self.samples += n
        return out

    # -- report ----------------------------------------------------------------
    def stem_gains_db(self) -> dict[str, float]:
        """Gain now applied to each stem, dB (auto + user; ``-inf`` when muted)."""
        if self._stems is None:
            return {s: (float("-inf") if self.config.mute.get(s, False) else float(self.config.gains_db.get(s, 0.0)))
                    for s in STEM_NAMES}
        return {s: float(self._total_db(s)) for s in self._stems}

    def converged_mix(self, stems: Mapping[str, np.ndarray]) -> np.ndarray:
        """``stems`` (the block just mixed by :meth:`process`) mixed with the gains the auto-level
        wants now instead of the gliding ones: what the mix will sound like once the gains have
        settled.  The preview master compares its loudness with the real mix's (the auto gains
        glide from 0 dB over the first seconds, up to 3 dB of level on the benchmark)."""
        n = next(iter(stems.values())).shape[-1]
        out = np.zeros((self.channels, n), dtype=np.float32)
        if self._stems is None:
            return out
        wanted = self._wanted_auto_db()
        for s in self._stems:
            if self.config.mute.get(s, False):
                continue
            g = db_to_gain(wanted[s] + float(self.config.gains_db.get(s, 0.0)))
            out += np.asarray(stems[s], dtype=np.float32) * np.float32(g)
        return out

    def auto_gains_db(self) -> dict[str, float]:
        """The auto-level part of each stem's gain, dB."""
        return dict(self._auto_db)
