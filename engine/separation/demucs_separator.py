"""Demucs (v2/v3/v4, single models and bags) as a window-by-window separator.

Loading goes through the library's own loader, :func:`demucs.pretrained.get_model`
(Hugging Face hub / legacy download cache when no repository is given, a
local model folder otherwise).  Separation of one window calls demucs' own
:func:`demucs.apply.apply_model` with ``split=False`` on a
:class:`demucs.apply.TensorChunk` of the window's context, so the padding
logic (``TensorChunk.padded`` to the model's valid length, real audio around
the chunk, zeros outside the stream) and the weighting of bags of models are
the library's.  Stitched with the demucs weights, the stream equals
``apply_model(model, whole_mix, shifts=0, split=True, overlap=o, segment=s)``
to float tolerance.

Shifts (the "shift trick"): demucs draws random offsets from the global
``random`` module and shifts the *whole file* before splitting.  Here each
window applies the same trick on its own (same code shape as demucs': pad by
``max_shift = 0.5 s`` of real context, shift by ``randint(0, max_shift)``,
run, unshift, average), with offsets drawn from a local
``random.Random(seed, window.seq)`` so a window - retried, or run on another
machine - always gives the same answer.  All models of a bag share a window's
offsets.  Because a shifted window sees up to ``max_shift`` more samples, the
window (chunk) is ``max_shift`` shorter than the model segment for
transformer models (whose input length is fixed).  With ``shifts > 0`` the
result is not comparable sample-for-sample with demucs (which is random).

Imports: torch, demucs, yaml and huggingface_hub are imported inside the
functions that use them: together they cost several
seconds of start-up, and this module is imported by every process that can
choose a separator (the weight-free DSP default needs none of them).
"""
from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE
from ..io.network import download_reachable
from ..errors import DeviceUnavailableError, ModelUnavailableError, SettingsError
from .base import Separator
from .windows import SeparationWindow


#: environment variable naming a local demucs model folder (default ``--model-repo``)
MODEL_REPO_ENV = "RESONATE_MODEL_REPO"
DEFAULT_MODEL = "htdemucs"


class UnsupportedModelError(ModelUnavailableError):
    """The model loaded but cannot run in the engine (rate, channels, segment)."""

    code = "model_unsupported"


# --------------------------------------------------------------------------- devices
def resolve_device(device: str = "auto") -> str:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` into a torch device string.

    ``auto`` picks CUDA, then Apple MPS, then CPU.  Asking for a device that is
    not present raises :class:`DeviceUnavailableError`.

    On Apple silicon, Demucs' complex-number STFT ops are not implemented on
    MPS: set ``PYTORCH_ENABLE_MPS_FALLBACK=1`` in the environment *before*
    Python starts so they fall back to the CPU (see :func:`device_notes`).
    """
    import torch

    name = (device or "auto").strip().lower()
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if has_mps else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {device!r} requested but no CUDA GPU is visible to PyTorch on this "
                "machine; use --device cpu (or auto)")
        if ":" in name:
            try:
                index = int(name.split(":", 1)[1])
            except ValueError:
                raise DeviceUnavailableError(f"bad CUDA device name {device!r}; use cuda or cuda:N")
            if index >= torch.cuda.device_count():
                raise DeviceUnavailableError(
                    f"device {device!r} requested but only {torch.cuda.device_count()} CUDA "
                    "GPU(s) are visible")
        return name
    if name == "mps":
        if not has_mps:
            raise DeviceUnavailableError(
                "device 'mps' requested but Apple Metal (MPS) is not available in this PyTorch "
                "build or machine; use --device cpu (or auto)")
        return "mps"
    raise DeviceUnavailableError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")


def device_notes(device: str) -> list[str]:
    """User-facing notes about running on ``device`` (e.g. the MPS fallback variable)."""
    if str(device).startswith("mps") and os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") != "1":
        return ["Demucs on Apple MPS needs PYTORCH_ENABLE_MPS_FALLBACK=1 in the environment "
                "(set before starting Resonate) so its complex STFT ops fall back to the CPU."]
    return []


# --------------------------------------------------------------------------- presets
def demucs_quality_params(quality: str = "preview") -> dict[str, Any]:
    """Separation settings for a quality mode.

    ``preview``: fast first listen (overlap 0.1, no shifts).
    ``render``: final quality (overlap 0.25, 1 shift: each window is also run
    once shifted by a random 0-0.5 s and averaged).
    ``segment=None`` means the model's own segment.
    """
    presets = {
        "preview": {"segment": None, "overlap": 0.1, "shifts": 0},
        "render": {"segment": None, "overlap": 0.25, "shifts": 1},
    }
    try:
        return dict(presets[quality])
    except KeyError:
        raise SettingsError(f"unknown quality {quality!r}; use one of {sorted(presets)}") from None


# --------------------------------------------------------------------------- loading
def _unavailable(name: str, repo: Path | None, reason: str) -> ModelUnavailableError:
    """A :class:`ModelUnavailableError` with the full help text; ``.reason`` keeps the cause."""
    reason = reason.strip().rstrip(".")
    err = ModelUnavailableError(_unavailable_message(name, repo, reason))
    err.reason = reason
    return err


def _unavailable_message(name: str, repo: Path | None, reason: str) -> str:
    where = f"in the model folder {repo}" if repo is not None else "from the download caches or servers"
    return (
        f"Demucs model {name!r} could not be loaded {where}: {reason}. "
        "To get the weights, either run Resonate once on a machine with internet access "
        "(demucs downloads them into the Hugging Face / torch hub cache, e.g. "
        "~/.cache/torch/hub/checkpoints), or put the model's .th files (listed in demucs' "
        "remote/files.txt, under https://dl.fbaipublicfiles.com/demucs/) and its "
        f"{name}.yaml (shipped in demucs' remote/ folder) into one folder and pass "
        f"--model-repo FOLDER (or set {MODEL_REPO_ENV}). "
        "The weight-free separator (--separator dsp) works without any weights.")


def _hf_cached_files(name: str) -> tuple[dict, list[str]] | None:
    """The cached Hugging Face bag definition and safetensors paths, if complete."""
    try:
        import yaml
        from huggingface_hub import try_to_load_from_cache
        from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name
    except Exception:
        return None
    namespace, short = (name.split("/", 1) if "/" in name else (DEFAULT_NAMESPACE, name))
    repo_id = f"{namespace}/{hf_repo_name(short)}"
    path = try_to_load_from_cache(repo_id, f"{short}.yaml")
    if not isinstance(path, str):
        return None
    with open(path) as f:
        bag = yaml.safe_load(f)
    files = []
    for sig in bag.get("models", []):
        p = try_to_load_from_cache(repo_id, f"{sig}.safetensors")
        if not isinstance(p, str):
            return None
        files.append(p)
    return bag, files


def _torchhub_cached_sigs(name: str) -> list[str] | None:
    """Signatures of ``name`` (a bag or a single signature) if all are in the torch hub cache."""
    try:
        import torch
        import yaml
        from demucs.pretrained import REMOTE_ROOT, _parse_remote_files
    except Exception:
        return None
    urls = _parse_remote_files(REMOTE_ROOT / "files.txt")
    bag_file = REMOTE_ROOT / f"{name}.yaml"
    if bag_file.is_file():
        sigs = list(yaml.safe_load(bag_file.read_text())["models"])
    elif name in urls:
        sigs = [name]
    else:
        return None
    ckpt = Path(torch.hub.get_dir()) / "checkpoints"
    for sig in sigs:
        if sig not in urls or not (ckpt / urls[sig].rsplit("/", 1)[-1]).is_file():
            return None
    return sigs


def demucs_weights_present(name: str = DEFAULT_MODEL, repo: Path | str | None = None) -> bool:
    """Whether ``name`` can be loaded without downloading anything."""
    repo = _default_repo(repo)
    if repo is not None:
        try:
            from demucs.repo import AnyModelRepo, BagOnlyRepo, LocalRepo

            if not repo.is_dir():
                return False
            model_repo = LocalRepo(repo)
            any_repo = AnyModelRepo(model_repo, BagOnlyRepo(repo, model_repo))
            if model_repo.has_model(name):
                return True
            if not any_repo.bag_repo.has_model(name):
                return False
            import yaml

            sigs = yaml.safe_load(Path(any_repo.bag_repo.list_model()[name]).read_text())["models"]
            return all(model_repo.has_model(s) for s in sigs)
        except Exception:
            return False
    return _hf_cached_files(name) is not None or _torchhub_cached_sigs(name) is not None


def _load_from_caches(name: str):
    """Load ``name`` from the local caches only, with demucs' own loaders."""
    from demucs.apply import BagOfModels

    cached = _hf_cached_files(name)
    if cached is not None:
        from demucs.hf import load_safetensors_model

        bag, files = cached
        return BagOfModels([load_safetensors_model(p) for p in files], bag.get("weights"),
                           bag.get("segment"))
    if _torchhub_cached_sigs(name) is not None:
        from demucs.pretrained import REMOTE_ROOT, _parse_remote_files
        from demucs.repo import AnyModelRepo, BagOnlyRepo, RemoteRepo

        # the exact objects demucs.pretrained.get_model builds for the legacy repo;
        # torch.hub finds every file in its cache, so nothing is downloaded.
        model_repo = RemoteRepo(_parse_remote_files(REMOTE_ROOT / "files.txt"))
        return AnyModelRepo(model_repo, BagOnlyRepo(REMOTE_ROOT, model_repo)).get_model(name)
    raise _unavailable(
        name, None, "the weights are not in the local cache and no download server can be reached "
                    "(no internet access)")


def _default_repo(repo: Path | str | None) -> Path | None:
    if repo is None:
        env = os.environ.get(MODEL_REPO_ENV, "").strip()
        repo = env or None
    return Path(repo).expanduser() if repo is not None else None


def load_demucs_model(name: str = DEFAULT_MODEL, repo: Path | str | None = None, *,
                      offline: bool | None = None):
    """Load a pretrained Demucs model or bag of models, in eval mode.

    Args:
        name: model name (``htdemucs``, ``htdemucs_ft``, ``htdemucs_6s``,
            ``mdx_extra``...) or a single model signature; ``hf://...`` names
            are passed to demucs unchanged.
        repo: local model folder holding ``<sig>[-<checksum>].th`` files and
            optional ``<name>.yaml`` bag files (demucs' ``--repo`` layout).
            Defaults to ``$RESONATE_MODEL_REPO``; ``None`` uses demucs'
            download caches (downloading on first use when online).
        offline: with no ``repo``, only use what is already cached.  ``None``
            decides by probing the download servers (a failed probe avoids
            demucs' ~25 s of network retries on machines with no internet).

    Raises:
        ModelUnavailableError: weights missing, folder invalid, unknown
            name, no internet, corrupt file... with a message saying how to
            get the weights and that ``--separator dsp`` needs none.
    """
    repo = _default_repo(repo)
    try:
        from demucs.pretrained import get_model

        if repo is not None:
            if not repo.is_dir():
                raise _unavailable(
                    name, repo, "the folder does not exist or is not a directory")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = get_model(name, repo)
        else:
            if offline is None and not name.startswith("hf://"):
                offline = not download_reachable()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = _load_from_caches(name) if offline else get_model(name)
    except ModelUnavailableError:
        raise
    except (Exception, SystemExit) as exc:  # demucs calls sys.exit() on some bad folders
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise _unavailable(name, repo, reason) from exc
    model.eval()
    return model


# --------------------------------------------------------------------------- separator
def _submodels(model) -> list:
    from demucs.apply import BagOfModels

    return list(model.models) if isinstance(model, BagOfModels) else [model]


class DemucsSeparator(Separator):
    """Window-by-window Demucs separation (see the module docstring).

    Args:
        model: a demucs model (``Demucs``, ``HDemucs``, ``HTDemucs``) or
            ``BagOfModels``, e.g. from :func:`load_demucs_model`.
        device: torch device string (``cpu``, ``cuda``, ``mps``); see
            :func:`resolve_device`.
        segment: seconds of audio the model sees per window; default the
            model's own (7.8 s for htdemucs).  Transformer models cannot use
            more than their training segment.
        overlap: window overlap fraction, ``[0, 1)``.
        shifts: number of random time shifts averaged per window (0 = off).
        threads: if given, ``torch.set_num_threads(threads)`` (process-wide).
        transition_power: overlap-add cross-fade power (demucs', >= 1).
        seed: base seed of the per-window shift offsets.
        model_name: name reported in :attr:`description`.

    ``separate(window)`` returns float32 ``(len(sources), 2, window.length)``.
    """

    def __init__(self, model, device: str = "cpu", segment: float | None = None,
                 overlap: float = 0.25, shifts: int = 0, threads: int | None = None,
                 transition_power: float = 1.0, seed: int = 0, model_name: str | None = None):
        import torch
        from demucs.htdemucs import HTDemucs

        if threads:
            torch.set_num_threads(int(threads))
        subs = _submodels(model)
        if int(model.samplerate) != SAMPLE_RATE or int(model.audio_channels) != CHANNELS:
            raise UnsupportedModelError(
                f"model works at {model.samplerate} Hz / {model.audio_channels} channel(s); the "
                f"engine needs {SAMPLE_RATE} Hz stereo")
        self.model = model
        self.device = str(device)
        self.model.to(self.device)
        self.cpu_threads = torch.get_num_threads() if self.device == "cpu" else 0
        self.model.eval()
        self.sources = tuple(model.sources)
        self.samplerate = int(model.samplerate)
        self.has_transformer = any(isinstance(m, HTDemucs) for m in subs)
        max_segment = min((m.segment for m in subs if isinstance(m, HTDemucs)), default=None)
        if segment is None:
            segment = max_segment if max_segment is not None else min(m.segment for m in subs)
        if segment <= 0:
            raise SettingsError(f"segment must be > 0 seconds, got {segment}")
        if max_segment is not None and segment > max_segment:
            raise SettingsError(
                f"segment {float(segment):g} s is longer than this transformer model was trained "
                f"for; the maximum is {float(max_segment):g} s")
        #: seconds the model sees per window (passed to apply_model as ``segment``)
        self.segment = segment
        #: samples the model sees per window
        self.model_segment_samples = int(self.samplerate * segment)
        self.shifts = int(shifts)
        if self.shifts < 0:
            raise SettingsError(f"shifts must be >= 0, got {shifts}")
        self.max_shift = int(0.5 * self.samplerate) if self.shifts else 0
        self.segment_samples = self.model_segment_samples
        if self.shifts and self.has_transformer:
            self.segment_samples -= self.max_shift
        if self.segment_samples <= 0:
            raise SettingsError(f"segment {float(segment):g} s is too short for shifts "
                                f"(needs more than {self.max_shift / self.samplerate:g} s)")
        self.overlap = float(overlap)
        self.transition_power = float(transition_power)
        self.seed = int(seed)
        self.context_samples = self._context_needed(subs)
        self.description = {
            "separator": "demucs",
            "model": model_name or type(model).__name__,
            "architecture": "+".join(sorted({type(m).__name__ for m in subs})),
            "n_models": len(subs),
            "sources": list(self.sources),
            "device": self.device,
            "segment_s": round(float(segment), 4),
            "overlap": self.overlap,
            "shifts": self.shifts,
        }
        # validates the geometry early (raises SettingsError)
        self.geometry  # noqa: B018

    def _context_needed(self, subs) -> int:
        """Context per side a full-length window needs (samples)."""
        from demucs.htdemucs import HTDemucs

        if self.shifts:
            return self.max_shift  # demucs pads by max_shift; further padding is zeros
        n = self.segment_samples
        delta = 0
        for m in subs:
            if isinstance(m, HTDemucs):
                valid = self.model_segment_samples
            elif hasattr(m, "valid_length"):
                valid = int(m.valid_length(n))
            else:
                valid = n
            delta = max(delta, valid - n)
        return int(delta)

    def separate(self, window: SeparationWindow) -> np.ndarray:
        """Stems of ``window``: float32 ``(len(sources), 2, window.length)``."""
        import torch
        from demucs.apply import TensorChunk, apply_model

        ctx = np.array(window.context, dtype=np.float32, copy=True)  # writable (Ray arrays are not)
        mix = torch.from_numpy(ctx)[None].to(self.device)
        chunk = TensorChunk(mix, window.context_offset, window.length)
        kwargs = dict(shifts=0, split=False, segment=self.segment, device=self.device)
        with torch.no_grad():
            if not self.shifts:
                out = apply_model(self.model, chunk, **kwargs)
            else:
                rng = random.Random(self.seed * 1_000_003 + int(window.seq))
                length, max_shift = window.length, self.max_shift
                padded = chunk.padded(length + 2 * max_shift)
                out = 0.0
                for _ in range(self.shifts):
                    offset = rng.randint(0, max_shift)
                    shifted = TensorChunk(padded, offset, length + max_shift - offset)
                    res = apply_model(self.model, shifted, **kwargs)
                    out = out + res[..., max_shift - offset:]
                out = out / self.shifts
        out = out[0].detach().to("cpu").numpy().astype(np.float32, copy=False)
        assert out.shape == (len(self.sources), CHANNELS, window.length), out.shape
        return out
