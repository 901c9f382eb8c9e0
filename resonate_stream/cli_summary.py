"""What the CLI prints for people: outcome lines, before/after summaries, tables.

Pure functions from report dicts (as ``runner.run_job`` builds them) or
metric dicts (``engine.analysis.metrics``) to lines of text; no I/O.
"""
from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Iterable

#: below this integrated loudness BS.1770 gating treats the programme as silence
SILENCE_GATE_LUFS = -70.0


def _num(v: Any, spec: str = ".1f", unit: str = "") -> str:
    """A number for people: ``n/a`` for None/NaN, tiny values with significant digits."""
    if v is None or isinstance(v, bool):
        return "n/a" if v is None else ("yes" if v else "no")
    if isinstance(v, (int, float)) and not (isinstance(v, float) and not math.isfinite(v)):
        if isinstance(v, float) and v != 0.0 and abs(v) < 0.01 and spec.endswith("f"):
            text = f"{v:.3g}"  # 7.07e-05, not 0.00
        else:
            text = f"{v:{spec}}"
        return f"{text}{unit}" if unit.startswith("/") else f"{text} {unit}".rstrip()
    if isinstance(v, float):
        return "n/a"
    return str(v)


def _silent(report: dict) -> bool:
    m = report.get("master") or {}
    lufs = m.get("input_lufs")
    return lufs is None or lufs < SILENCE_GATE_LUFS


def outcome_line(report: dict, master_path: Any) -> str:
    """The last line of ``resonate process``: what was written and whether the loudness target was met."""
    m = report.get("master") or {}
    sep = report.get("separation") or {}
    how = f"separator: {sep.get('separator', '?')}" + (", cached stems" if sep.get("cache") == "hit" else "")
    if (report.get("made_by") or {}).get("generative"):  # a generated/polished file says so on its last line
        how += f"; {report['made_by']['summary']}"
    target = m.get("target_lufs")
    if _silent(report):
        return (f"wrote {master_path}: the input is silent or below the {SILENCE_GATE_LUFS:.0f} LUFS gate, "
                f"so it was written at its own level (loudness target not applied; {how})")
    lufs, tp = _num(m.get("output_lufs"), ".1f", "LUFS"), _num(m.get("output_true_peak_dbtp"), ".1f", "dBTP")
    if m.get("target_met"):
        return f"wrote {master_path}  ({lufs}, {tp}; {how})"
    before = report.get("metrics_before") or {}
    why = ""
    if not (before.get("bandwidth_high_hz") or 0) > 0:
        why = " - the input has no audible band (a constant DC offset or a sub-audio signal)"
    elif m.get("target_unmet_reason"):
        why = f" - {m['target_unmet_reason']}"
    return (f"wrote {master_path}, but the loudness target was NOT met: {lufs} (target {_num(target, '.1f')}), "
            f"{tp}; {how}{why}")


#: (label, metrics key or None for the band, format, unit); higher is better for each
_BEFORE_AFTER = (
    ("SNR", "snr_db", ".1f", "dB"),
    ("bandwidth", None, "", "Hz"),
    ("quality score", "quality_score", ".0f", "/100"),
)


def before_after_lines(report: dict) -> list[str]:
    """A short before/after table (loudness, true peak, SNR, bandwidth, quality) and what got worse."""
    before, after = report.get("metrics_before") or {}, report.get("metrics_after") or {}
    m = report.get("master") or {}
    rows: list[tuple[str, str, str, bool]] = []
    worse: list[str] = []
    target = m.get("target_lufs")
    lb, la = before.get("integrated_lufs"), m.get("output_lufs", after.get("integrated_lufs"))
    rows.append(("loudness", _num(lb, ".1f", "LUFS"), _num(la, ".1f", "LUFS"), False))
    rows.append(("true peak", _num(m.get("input_true_peak_dbtp"), ".1f", "dBTP"),
                 _num(m.get("output_true_peak_dbtp"), ".1f", "dBTP"), False))
    for label, key, spec, unit in _BEFORE_AFTER:
        if key is None:
            b, a = _band(before), _band(after)
            got_worse = _band_worse(before, after)
            rows.append((label, b, a, got_worse))
            if got_worse:
                worse.append(f"bandwidth ({b} -> {a})")
            continue
        vb, va = before.get(key), after.get(key)
        tol = 0.5 if key == "snr_db" else 1.0
        got_worse = vb is not None and va is not None and va < vb - tol
        rows.append((label, _num(vb, spec, unit), _num(va, spec, unit), got_worse))
        if got_worse:
            worse.append(f"{label} ({_num(vb, spec, unit)} -> {_num(va, spec, unit)})")
    if target is not None and lb is not None and la is not None and abs(la - target) > abs(lb - target) + 0.5:
        worse.append(f"loudness is further from the {target:g} LUFS target ({lb:.1f} -> {la:.1f} LUFS)")
    width = max(len(r[1]) for r in rows)
    lines = [f"  {'':<13} {'before':>{width}}    after"]
    lines += [f"  {label:<13} {b:>{width}} -> {a}{'   (worse)' if w else ''}" for label, b, a, w in rows]
    if worse:
        lines.append("got worse: " + "; ".join(worse))
    return lines


def _band(m: dict) -> str:
    lo, hi = m.get("bandwidth_low_hz"), m.get("bandwidth_high_hz")
    if lo is None or hi is None or hi <= 0:
        return "n/a"
    return f"{lo:.0f}-{hi:.0f} Hz"


def _band_worse(before: dict, after: dict) -> bool:
    try:
        if not before["bandwidth_high_hz"] > 0:  # no band measured before (silence, DC)
            return False
        return (after["bandwidth_high_hz"] < 0.95 * before["bandwidth_high_hz"]
                or after["bandwidth_low_hz"] > 1.05 * before["bandwidth_low_hz"] + 5.0)
    except (KeyError, TypeError):
        return False


# --------------------------------------------------------------------------- info

#: metrics key -> (label, format, unit)
_INFO_ROWS = {
    "duration_s": ("duration", ".2f", "s"),
    "sample_rate": ("analysis rate", "d", "Hz"),
    "channels": ("analysis channels", "d", ""),
    "source_sample_rate": ("file sample rate", "d", "Hz"),
    "source_channels": ("file channels", "d", ""),
    "integrated_lufs": ("loudness", ".1f", "LUFS"),
    "loudness_range_lu": ("loudness range", ".1f", "LU"),
    "peak_dbfs": ("sample peak", ".2f", "dBFS"),
    "dynamic_range_db": ("dynamic range", ".1f", "dB"),
    "snr_db": ("SNR", ".1f", "dB"),
    "bandwidth_low_hz": ("bandwidth low", ".0f", "Hz"),
    "bandwidth_high_hz": ("bandwidth high", ".0f", "Hz"),
    "spectral_centroid_hz": ("spectral centroid", ".0f", "Hz"),
    "spectral_flatness": ("spectral flatness", ".3f", "(0-1)"),
    "clipping_ratio": ("clipped samples", ".3g", "(fraction)"),
    "flat_run_ratio": ("flat runs", ".3g", "(fraction)"),
    "metallic": ("metallic artefacts", ".3f", "(0-1)"),
    "robotic": ("robotic artefacts", ".3f", "(0-1)"),
    "reverb_rt60_s": ("reverb RT60", ".2f", "s"),
    "quality_score": ("quality score", ".1f", "/100"),
}


def info_table(data: dict) -> list[str]:
    """``resonate info`` as aligned ``label  value unit`` lines (every key of ``data`` shown)."""
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows.append((key.replace("_", " "), ""))
            rows += [(f"  {str(k).replace('_', ' ')}", _num(v, ".2f")) for k, v in value.items()]
            continue
        label, spec, unit = _INFO_ROWS.get(key, (key.replace("_", " "), ".4g", ""))
        if value is None and key == "reverb_rt60_s":
            rows.append((label, "not measured"))
        elif isinstance(value, int) and not isinstance(value, bool) and spec.endswith("f"):
            rows.append((label, _num(float(value), spec, unit)))
        else:
            rows.append((label, _num(value, spec if isinstance(value, (int, float)) else "", unit)))
    width = max(len(r[0]) for r in rows) if rows else 0
    return [f"{label:<{width}}  {value}".rstrip() for label, value in rows]


# --------------------------------------------------------------------------- cache


def _date(ts: float | None) -> str:
    if not ts:
        return "n/a"
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def cache_table(entries: Iterable, limit_bytes: int | None = None) -> list[str]:
    """``resonate cache ls``: one row per entry (newest use first), a total, a warning past the limit."""
    entries = sorted(entries, key=lambda e: e.last_used, reverse=True)
    if not entries:
        return ["the stem cache is empty"]
    header = ("key", "input", "audio", "size", "created", "last used")
    rows = []
    for e in entries:
        seconds = e.frames / e.sample_rate if e.sample_rate else 0.0
        rows.append((e.key[:12], str((e.params or {}).get("input", e.operation)), f"{seconds:.1f} s",
                     f"{e.size_bytes / 1e6:.1f} MB", _date(e.created), _date(e.last_used)))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    total = sum(e.size_bytes for e in entries)
    lines = [fmt(header), *(fmt(r) for r in rows), f"{len(entries)} entries, {total / 1e6:.1f} MB"]
    if limit_bytes is not None and total > limit_bytes:
        lines.append(f"warning: the cache holds more than its {limit_bytes / 1024 ** 3:.0f} GiB limit; the oldest "
                     "entries are removed after the next job (or run: resonate cache clear --older-than DAYS)")
    return lines
