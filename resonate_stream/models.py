"""``resonate models``: which Demucs weights are present, and fetching them.

Demucs looks for weights in a local model folder (``--model-repo`` /
``RESONATE_MODEL_REPO``: ``<sig>.th`` files and ``<name>.yaml`` bags), the
HuggingFace hub cache, then the torch-hub cache (legacy download site).
"""
from __future__ import annotations

from pathlib import Path

KNOWN_MODELS = ("htdemucs", "htdemucs_ft", "htdemucs_6s", "hdemucs_mmi", "mdx", "mdx_extra", "mdx_q", "mdx_extra_q")


def list_models(repo: str | Path | None = None) -> list[dict]:
    """One row per known model: name, present (bool), where (folder or hint)."""
    from engine.separation.demucs_separator import demucs_weights_present

    rows = []
    for name in KNOWN_MODELS:
        present = demucs_weights_present(name, repo)
        where = (f"model repo {repo}" if repo else "local cache") if present else \
            f"resonate models --fetch {name}  (needs internet)"
        rows.append({"name": name, "present": present, "where": where})
    return rows


def fetch_model(name: str, repo: str | Path | None = None) -> str:
    """Load ``name`` through demucs (downloading it when online); say where it is."""
    from engine.separation.demucs_separator import load_demucs_model

    load_demucs_model(name, Path(repo) if repo else None)
    return f"{name}: loaded and present in {'model repo ' + str(repo) if repo else 'the local cache'}"
