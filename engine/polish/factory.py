"""Build the MBD polisher of a job (model loaded on its device) from its :class:`PolishConfig`."""
from __future__ import annotations

from ..audio import STEM_NAMES
from .config import PolishConfig
from .mbd_loader import load_mbd, mbd_description
from .mbd_polisher import MBDPolisher


def polish_signals(cfg: PolishConfig, stems=STEM_NAMES) -> tuple[str, ...]:
    """What the lane polishes: every stem (``per_stem``) or ``("mix",)``."""
    return tuple(stems) if cfg.per_stem else ("mix",)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` if available, else ``mps`` if available, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def build_polisher(cfg: PolishConfig, signals: tuple[str, ...], device: str | None = None) -> MBDPolisher:
    """Load MBD (``cfg.bandwidth_kbps``) on ``device`` (default ``cfg.device``) and wrap it.

    Raises ``ModelUnavailableError`` when AudioCraft or the weights are missing.
    """
    device = resolve_device(device or cfg.device)
    mbd = load_mbd(cfg.bandwidth_kbps, device, cfg.model_dir)
    description = {**mbd_description(cfg.bandwidth_kbps, device, cfg.model_dir),
                   "strictness": cfg.strictness, "vocal_strictness": cfg.vocal_strictness, "blend": cfg.blend,
                   "per_stem": cfg.per_stem, "crossover_hz": cfg.crossover_hz, "seed": cfg.seed}
    return MBDPolisher(mbd, cfg, signals, description)


def provenance(description: dict | None) -> str:
    """One line for the file's tags and the report, e.g.
    ``restored; polished by MBD (facebook/multiband-diffusion mbd_comp_8, 6 kbps, cuda)``."""
    from ..provenance import job_provenance

    return job_provenance(description or None).summary()
