"""Load MultiBandDiffusion through AudioCraft's own loader.

``MultiBandDiffusion.get_mbd_24khz(bw=...)`` reads two Hugging Face repositories:
``facebook/encodec_24khz`` (transformers' ``EncodecModel``) and
``facebook/multiband-diffusion/mbd_comp_<n_q>.pt`` (``n_q`` = 2, 4, 8 for
1.5, 3, 6 kbps).  Where from:

* the default Hugging Face cache (``HF_HOME``, ``HF_HUB_OFFLINE`` as usual;
  a machine with internet downloads them on first use);
* ``model_dir``: a folder in that cache layout (an ``HF_HOME`` or its
  ``hub/``), read offline.  huggingface_hub reads ``HF_HOME`` once at import,
  so a folder chosen later is applied by pointing its cache constant there for
  the duration of the load.

torch >= 2.6 loads with ``weights_only=True``; MBD checkpoints pickle
omegaconf configs, so the load runs with an allow-list of exactly those
classes (:data:`ALLOWED_GLOBALS`).  Upstream leaves the diffusion nets in train
mode (dropout active while sampling): every band's net is put in ``.eval()``.
Weights are CC-BY-NC 4.0 (non-commercial).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..errors import ModelUnavailableError

#: how a user gets AudioCraft and the weights (in every ``model_unavailable`` message)
INSTALL_HINT = ("install AudioCraft with `python -m resonate_stream.audiocraft_install` "
                "(needs ../shared/vendor/audiocraft or internet)")
FETCH_HINT = ("fetch the weights on a machine with internet (`resonate models --fetch mbd-<bw>kbps`, or any first "
              "run with polish.mode=mbd), or point polish.model_dir at a Hugging Face cache folder holding "
              "facebook/encodec_24khz and facebook/multiband-diffusion (weights CC-BY-NC 4.0)")
N_Q = {1.5: 2, 3.0: 4, 6.0: 8}


def allowed_globals() -> list:
    """What MBD checkpoints pickle besides tensors (omegaconf's config classes)."""
    import collections
    import typing

    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    return [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, typing.Any, dict, list, int, float,
            collections.defaultdict]


@contextlib.contextmanager
def hub_cache(model_dir: str | Path | None):
    """Within: the Hugging Face cache is ``model_dir`` (``hub/`` inside it if present), offline."""
    if model_dir is None:
        yield
        return
    from huggingface_hub import constants

    root = Path(model_dir)
    if not root.is_dir():
        raise ModelUnavailableError(f"polish.model_dir {root} is not a folder; {FETCH_HINT}")
    cache = root / "hub" if (root / "hub").is_dir() else root
    saved = constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE
    constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = str(cache), True
    try:
        yield
    finally:
        constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = saved


def load_mbd(bandwidth_kbps: float, device: str = "cpu", model_dir: str | Path | None = None):
    """``MultiBandDiffusion`` for ``bandwidth_kbps`` on ``device``, every band in eval mode.

    Raises :class:`ModelUnavailableError` (code ``model_unavailable``) with the
    install or fetch instructions when AudioCraft or the weights are missing.
    """
    try:
        import torch
        from audiocraft.models import MultiBandDiffusion
    except ImportError as e:
        raise ModelUnavailableError(f"MBD polish needs AudioCraft ({e}): {INSTALL_HINT}") from None
    bw = float(bandwidth_kbps)
    where = f"model_dir {model_dir}" if model_dir is not None else "the Hugging Face cache"
    try:
        with hub_cache(model_dir), torch.serialization.safe_globals(allowed_globals()):
            mbd = MultiBandDiffusion.get_mbd_24khz(bw=bw, device=device)
    except ModelUnavailableError:
        raise
    except (OSError, ValueError, KeyError) as e:  # hub errors (offline, missing file) are OSErrors
        raise ModelUnavailableError(
            f"MBD weights for {bw:g} kbps (mbd_comp_{N_Q.get(bw, '?')}.pt + encodec_24khz) not found in "
            f"{where}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; {FETCH_HINT}") from None
    except Exception as e:  # e.g. pickle.UnpicklingError from weights_only: a checkpoint of another kind
        raise ModelUnavailableError(f"MBD weights in {where} could not be loaded ({type(e).__name__}: "
                                    f"{str(e).splitlines()[0] if str(e) else ''}); {FETCH_HINT}") from None
    for dp in mbd.DPs:
        dp.model.eval()
    mbd.codec_model.eval()
    return mbd


def mbd_description(bandwidth_kbps: float, device: str, model_dir=None) -> dict:
    """What ran, for reports: ``{"polish": "mbd", "model": ..., "bandwidth_kbps": ..., "device": ...}``."""
    return {"polish": "mbd", "model": f"facebook/multiband-diffusion mbd_comp_{N_Q[float(bandwidth_kbps)]}",
            "codec": "facebook/encodec_24khz", "bandwidth_kbps": float(bandwidth_kbps), "device": device,
            "weights": str(model_dir) if model_dir is not None else "hf cache", "licence": "CC-BY-NC-4.0"}
