"""Load JASCO through AudioCraft's own loader and generate one window from its profile.

``JASCO.get_pretrained(name_or_folder, device, chords_mapping_path=...)``
reads ``state_dict.bin`` (``best_state``, ``xp.cfg`` as YAML) and
``compression_state_dict.bin`` (``{'pretrained': 'facebook/encodec_32khz'}``)
from a Hugging Face repository or a local folder; its conditioners load
``t5-base`` (text) and the HF EnCodec 32 kHz, the drums conditioner a Demucs
model.  ``model_dir`` points the Hugging Face cache at a folder (offline) for
the duration of the load, as the MBD loader does, and ``TORCH_HOME`` at its
``torch/`` sub-folder when there is one (the drums conditioner's Demucs).  Weights: CC-BY-NC 4.0.

:class:`JascoGenerator` turns a :class:`~engine.generate.profile.WindowProfile`
and the window's drums stem into JASCO's conditions (chords with start times,
the 53 x 500 melody salience, drums at 44.1 kHz resampled by AudioCraft to 32
kHz) and returns the generated window at 44.1 kHz stereo (JASCO is mono).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import ModelUnavailableError
from ..polish.mbd_loader import INSTALL_HINT, hub_cache
from .config import GenerateConfig

LICENCE = "CC-BY-NC-4.0"
FETCH_HINT = ("fetch the weights on a machine with internet (`resonate models --fetch jasco`), or set "
              "generate.model to a local folder holding state_dict.bin and compression_state_dict.bin, with "
              "generate.chords_mapping at AudioCraft's assets/chord_to_index_mapping.pkl (weights CC-BY-NC 4.0)")


def chords_mapping_path(cfg: GenerateConfig) -> Path:
    """The chord mapping pickle JASCO needs; ``model_unavailable`` when it is not there."""
    if cfg.chords_mapping is not None:
        p = Path(cfg.chords_mapping)
    else:
        p = Path(cfg.model) / "chord_to_index_mapping.pkl"
    if not p.is_file():
        raise ModelUnavailableError(f"JASCO's chord mapping {p} is missing; {FETCH_HINT}")
    return p


@contextlib.contextmanager
def torch_home(model_dir):
    """Within: ``TORCH_HOME`` is ``model_dir/torch`` when that folder exists (the drums conditioner's
    ``demucs.pretrained.get_model('htdemucs')`` reads the torch-hub cache there)."""
    folder = Path(model_dir) / "torch" if model_dir is not None else None
    if folder is None or not folder.is_dir():
        yield
        return
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = old


def load_jasco(cfg: GenerateConfig, device: str):
    """``JASCO.get_pretrained`` on ``device`` (raises ``ModelUnavailableError`` with install/fetch hints)."""
    if importlib.util.find_spec("audiocraft") is None:
        raise ModelUnavailableError(f"JASCO needs AudioCraft, which is not installed: {INSTALL_HINT}")
    mapping = chords_mapping_path(cfg)
    try:
        from audiocraft.models import JASCO
    except Exception as e:  # an AudioCraft without JASCO (the PyPI 1.3.0 sdist) or a broken install
        raise ModelUnavailableError(f"this AudioCraft has no JASCO ({e}); {INSTALL_HINT}") from None
    try:
        with hub_cache(cfg.model_dir), torch_home(cfg.model_dir):
            model = JASCO.get_pretrained(cfg.model, device=device, chords_mapping_path=str(mapping))
    except ModelUnavailableError:
        raise
    except Exception as e:
        raise ModelUnavailableError(f"cannot load JASCO {cfg.model!r}: {type(e).__name__}: {e}; {FETCH_HINT}") from None
    model.set_generation_params(cfg_coef_all=cfg.cfg_coef_all, cfg_coef_txt=cfg.cfg_coef_txt,
                                euler=True, euler_steps=int(cfg.steps))
    return model


def jasco_description(cfg: GenerateConfig, device: str) -> dict:
    """What generates, for reports and provenance."""
    return {"name": "JASCO", "model": cfg.model, "weights": cfg.model_dir or cfg.model, "licence": LICENCE,
            "device": device, "detail": f"euler {cfg.steps} steps, cfg {cfg.cfg_coef_all:g}/{cfg.cfg_coef_txt:g}"}


class JascoGenerator:
    """One JASCO model and the job's generation settings: ``generate(profile, drums) -> (2, n)`` at 44.1 kHz."""

    def __init__(self, model, cfg: GenerateConfig, description: dict):
        from .streaming import GenerationGeometry

        self.model = model
        self.cfg = cfg
        self.description = dict(description)
        self.geometry = GenerationGeometry.of(cfg)

    def run(self, window) -> np.ndarray:
        """The window runner's call: one :class:`~engine.generate.streaming.GenerationWindow`."""
        return self.generate(window.profile, window.drums)

    def generate(self, profile, drums: np.ndarray | None) -> np.ndarray:
        """Window ``profile.seq``: ``profile.length`` samples of new audio (``(2, n)`` float32, 44.1 kHz)."""
        import torch

        import soxr

        m = self.model
        torch.manual_seed(int(self.cfg.seed) * 100003 + int(profile.seq))
        frames = int(m.duration * 50)
        melody = np.zeros((53, frames), np.float32)
        if profile.melody is not None:
            k = min(frames, profile.melody.shape[1])
            melody[:, :k] = profile.melody[:, :k]
        kwargs = {}
        if drums is not None and "self_wav" in m.lm.condition_provider.conditioners:
            kwargs = dict(drums_wav=torch.from_numpy(np.ascontiguousarray(drums, np.float32))[None],
                          drums_sample_rate=SAMPLE_RATE)
        with torch.no_grad():
            wav = m.generate_music(descriptions=[profile.description(self.cfg.text or "")],
                                   chords=list(profile.chords) or None, melody_salience_matrix=torch.from_numpy(melody),
                                   segment_duration=float(m.duration), frame_rate=50.0, melody_bins=53, **kwargs)
        y = wav[0].mean(dim=0).float().cpu().numpy()
        y = soxr.resample(y, int(m.sample_rate), SAMPLE_RATE, quality="HQ").astype(np.float32)
        out = np.zeros(profile.length, np.float32)
        n = min(len(y), profile.length)
        out[:n] = y[:n]
        return np.stack([out, out])


def build_generator(cfg: GenerateConfig, device: str | None = None) -> JascoGenerator:
    from ..polish.factory import resolve_device

    device = resolve_device(device or cfg.device)
    return JascoGenerator(load_jasco(cfg, device), cfg, jasco_description(cfg, device))
