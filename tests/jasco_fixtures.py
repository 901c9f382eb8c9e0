"""A tiny, randomly initialised JASCO of the real AudioCraft classes, in the real checkpoint layout.

:func:`write_random_jasco` writes:

* ``hf_home/hub``: ``facebook/encodec_32khz`` (a transformers ``EncodecModel``,
  32 kHz, codebook size 2048, 640-sample hop = 50 frames/s, small hidden size)
  and ``t5-base`` (a random ``T5EncoderModel`` with ``d_model`` 768, one layer,
  and a sentencepiece tokenizer trained here on a few sentences);
* ``hf_home/torch/hub/checkpoints/955717e8-8726e21a.th``: a tiny HTDemucs where
  ``demucs.pretrained.get_model('htdemucs')`` looks for it (the drums conditioner);
* ``model_dir``: ``state_dict.bin`` (``best_state``, ``xp.cfg`` YAML composed
  from AudioCraft's own ``config/`` with ``solver=jasco/chords_drums_melody``,
  transformer made tiny, ``emb_lr`` / ``two_step_cfg`` dropped as
  ``FlowMatchingModel`` rejects them), ``compression_state_dict.bin``
  (``{'pretrained': 'facebook/encodec_32khz'}``) and the chord mapping.

``JASCO.get_pretrained(model_dir, chords_mapping_path=...)`` loads it with the
hub offline.  Random weights: the output is noise-like, the compute path is real.
"""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from polish_fixtures import _snapshot

HTDEMUCS_FILE = "955717e8-8726e21a.th"
TINY_LM = {"dim": 32, "num_heads": 2, "num_layers": 2, "hidden_scale": 2}


def write_random_encodec32(hf_home: Path, seed: int = 0) -> int:
    import torch
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(seed)
    cfg = EncodecConfig(sampling_rate=32000, audio_channels=1, codebook_size=2048, hidden_size=16, num_filters=4,
                        num_lstm_layers=1, upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2],
                        normalize=False)
    EncodecModel(cfg).eval().save_pretrained(_snapshot(hf_home, "facebook/encodec_32khz"))
    return cfg.hidden_size


def write_random_t5(hf_home: Path, seed: int = 0) -> None:
    import sentencepiece as spm
    import torch
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    snap = _snapshot(hf_home, "t5-base")
    text = snap / "corpus.txt"
    text.write_text("\n".join(["jazz piano trio in C major, 120 bpm", "lo-fi hip hop beat with warm bass",
                               "rock band with loud guitars and drums", "ambient synth pads, slow, in A minor",
                               "music"] * 20))
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(snap / "spiece"), vocab_size=48,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   minloglevel=2)
    text.unlink()
    (snap / "spiece.vocab").unlink()
    tok = T5Tokenizer.from_pretrained(str(snap), extra_ids=0)  # converted from spiece.model
    tok.save_pretrained(snap)
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=len(tok), d_model=768, d_kv=16, d_ff=32, num_layers=1, num_heads=2)
    T5EncoderModel(cfg).eval().save_pretrained(snap)


def write_tiny_htdemucs(torch_home: Path, seed: int = 0) -> None:
    from demucs_fixtures import model_package, tiny_htdemucs
    import torch

    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model_package(tiny_htdemucs(seed)), folder / HTDEMUCS_FILE)


def compose_cfg(config_tar: Path, work: Path, latent_dim: int, lm: dict = TINY_LM):
    """AudioCraft's ``config/`` composed for ``solver=jasco/chords_drums_melody``, made tiny."""
    import os

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    os.environ.setdefault("USER", "resonate")  # AudioCraft's dora.dir interpolates it

    with tarfile.open(config_tar) as t:
        t.extractall(work, filter="data")
    with initialize_config_dir(config_dir=str(work / "config"), version_base="1.1"):
        cfg = compose(config_name="config", overrides=["solver=jasco/chords_drums_melody"])
    with open_dict(cfg):
        cfg.device, cfg.dtype = "cpu", "float32"
        cfg.efficient_attention_backend = "torch"
        cfg.compression_model_latent_dim = latent_dim
        cfg.conditioners.self_wav.drum_latents.cache_path = None
        for k, v in lm.items():
            cfg.transformer_lm[k] = v
        for k in ("emb_lr", "two_step_cfg"):
            cfg.transformer_lm.pop(k, None)
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


def write_random_jasco(root: Path, vendor: Path, seed: int = 0, lm: dict | None = None) -> dict:
    """Everything under ``root``; returns ``{"model_dir", "hf_home", "torch_home", "mapping"}``.

    ``lm``: transformer sizes over the composed config (default :data:`TINY_LM`; ``{}`` keeps the
    released 400 M architecture of ``jasco/chords_drums_melody``)."""
    import os

    import torch
    from omegaconf import OmegaConf

    root = Path(root)
    hf_home, model_dir = root / "hf_home", root / "jasco"
    torch_home = hf_home / "torch"  # generate.model_dir/torch: where the loader points TORCH_HOME
    model_dir.mkdir(parents=True, exist_ok=True)
    latent = write_random_encodec32(hf_home, seed)
    write_random_t5(hf_home, seed)
    write_tiny_htdemucs(torch_home, seed)
    cfg = compose_cfg(vendor / "config.tar.gz", root / "cfg", latent, TINY_LM if lm is None else lm)
    from audiocraft.models import builders
    from audiocraft.models.encodec import CompressionModel
    from engine.polish.mbd_loader import hub_cache

    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(torch_home)
    try:
        with hub_cache(hf_home):
            compression = CompressionModel.get_pretrained("facebook/encodec_32khz", device="cpu")
            torch.manual_seed(seed)
            lm = builders.get_jasco_model(cfg, compression)
    finally:
        if old is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = old
    torch.save({"best_state": lm.state_dict(), "xp.cfg": OmegaConf.to_yaml(cfg), "version": "1.4.0a2",
                "exported": True}, model_dir / "state_dict.bin")
    torch.save({"pretrained": "facebook/encodec_32khz"}, model_dir / "compression_state_dict.bin")
    shutil.copy(vendor / "chord_to_index_mapping.pkl", model_dir / "chord_to_index_mapping.pkl")
    return {"model_dir": model_dir, "hf_home": hf_home, "torch_home": torch_home,
            "mapping": model_dir / "chord_to_index_mapping.pkl"}
