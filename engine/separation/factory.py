"""Choose and build a separator: Demucs when its weights exist, DSP otherwise."""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelUnavailableError, SettingsError
from .base import Separator
from .demucs_separator import (DEFAULT_MODEL, DemucsSeparator, demucs_quality_params,
                               device_notes, load_demucs_model, resolve_device)
from .dsp_separator import DspSeparator

SEPARATOR_KINDS = ("auto", "demucs", "dsp")
_DSP_OVERLAP = {"preview": 0.1, "render": 0.25}


def build_separator(kind: str = "auto", model: str = DEFAULT_MODEL, repo: Path | str | None = None,
                    device: str = "cpu", quality: str = "preview", *,
                    segment: float | None = None, overlap: float | None = None,
                    shifts: int | None = None, threads: int | None = None,
                    offline: bool | None = None) -> tuple[Separator, list[str]]:
    """Build the separator a job asked for.

    Args:
        kind: ``auto`` (Demucs if its weights load, else DSP with a note),
            ``demucs`` (Demucs or :class:`ModelUnavailableError`), ``dsp``.
        model: Demucs model name (``htdemucs``, ``htdemucs_ft``, ...).
        repo: local Demucs model folder (default ``$RESONATE_MODEL_REPO``,
            then the download caches).
        device: ``auto``, ``cpu``, ``cuda[:N]`` or ``mps`` (Demucs only; the
            DSP separator runs on the CPU).
        quality: ``preview`` or ``render`` (see :func:`demucs_quality_params`).
        segment, overlap, shifts: override the quality preset (segment in
            seconds; ``None`` keeps the preset / model default).
        threads: torch CPU threads for Demucs (process-wide), ``None`` leaves it.
        offline: passed to :func:`load_demucs_model`.

    Returns ``(separator, notes)``; ``notes`` are user-facing lines (fallback,
    device hints) for the job report.
    """
    if kind not in SEPARATOR_KINDS:
        raise SettingsError(f"unknown separator {kind!r}; use one of {', '.join(SEPARATOR_KINDS)}")
    params = demucs_quality_params(quality)  # validates quality
    notes: list[str] = []
    if kind in ("auto", "demucs"):
        if segment is not None:
            params["segment"] = segment
        if overlap is not None:
            params["overlap"] = overlap
        if shifts is not None:
            params["shifts"] = shifts
        dev = resolve_device(device)
        try:
            net = load_demucs_model(model, repo, offline=offline)
        except ModelUnavailableError as exc:
            if kind == "demucs":
                raise
            reason = getattr(exc, "reason", None) or exc.message
            notes.append(
                f"Demucs weights for {model!r} not found ({reason}): using the weight-free DSP "
                "separator; results are rougher. See README 'Model weights'.")
        else:
            sep = DemucsSeparator(net, device=dev, segment=params["segment"],
                                  overlap=params["overlap"], shifts=params["shifts"],
                                  threads=threads, model_name=model)
            notes.extend(device_notes(dev))
            return sep, notes
    dsp_kw = {"overlap": overlap if overlap is not None else _DSP_OVERLAP[quality]}
    if segment is not None:
        dsp_kw["segment"] = segment
    return DspSeparator(**dsp_kw), notes


def separator_variant(separator: Separator, quality: str = "preview", *, segment: float | None = None,
                      overlap: float | None = None, shifts: int | None = None) -> Separator:
    """A separator like ``separator`` (same kind, same loaded weights, same device) with other
    window settings: ``quality`` and the ``segment`` / ``overlap`` / ``shifts`` overrides, as
    :func:`build_separator` would apply them.  No weights are loaded again, so one model in
    memory serves jobs that differ only in these settings."""
    params = demucs_quality_params(quality)  # validates quality
    if isinstance(separator, DemucsSeparator):
        for key, value in (("segment", segment), ("overlap", overlap), ("shifts", shifts)):
            if value is not None:
                params[key] = value
        return DemucsSeparator(separator.model, device=separator.device, segment=params["segment"],
                               overlap=params["overlap"], shifts=params["shifts"],
                               model_name=separator.description.get("model"))
    if isinstance(separator, DspSeparator):
        kw = {"overlap": overlap if overlap is not None else _DSP_OVERLAP[quality]}
        if segment is not None:
            kw["segment"] = segment
        return DspSeparator(**kw)
    raise SettingsError(f"cannot derive window settings from a {type(separator).__name__}")
