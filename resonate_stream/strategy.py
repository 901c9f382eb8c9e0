"""Choose how hard to process from the input's own measurements (module 10).

The first seconds of the input are analysed before processing starts (the
runner's read-ahead).  From them the preset's enhancement is adapted:

* noise reduction strength follows the estimated SNR: a clean recording
  (SNR >= 30 dB) gets half the preset's strength (fewer artefacts), a very noisy
  one (SNR < 10 dB) 1.3 times (capped at 1);
* a recording whose de-reverberation is off but which measures a long
  reverberation time (RT60 > 1.5 s) gets a note suggesting ``--set
  restore.dereverb=spectral``;
* clipping is reported, with whether the de-clipper (``restore.declip``) repairs it.

Everything it changed is listed in the report (``strategy``).  Setting
``adaptive: false`` keeps the preset exactly.
"""
from __future__ import annotations

from dataclasses import replace

from engine.audio import STEM_NAMES
from engine.config import PipelineConfig

CLEAN_SNR_DB = 30.0
NOISY_SNR_DB = 10.0
LONG_RT60_S = 1.5
CLIPPED_RATIO = 1e-3


def noise_reduction_scale(snr_db: float | None) -> float:
    """Multiplier on the preset's noise-reduction strength for an input of ``snr_db``."""
    if snr_db is None:
        return 1.0
    if snr_db >= CLEAN_SNR_DB:
        return 0.5
    if snr_db < NOISY_SNR_DB:
        return 1.3
    return 1.0


def adapt(cfg: PipelineConfig, metrics: dict) -> tuple[PipelineConfig, dict]:
    """``cfg`` adapted to input ``metrics`` (a new config, by ``dataclasses.replace``), and the
    strategy report ``{"noise_reduction_scale", "notes"}``."""
    notes = []
    enhance = cfg.enhance
    scale = noise_reduction_scale(metrics.get("snr_db"))
    if scale != 1.0 and enhance.enabled:
        stems = {s: replace(enhance.stem(s), noise_reduction=min(1.0, enhance.stem(s).noise_reduction * scale))
                 for s in STEM_NAMES}
        cfg = replace(cfg, enhance=replace(enhance, **stems))
        word = "clean" if scale < 1 else "very noisy"
        notes.append(f"input is {word} (SNR {metrics['snr_db']:.1f} dB): noise reduction x{scale:g}")
    rt60 = metrics.get("reverb_rt60_s")
    if rt60 is not None and rt60 > LONG_RT60_S and cfg.restore.dereverb == "off":
        notes.append(f"long reverberation (RT60 {rt60:.1f} s): try --set restore.dereverb=spectral")
    clip = metrics.get("clipping_ratio") or 0.0
    if clip > CLIPPED_RATIO:
        if cfg.restore.declip == "off":
            notes.append(f"{clip * 100:.2f}% of the input samples are clipped; clipping is not repaired "
                         "(try --set restore.declip=auto)")
        else:
            notes.append(f"{clip * 100:.2f}% of the input samples are clipped; the de-clipper repairs them "
                         "before separation")
    return cfg, {"noise_reduction_scale": scale, "notes": notes}
