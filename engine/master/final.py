"""The exact final master: a few streaming passes over the stored, unmastered mix.

The mix lives in a file; :func:`final_master` reads it through a callable
that returns a fresh iterable of float32 ``(channels, n)`` blocks each time it
is called, so nothing ever holds the whole programme.

1. **Measure** (pass 1): integrated loudness (BS.1770-4) and true peak of
   the input.
2. **Choose a gain** ``target_lufs - input_lufs``, capped at
   ``max_gain_db`` (+30 dB by default) and at ``min_gain_db`` (-40 dB).
3. If the gained input's true peak stays under the ceiling the limiter will
   not act and the result is known exactly: go straight to the write pass.
   Otherwise **simulate** gain + :class:`~.limiter.TruePeakLimiter`,
   measuring the limited result's loudness (limiting lowers it), and correct
   the gain (secant steps through the two closest measurements, kept inside
   the bracket once the target is bracketed); at most ``max_iterations`` (4)
   simulated passes, stopping as soon as the output is within
   ``tolerance_lu`` (0.1 LU) of the target.  Typical material needs one or
   two; heavily limited, peaky material more.  The gain whose output came
   closest is kept, or, when the simulations ran out with the target
   bracketed, the next secant step inside the bracket (the write pass is
   then the last iteration; the report gives what it measured).
4. **Write** (last pass): the chosen gain + limiter, latency removed
   (:class:`~engine.stage.LatencyAligned`), each block handed to
   ``write_block``; output loudness and true peak are measured on the way.

The report says what happened (see :func:`final_master`).  Every pass runs
the same deterministic code, so the written output is exactly the one a
simulation measured.

**True peak that other meters confirm.**  BS.1770's 4x oversampled true peak
is an estimate: between its points the reconstructed waveform can rise a few
hundredths of a dB higher (0.06 dB measured on a drum-and-bass master at
44.1 kHz), and ffmpeg's ``ebur128=peak=true`` (which resamples to 192 kHz)
sees those peaks and prints its result rounded to 0.1 dB, so a master limited
to exactly -1.00 dBTP on the 4x grid read -0.9 dBTP there.  Dither and 16-bit
rounding move the peak by at most 1 LSB (0.0003 dB at -1 dBFS): negligible.
So the limiter here detects peaks on a ``true_peak_oversample`` (16x) grid,
whose between-point error is under 0.04 dB even for a full-scale 20 kHz tone,
and aims ``true_peak_margin_db`` (0.05 dB) under the ceiling: room for the
remaining difference between interpolation filters and the LSB of dither.
The report's ``output_true_peak_dbtp`` is the BS.1770 (4x) reading,
``output_true_peak_16x_dbtp`` the finer one.

``target_met`` says whether the master reached both the loudness target
(within 0.5 LU) and the ceiling; when not, ``target_unmet_reason`` says why
(silent input, a gain capped for a very quiet input, or the limiter unable to
reach the loudness under the ceiling).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..audio import SAMPLE_RATE, check_finite, db_to_gain
from ..background import SinkThread
from ..errors import InputError, SettingsError
from ..stage import LatencyAligned
from .config import CEILING_DBTP, TARGET_LUFS
from .limiter import TruePeakLimiter
from .loudness import SILENCE_LUFS, StreamingLoudnessMeter
from .true_peak import TruePeakMeter


@dataclass
class FinalMasterConfig:
    """Settings of :func:`final_master`.

    target_lufs : integrated loudness target, LUFS.
    ceiling_dbtp : true-peak ceiling, dBTP.
    lookahead_ms, release_ms : limiter look-ahead and release, ms.
    tolerance_lu : stop iterating when the output is this close to the target, LU.
    max_iterations : most simulated limiter passes before the write pass.
    max_gain_db / min_gain_db : bounds of the make-up gain, dB.
    silence_lufs : inputs quieter than this (LUFS) are left alone.
    true_peak_oversample : oversampling of the limiter's peak detector (and of
        the ``*_16x`` report values), 4..16.
    true_peak_margin_db : the limiter aims this far under the ceiling, dB.
    sample_rate : Hz.
    """

    target_lufs: float = -14.0
    ceiling_dbtp: float = -1.0
    lookahead_ms: float = 5.0
    release_ms: float = 80.0
    tolerance_lu: float = 0.1
    max_iterations: int = 4
    max_gain_db: float = 30.0
    min_gain_db: float = -40.0
    silence_lufs: float = -70.0
    true_peak_oversample: int = 16
    true_peak_margin_db: float = 0.05
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        TARGET_LUFS.check(self.target_lufs, "target_lufs")
        CEILING_DBTP.check(self.ceiling_dbtp, "ceiling_dbtp")
        if not (0.0 < self.tolerance_lu <= 3.0):
            raise SettingsError(f"tolerance_lu must be in (0, 3], got {self.tolerance_lu}")
        if not (0 <= int(self.max_iterations) <= 10):
            raise SettingsError(f"max_iterations must be 0..10, got {self.max_iterations}")
        if self.min_gain_db > 0 or self.max_gain_db < 0:
            raise SettingsError("min_gain_db must be <= 0 and max_gain_db >= 0")
        if not (4 <= int(self.true_peak_oversample) <= 16):
            raise SettingsError(f"true_peak_oversample must be 4..16, got {self.true_peak_oversample}")
        if not (0.0 <= self.true_peak_margin_db <= 1.0):
            raise SettingsError(f"true_peak_margin_db must be 0..1 dB, got {self.true_peak_margin_db}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "FinalMasterConfig":
        """Build from a plain dict; unknown keys raise SettingsError."""
        if d is None:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SettingsError(f"unknown master setting(s): {', '.join(map(str, unknown))}; "
                                f"known: {', '.join(sorted(known))}")
        try:
            return cls(**dict(d))
        except TypeError as e:  # pragma: no cover - defensive
            raise SettingsError(f"bad master settings: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


class _Pass:
    """One streaming pass of gain + limiter with meters on the output."""

    def __init__(self, cfg: FinalMasterConfig, channels: int, gain_db: float, true_peak: bool = True):
        self.gain = np.float32(db_to_gain(gain_db))
        self.limiter = TruePeakLimiter(cfg.ceiling_dbtp, cfg.lookahead_ms, cfg.release_ms,
                                       oversample=int(cfg.true_peak_oversample), margin_db=cfg.true_peak_margin_db,
                                       sample_rate=cfg.sample_rate, channels=channels)
        self.aligned = LatencyAligned(self.limiter)
        self.meter = StreamingLoudnessMeter(cfg.sample_rate, channels)
        self.peak = TruePeakMeter(channels) if true_peak else None
        self.fine_peak = TruePeakMeter(channels, int(cfg.true_peak_oversample)) if true_peak else None
        self.samples = 0
        # the write pass meters on a worker thread beside the limiter (the same blocks, in order)
        self._sink = SinkThread(self._measure, name="resonate-master-meters") if true_peak else self._measure

    def feed(self, block: np.ndarray) -> np.ndarray:
        y = self.aligned.process(block * self.gain)
        self._sink(y)
        return y

    def finish(self) -> np.ndarray:
        """The limiter's tail; every meter has consumed the whole output when this returns."""
        y = self.aligned.flush()
        self._sink(y)
        self.close()
        return y

    def close(self) -> None:
        if isinstance(self._sink, SinkThread):
            self._sink.close()

    def abort(self) -> None:
        """Stop the meters' worker (a no-op once :meth:`finish` returned)."""
        if isinstance(self._sink, SinkThread):
            self._sink.abort()

    def _measure(self, y: np.ndarray) -> None:
        if y.shape[1]:
            self.meter.update(y)
            if self.peak is not None:
                self.peak.update(y)
                self.fine_peak.update(y)
            self.samples += y.shape[1]


def _blocks(read_blocks: Callable[[], Iterable[np.ndarray]], channels: int | None):
    for b in read_blocks():
        b = np.asarray(b, dtype=np.float32)
        if b.ndim == 1:
            b = b[None, :]
        if b.ndim != 2 or (channels is not None and b.shape[0] != channels):
            raise InputError(f"stored mix block has shape {b.shape}, expected ({channels}, samples)")
        if b.shape[1]:
            yield np.ascontiguousarray(b)


def _next_gain(tried: list[tuple[float, float]], cfg: FinalMasterConfig) -> float | None:
    """Next gain to try (dB) from the ``(gain_db, output_lufs)`` pairs measured so far.

    A secant step through the two measurements closest to the target (slope
    clamped to [0.1, 1] LU/dB: limiting only ever gives back part of a gain
    increase; a single measurement assumes slope 1), at most 12 dB, kept
    inside the tightest bracket once the target is bracketed (false position
    there if the secant leaves it).  ``None`` when nothing better can be tried
    (already at a gain bound).
    """
    target = cfg.target_lufs
    g, out = tried[-1]
    if out < target and g >= cfg.max_gain_db:
        return None
    if out > target and g <= cfg.min_gain_db:
        return None
    ranked = sorted(tried, key=lambda t: abs(t[1] - target))
    g0, l0 = ranked[0]
    slope = 1.0
    for g1, l1 in ranked[1:]:
        if g1 != g0:
            slope = (l1 - l0) / (g1 - g0)
            break
    slope = min(1.0, max(0.1, slope))
    nxt = g0 + max(-12.0, min(12.0, (target - l0) / slope))
    below = [t for t in tried if t[1] < target]
    above = [t for t in tried if t[1] > target]
    if below and above:
        ga, la = max(below)  # loudest gain still under the target
        gb, lb = min(above)  # quietest gain already over it
        if ga < gb and not (ga < nxt < gb):
            nxt = ga + (target - la) * (gb - ga) / (lb - la) if lb > la else 0.5 * (ga + gb)
    return min(cfg.max_gain_db, max(cfg.min_gain_db, nxt))


def _bracketed(tried: list[tuple[float, float]], target: float) -> bool:
    return any(t[1] < target for t in tried) and any(t[1] > target for t in tried)


def final_master(read_blocks: Callable[[], Iterable[np.ndarray]], write_block: Callable[[np.ndarray], None],
                 config: FinalMasterConfig | None = None) -> dict[str, Any]:
    """Master the stored mix to the loudness target and true-peak ceiling.

    Parameters
    ----------
    read_blocks : called once per pass; returns a fresh iterable of float32
        ``(channels, n)`` blocks of the stored, unmastered mix (any sizes).
    write_block : receives the mastered float32 ``(channels, n)`` blocks, in
        order, sample-aligned with the input, same total length; called only
        during the last pass.
    config : :class:`FinalMasterConfig` (defaults: -14 LUFS, -1 dBTP).

    Returns
    -------
    dict with ``input_lufs``, ``input_true_peak_dbtp``, ``gain_db``,
    ``output_lufs``, ``output_true_peak_dbtp``, ``output_lra_lu``,
    ``limiter_max_reduction_db``, ``iterations`` (limiter passes, the write
    pass included), ``passes`` (reads of the input), ``target_lufs``,
    ``ceiling_dbtp``, ``target_met`` (output within 0.5 LU of the target and
    under the ceiling), ``target_unmet_reason`` (``None`` or a sentence),
    ``output_true_peak_16x_dbtp`` (the limiter's finer peak estimate),
    ``duration_s``, ``samples``, ``notes`` (list of sentences).  Loudness and
    peak values are ``None`` where undefined (silence).  Loudness is measured
    with this package's BS.1770-4 meter.
    """
    cfg = config if config is not None else FinalMasterConfig()
    notes: list[str] = []

    # -- pass 1: measure ---------------------------------------------------
    meter: StreamingLoudnessMeter | None = None
    peak: TruePeakMeter | None = None
    fine_peak: TruePeakMeter | None = None
    channels: int | None = None
    total = 0
    fine: SinkThread | None = None  # the 16x meter (the costliest) beside the others
    try:
        for b in _blocks(read_blocks, None):
            if channels is None:
                channels = b.shape[0]
                meter = StreamingLoudnessMeter(cfg.sample_rate, channels)
                peak = TruePeakMeter(channels)
                fine_peak = TruePeakMeter(channels, int(cfg.true_peak_oversample))
                fine = SinkThread(fine_peak.update, name="resonate-master-meters")
            elif b.shape[0] != channels:
                raise InputError(f"stored mix changes channel count mid-stream ({channels} -> {b.shape[0]})")
            check_finite(b, "stored mix")
            fine(b)
            meter.update(b)
            peak.update(b)
            total += b.shape[1]
        if fine is not None:
            fine.close()
    finally:
        if fine is not None:
            fine.abort()
    report: dict[str, Any] = {
        "target_lufs": cfg.target_lufs, "ceiling_dbtp": cfg.ceiling_dbtp, "samples": total,
        "duration_s": total / cfg.sample_rate, "passes": 1, "iterations": 0, "gain_db": 0.0,
        "input_lufs": None, "input_true_peak_dbtp": None, "output_lufs": None,
        "output_true_peak_dbtp": None, "output_true_peak_16x_dbtp": None, "output_lra_lu": None,
        "limiter_max_reduction_db": 0.0, "target_met": False, "target_unmet_reason": None, "notes": notes,
    }
    if total == 0:
        notes.append("The stored mix is empty: nothing was written.")
        report["target_unmet_reason"] = "The input is empty: there was nothing to master."
        return report
    in_lufs = meter.integrated_lufs()
    in_tp = max(peak.max_dbtp, fine_peak.max_dbtp)
    report["input_lufs"] = _finite_or_none(in_lufs)
    report["input_true_peak_dbtp"] = _finite_or_none(in_tp)

    # -- choose the first gain -------------------------------------------------
    unmet: str | None = None
    if not math.isfinite(in_lufs) or in_lufs < cfg.silence_lufs:
        gain = 0.0
        notes.append("The mix is silent (no audio above -70 LUFS): no gain was applied.")
        unmet = (f"The input is silent (below {cfg.silence_lufs:g} LUFS): it was left as it is, "
                 f"not brought to {cfg.target_lufs:g} LUFS.")
        plan_direct = True
    else:
        want = cfg.target_lufs - in_lufs
        gain = min(cfg.max_gain_db, max(cfg.min_gain_db, want))
        if gain < want:
            notes.append(f"The mix is very quiet ({in_lufs:.1f} LUFS): reaching {cfg.target_lufs:g} LUFS needs "
                         f"{want:+.1f} dB, gain capped at {cfg.max_gain_db:+.1f} dB.")
            unmet = (f"The input is too quiet ({in_lufs:.1f} LUFS): {cfg.target_lufs:g} LUFS needs {want:+.1f} dB "
                     f"of gain, more than the {cfg.max_gain_db:+.0f} dB allowed.")
        elif gain > want:
            notes.append(f"The mix is extremely loud ({in_lufs:.1f} LUFS): gain limited to {cfg.min_gain_db:+.1f} dB.")
        # the limiter leaves the audio untouched when the gained true peak is
        # under its target: then the output loudness is known exactly
        plan_direct = in_tp + gain <= cfg.ceiling_dbtp - cfg.true_peak_margin_db - 0.02

    # -- simulate and correct ---------------------------------------------------
    tried: list[tuple[float, float]] = []  # (gain_db, output_lufs)
    if not plan_direct:
        for _ in range(int(cfg.max_iterations)):
            p = _Pass(cfg, channels, gain, true_peak=False)
            n = 0
            for b in _blocks(read_blocks, channels):
                p.feed(b)
                n += b.shape[1]
            p.finish()
            report["passes"] += 1
            report["iterations"] += 1
            if n != total:
                raise InputError(f"the stored mix changed between passes ({total} then {n} samples)")
            out = p.meter.integrated_lufs()
            tried.append((gain, out))
            if abs(cfg.target_lufs - out) <= cfg.tolerance_lu:
                break
            nxt = _next_gain(tried, cfg)
            if nxt is None or abs(nxt - gain) < 1e-3:
                break
            gain = nxt
        if tried:
            best = min(tried, key=lambda t: abs(t[1] - cfg.target_lufs))
            gain = best[0]
            if abs(best[1] - cfg.target_lufs) > cfg.tolerance_lu and _bracketed(tried, cfg.target_lufs):
                # out of simulations but the target is bracketed: the write
                # pass itself is the last iteration (inside the bracket)
                gain = _next_gain(tried, cfg)

    # -- write -------------------------------------------------------------------
    p = _Pass(cfg, channels, gain)
    n = 0
    try:
        for b in _blocks(read_blocks, channels):
            write_block(p.feed(b))
            n += b.shape[1]
        tail = p.finish()
    finally:
        p.abort()
    if tail.shape[1]:
        write_block(tail)
    report["passes"] += 1
    report["iterations"] += 1
    if n != total:
        raise InputError(f"the stored mix changed between passes ({total} then {n} samples)")
    out_lufs = p.meter.integrated_lufs()
    out_tp = max(p.peak.max_dbtp, p.fine_peak.max_dbtp)
    report.update(
        gain_db=float(gain),
        output_lufs=_finite_or_none(out_lufs),
        output_true_peak_dbtp=_finite_or_none(p.peak.max_dbtp),
        output_true_peak_16x_dbtp=_finite_or_none(p.fine_peak.max_dbtp),
        output_lra_lu=_finite_or_none(p.meter.loudness_range_lu()),
        limiter_max_reduction_db=float(p.limiter.max_reduction_db),
    )
    if out_lufs != SILENCE_LUFS:
        if abs(out_lufs - cfg.target_lufs) > 0.5:
            notes.append(f"The target of {cfg.target_lufs:g} LUFS could not be reached under the "
                         f"{cfg.ceiling_dbtp:g} dBTP ceiling; the master measures {out_lufs:.1f} LUFS.")
            unmet = unmet or (f"The master measures {out_lufs:.1f} LUFS: {cfg.target_lufs:g} LUFS could not be "
                              f"reached under the {cfg.ceiling_dbtp:g} dBTP ceiling.")
        elif abs(out_lufs - cfg.target_lufs) > cfg.tolerance_lu:
            notes.append(f"The master measures {out_lufs:.2f} LUFS, the closest to {cfg.target_lufs:g} LUFS "
                         f"found in {report['iterations']} limiter passes.")
        if out_tp > cfg.ceiling_dbtp + 1e-6:
            unmet = unmet or (f"The master's true peak measures {out_tp:.2f} dBTP, over the "
                              f"{cfg.ceiling_dbtp:g} dBTP ceiling.")
    elif unmet is None:
        unmet = "The master is silent: there was no audio to bring to the target."
    report["target_met"] = unmet is None
    report["target_unmet_reason"] = unmet
    return report
