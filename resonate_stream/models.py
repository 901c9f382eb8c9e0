"""``resonate models``: which Demucs weights are present, and fetching them.

Demucs looks for weights, in order: a local model folder (``--model-repo`` /
``RESONATE_MODEL_REPO``: ``<sig>.th`` files and ``<name>.yaml`` bags), the
HuggingFace hub cache, then the torch-hub cache (legacy download site).
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from engine.errors import ModelUnavailableError

KNOWN_MODELS = ("htdemucs", "htdemucs_ft", "htdemucs_6s", "hdemucs_mmi", "mdx", "mdx_extra", "mdx_q", "mdx_extra_q")


def _remote_dir() -> Path:
    import demucs.pretrained

    return Path(demucs.pretrained.REMOTE_ROOT)


def model_signatures(name: str) -> list[str]:
    """The weight-file signatures that make up bag ``name`` (from demucs' own yaml)."""
    path = _remote_dir() / f"{name}.yaml"
    if not path.exists():
        return [name]
    return [str(s) for s in (yaml.safe_load(path.read_text()) or {}).get("models", [])]


def _search_dirs(repo: str | Path | None) -> list[tuple[str, Path]]:
    import torch.hub

    dirs = []
    repo = repo or os.environ.get("RESONATE_MODEL_REPO")
    if repo:
        dirs.append(("model repo", Path(repo)))
    dirs.append(("torch hub", Path(torch.hub.get_dir()) / "checkpoints"))
    return dirs


def _hf_cached(name: str) -> Path | None:
    from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name

    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    folder = hub / f"models--{DEFAULT_NAMESPACE}--{hf_repo_name(name)}"
    return folder if folder.is_dir() and any(folder.rglob("*.safetensors")) else None


def list_models(repo: str | Path | None = None) -> list[dict]:
    """One row per known model: name, present (bool), where (folder or hint)."""
    rows = []
    for name in KNOWN_MODELS:
        sigs = model_signatures(name)
        where = None
        hf = _hf_cached(name)
        if hf is not None:
            where = f"huggingface cache ({hf})"
        for label, d in _search_dirs(repo):
            if d.is_dir() and all(any(d.glob(f"{sig}*.th")) for sig in sigs):
                where = f"{label} ({d})"
                break
        rows.append({"name": name, "present": where is not None,
                     "where": where or f"resonate models --fetch {name}  (needs internet)"})
    return rows


def fetch_model(name: str, repo: str | Path | None = None) -> str:
    """Load ``name`` through demucs (downloading it when online); return where it came from."""
    from engine.separation.demucs_separator import load_demucs_model

    load_demucs_model(name, Path(repo) if repo else None)
    for row in list_models(repo):
        if row["name"] == name and row["present"]:
            return f"{name}: present in {row['where']}"
    if name not in KNOWN_MODELS:
        return f"{name}: loaded"
    raise ModelUnavailableError(f"{name} loaded but its files were not found in the caches")
