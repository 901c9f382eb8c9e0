"""MBD weights for ``resonate models``: which are present, and fetching them.

Rows have the same keys as :func:`resonate_stream.models.list_models`
(``name``, ``present``, ``where``) plus ``licence``: the released MBD weights
are CC-BY-NC 4.0 (non-commercial).  Presence is read from the Hugging Face
cache (or ``model_dir``, a folder in that layout) without loading anything.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.polish.mbd_loader import N_Q

LICENCE = "CC-BY-NC-4.0 (weights), MIT (AudioCraft code)"
MBD_REPO = "facebook/multiband-diffusion"
CODEC_REPO = "facebook/encodec_24khz"


def _cache_dir(model_dir) -> str | None:
    if model_dir is None:
        return None
    root = Path(model_dir)
    return str(root / "hub" if (root / "hub").is_dir() else root)


def _cached(repo_id: str, filename: str, model_dir) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=_cache_dir(model_dir)), str)


def list_mbd(model_dir: str | Path | None = None) -> list[dict]:
    """One row per bandwidth (``mbd-1.5kbps`` ...): present when its checkpoint and the EnCodec config are cached."""
    installed = importlib.util.find_spec("audiocraft") is not None
    codec = _cached(CODEC_REPO, "config.json", model_dir)
    rows = []
    for bw, n_q in N_Q.items():
        name = f"mbd-{bw:g}kbps"
        present = codec and _cached(MBD_REPO, f"mbd_comp_{n_q}.pt", model_dir)
        if not installed:
            where = "needs AudioCraft: python -m resonate_stream.audiocraft_install"
        elif present:
            where = f"model dir {model_dir}" if model_dir else "Hugging Face cache"
        else:
            where = f"resonate models --fetch {name}  (needs internet)"
        rows.append({"name": name, "present": bool(present), "where": where, "licence": LICENCE})
    return rows


JASCO_MODELS = ("facebook/jasco-chords-drums-melody-400M", "facebook/jasco-chords-drums-400M",
                "facebook/jasco-chords-drums-1B")


def list_jasco(model_dir: str | Path | None = None) -> list[dict]:
    """One row for JASCO (generation mode): present when a released checkpoint and its EnCodec 32 kHz are cached."""
    installed = importlib.util.find_spec("audiocraft") is not None
    have = [m for m in JASCO_MODELS if _cached(m, "state_dict.bin", model_dir)]
    present = bool(have) and _cached("facebook/encodec_32khz", "config.json", model_dir)
    if not installed:
        where = "needs AudioCraft: python -m resonate_stream.audiocraft_install"
    elif present:
        where = f"{have[0]} in " + (f"model dir {model_dir}" if model_dir else "the Hugging Face cache")
    else:
        where = ("resonate models --fetch jasco  (needs internet), or generate.model = a local folder "
                 "(state_dict.bin + compression_state_dict.bin)")
    return [{"name": "jasco", "present": present, "where": where, "licence": LICENCE}]


def fetch_jasco() -> str:
    """Load the default JASCO through AudioCraft, which downloads it (and t5-base, EnCodec 32 kHz) when online."""
    from engine.generate.config import GenerateConfig
    from engine.generate.jasco import load_jasco

    cfg = GenerateConfig(mode="generate")
    load_jasco(cfg, "cpu")
    return f"jasco: {cfg.model} loaded and present in the Hugging Face cache (weights {LICENCE})"


def fetch_mbd(name: str) -> str:
    """Load ``mbd-<bw>kbps`` through AudioCraft, which downloads it into the HF cache when online."""
    from engine.errors import SettingsError
    from engine.polish.mbd_loader import load_mbd

    names = {f"mbd-{bw:g}kbps": bw for bw in N_Q}
    if name not in names:
        raise SettingsError(f"unknown MBD model {name!r}: choose one of {', '.join(names)}")
    load_mbd(names[name], "cpu")
    return f"{name}: loaded and present in the Hugging Face cache (weights {LICENCE})"
