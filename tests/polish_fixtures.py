"""Random MultiBandDiffusion models (tiny for the tests, real size for the benchmark) of the real classes, in the real Hugging Face cache layout.

:func:`write_random_mbd` writes, under ``hf_home/hub`` (an ``HF_HOME`` folder):

* ``models--facebook--encodec_24khz``: a transformers ``EncodecModel``
  (24 kHz, codebook size 1024 as AudioCraft requires, 75 frames/s) with a
  small hidden size, saved by ``save_pretrained``;
* ``models--facebook--multiband-diffusion/.../mbd_comp_<n_q>.pt``: the dict
  ``torch.save`` d by AudioCraft (``sample_rate``, ``n_bands`` and per band
  ``{cfg, model_state, processor_state}``, cfg an omegaconf ``DictConfig``)
  with tiny ``DiffusionUnet`` s conditioned on the codec latent.

``MultiBandDiffusion.get_mbd_24khz(bw=...)`` loads them unmodified with the
hub offline.  Random weights: the output is noise-like, the compute path is real.
"""
from __future__ import annotations

from pathlib import Path

#: a fixed fake commit hash for the snapshots
_REVISION = "0" * 40
N_Q = {1.5: 2, 3.0: 4, 6.0: 8}


def _snapshot(hf_home: Path, repo_id: str) -> Path:
    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(_REVISION)
    snap = repo / "snapshots" / _REVISION
    snap.mkdir(parents=True, exist_ok=True)
    return snap


#: the tiny EnCodec of the tests (None: transformers' defaults, the released encodec_24khz architecture)
TINY_ENCODEC = {"hidden_size": 16, "num_filters": 4, "num_lstm_layers": 1}
#: the tiny diffusion U-Net of the tests (AudioCraft's ``model/score/basic.yaml`` is the real one)
TINY_UNET = {"hidden": 4, "depth": 2, "growth": 2}
#: ``config/model/score/basic.yaml`` of AudioCraft (dropout 0.1 here so that ``.eval()`` matters)
BASIC_UNET = {"hidden": 48, "depth": 4, "res_blocks": 1, "norm_groups": 4, "kernel": 8, "stride": 4, "growth": 4,
              "max_channels": 10000, "dropout": 0.1, "emb_all_layers": True, "bilstm": False,
              "transformer": False, "cross_attention": False}


def write_random_encodec(hf_home: Path, encodec: dict | None = TINY_ENCODEC, seed: int = 0) -> int:
    """``facebook/encodec_24khz`` with random weights; returns its latent dimension."""
    import torch
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(seed)
    cfg = EncodecConfig(sampling_rate=24000, audio_channels=1, codebook_size=1024,
                        target_bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0], **(encodec or {}))
    EncodecModel(cfg).eval().save_pretrained(_snapshot(hf_home, "facebook/encodec_24khz"))
    return cfg.hidden_size


def write_random_mbd(hf_home: Path, bws=(1.5, 3.0, 6.0), n_bands: int = 4, unet: dict = TINY_UNET,
                     encodec: dict | None = TINY_ENCODEC, seed: int = 0) -> Path:
    """The EnCodec and one ``mbd_comp_<n_q>.pt`` per bandwidth in ``bws`` (U-Net: :data:`BASIC_UNET`
    updated by ``unet``); returns ``hf_home``."""
    import torch
    from omegaconf import OmegaConf
    from audiocraft.models import builders

    codec_dim = write_random_encodec(hf_home, encodec, seed=seed)
    snap = _snapshot(hf_home, "facebook/multiband-diffusion")
    for k, bw in enumerate(bws):
        torch.manual_seed(seed + 1 + k)
        pkg = {"sample_rate": 24000, "n_bands": n_bands}
        for i in range(n_bands):
            cfg = OmegaConf.create({
                "channels": 1,
                "schedule": {"repartition": "power", "variable_step_batch": True, "beta_t0": 1.0e-5,
                             "beta_t1": 2.9e-2, "beta_exp": 7.5, "num_steps": 1000, "variance": "beta",
                             "clip": 5.0, "rescale": 1.0, "n_bands": None, "noise_scale": 1.0},
                "diffusion_unet": {**BASIC_UNET, **unet, "codec_dim": codec_dim},
                "processor": {"name": "multi_band_processor", "use": True, "n_bands": 8,
                              "num_samples": 10000, "power_std": 1.0},
            })
            model = builders.get_diffusion_model(cfg)
            processor = builders.get_processor(cfg.processor, sample_rate=24000)
            fitted = {"counts": 10000.0, "sum_x": 0.0, "sum_x2": 10000.0 * 0.01, "sum_target_x2": 10000.0}
            for name, value in fitted.items():  # a fitted processor (a fresh one divides by zero)
                getattr(processor, name).fill_(value)
            pkg[i] = {"cfg": cfg, "model_state": model.state_dict(), "processor_state": processor.state_dict()}
        torch.save(pkg, snap / f"mbd_comp_{N_Q[bw]}.pt")
    return Path(hf_home)
