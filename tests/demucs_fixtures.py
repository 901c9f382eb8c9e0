"""Tiny, randomly initialised Demucs models of the real classes, saved the demucs way.

No pretrained weights exist on the development machines; these helpers build
small models (same code paths, little compute), and write them into a model
folder exactly as ``demucs.pretrained.get_model(name, repo=folder)`` expects:
``<sig>-<sha256[:8]>.th`` packages (``demucs.states.save_with_checksum``) and
optional ``<name>.yaml`` bag files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

SOURCES = ["drums", "bass", "other", "vocals"]  # demucs' own order


def tiny_htdemucs(seed: int = 0, segment=1, channels: int = 4, depth: int = 4, sources=None):
    """A small ``demucs.htdemucs.HTDemucs`` (about 0.1 M parameters), eval mode."""
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(list(sources or SOURCES), channels=channels, dconv_comp=4, depth=depth,
                     t_layers=1, t_heads=4, segment=segment)
    return model.eval()


def tiny_hdemucs(seed: int = 0, segment=1):
    """A small ``demucs.hdemucs.HDemucs`` (demucs' own unit-test size), eval mode."""
    from demucs.hdemucs import HDemucs

    torch.manual_seed(seed)
    return HDemucs(list(SOURCES), channels=4, segment=segment).eval()


def tiny_demucs_v2(seed: int = 0, segment=1):
    """A small waveform ``demucs.demucs.Demucs`` (v2/v3 time-domain model), eval mode."""
    from demucs.demucs import Demucs

    torch.manual_seed(seed)
    return Demucs(list(SOURCES), channels=4, depth=3, segment=segment).eval()


def model_package(model) -> dict:
    """The dict ``demucs.states.serialize_model`` builds (full precision, no omegaconf)."""
    from demucs.states import get_state

    args, kwargs = model._init_args_kwargs
    return {"klass": model.__class__, "args": args, "kwargs": kwargs,
            "state": get_state(model, None, half=False), "training_args": {}}


def save_model(model, folder: Path, sig: str) -> Path:
    """Save ``model`` as ``folder/<sig>-<checksum>.th`` (demucs' checksum naming)."""
    from demucs.states import save_with_checksum

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_with_checksum(model_package(model), folder / f"{sig}.th")
    (path,) = folder.glob(f"{sig}-*.th")
    return path


def save_bag(folder: Path, name: str, sigs, weights=None, segment=None) -> Path:
    """Write a demucs bag-of-models file ``folder/<name>.yaml``."""
    bag = {"models": list(sigs)}
    if weights is not None:
        bag["weights"] = [list(map(float, w)) for w in weights]
    if segment is not None:
        bag["segment"] = float(segment)
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(bag))
    return path


def music_mix(seconds: float, seed: int = 0, samplerate: int = 44100) -> np.ndarray:
    """Music-like float32 ``(2, n)`` test signal: tones, a bass line, clicks, noise."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * samplerate))
    t = np.arange(n) / samplerate
    x = np.zeros((2, n))
    x += 0.2 * np.sin(2 * np.pi * 55 * t)
    x[0] += 0.15 * np.sin(2 * np.pi * 440 * t + 0.3 * np.sin(2 * np.pi * 5 * t))
    x[1] += 0.1 * np.sin(2 * np.pi * 660 * t)
    clicks = np.zeros(n)
    clicks[:: samplerate // 4] = 0.8
    x += np.convolve(clicks, np.exp(-np.arange(400) / 60.0))[:n]
    x += 0.02 * rng.standard_normal((2, n))
    return x.astype(np.float32)



__all__ = ["SOURCES", "tiny_demucs_v2", "tiny_htdemucs", "tiny_hdemucs", "model_package", "save_model",
           "save_bag", "music_mix"]
