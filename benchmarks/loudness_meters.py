"""Loudness and true peak of a written file by two meters.

* :func:`ffmpeg_ebur128`: ffmpeg's ``ebur128=peak=true`` filter (an
  independent BS.1770 implementation; its true peak oversamples to 192 kHz
  with libswresample).  Values are the filter's summary as it prints it (one
  decimal).  ``None`` when ffmpeg is not installed (:func:`have_ffmpeg`).
* :func:`project_meter`: this project's own meter
  (:class:`engine.master.loudness.StreamingLoudnessMeter` and
  :func:`engine.master.true_peak.true_peak_dbtp`) on the file's samples at the
  file's own rate.

:func:`measure_file` returns both, labelled, so a table can say which meter a
figure comes from.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


_I = re.compile(r"Integrated loudness:\s*I:\s*(-?[\d.]+|-inf|nan) LUFS", re.S)
_TP = re.compile(r"True peak:\s*Peak:\s*(-?[\d.]+|-inf|nan) dBFS", re.S)


def parse_ebur128_summary(text: str) -> dict | None:
    """``{"lufs", "true_peak_dbtp"}`` from the ``Summary:`` that ``ebur128=peak=true``
    prints (the last one in ``text``), or ``None`` if there is none."""
    tail = text[text.rfind("Summary:"):] if "Summary:" in text else ""
    mi, mt = _I.search(tail), _TP.search(tail)
    if not (mi and mt):
        return None
    return {"lufs": float(mi.group(1)), "true_peak_dbtp": float(mt.group(1))}


_PEAK = re.compile(r"Peak level dB:\s*(-?[\d.]+|-inf)")


def _ffmpeg(path: str | Path, filters: str, timeout_s: float) -> str:
    cmd = [shutil.which("ffmpeg"), "-hide_banner", "-nostats", "-i", str(path), "-af", filters, "-f", "null", "-"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        raise RuntimeError(f"ffmpeg {filters} failed on {path}: {r.stderr[-400:]}")
    return r.stderr


def ffmpeg_ebur128(path: str | Path, timeout_s: float = 300.0) -> dict | None:
    """Integrated loudness (LUFS) and true peak (dBTP) of ``path`` by ffmpeg's
    ``ebur128=peak=true`` (one decimal, as it prints them), plus
    ``true_peak_192k_dbtp``: the peak of the file resampled to 192 kHz by
    libswresample (``aresample=192000,astats``), which is how ebur128 finds
    its true peak, to six decimals.  ``None`` when ffmpeg is missing; raises
    ``RuntimeError`` if ffmpeg fails."""
    if not have_ffmpeg():
        return None
    out = parse_ebur128_summary(_ffmpeg(path, "ebur128=peak=true", timeout_s))
    if out is None:
        raise RuntimeError(f"ffmpeg ebur128 printed no summary for {path}")
    m = _PEAK.findall(_ffmpeg(path, "aresample=192000,astats=measure_perchannel=none", timeout_s))
    out["true_peak_192k_dbtp"] = float(m[-1]) if m else None
    return out


def project_meter(path: str | Path) -> dict:
    """Integrated loudness and true peak of ``path`` by this project's meter."""
    import soundfile as sf

    from engine.master.loudness import StreamingLoudnessMeter
    from engine.master.true_peak import true_peak_dbtp

    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    x = np.ascontiguousarray(x.T.astype(np.float32))
    m = StreamingLoudnessMeter(sr, x.shape[0])
    m.update(x)
    return {"lufs": float(m.integrated_lufs()), "true_peak_dbtp": float(true_peak_dbtp(x))}


def measure_file(path: str | Path) -> dict:
    """``{"ffmpeg": {...} | None, "project": {...}}``: both meters on ``path``."""
    return {"ffmpeg": ffmpeg_ebur128(path), "project": project_meter(path)}
