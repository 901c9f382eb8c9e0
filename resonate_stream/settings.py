"""Job settings: presets shipped as YAML, user overrides, validation.

A :class:`Settings` is plain data (JSON/msgpack-able through :meth:`to_dict`),
so the same object travels from the CLI, the websocket protocol or a preset
file to the in-process runner or the Ray actors.  Sections:

``separation``  which separator runs and how (see :class:`SeparationSettings`)
``enhance``     per-stem enhancement (``engine.enhance.config.EnhanceConfig``)
``restore``     frequency restoration and de-reverberation (``engine.restore``)
``mix``         stem levels (``engine.mix.MixConfig``)
``master``      loudness target and true-peak ceiling (:class:`MasterSettings`)
``export``      output file format (:class:`ExportSettings`)
``polish``      MBD polish after enhancement (``engine.polish.config.PolishConfig``; off by default)
``adaptive``    adapt the enhancement to the input's measured SNR (see
                ``resonate_stream.strategy``); false keeps the preset exactly
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from engine.errors import SettingsError

PRESETS = ("conservative", "balanced", "aggressive")
DEFAULT_PRESET = "balanced"


def _from_mapping(cls, data: Mapping[str, Any], section: str):
    """Build dataclass ``cls`` from ``data``, naming any unknown key."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"unknown setting {section}.{unknown[0]} (known: {', '.join(sorted(known))})")
    return cls(**dict(data))


@dataclass
class SeparationSettings:
    """Source separation.

    separator: ``auto`` (Demucs when its weights load, else the DSP separator),
        ``demucs`` (fail when weights are missing) or ``dsp`` (weight-free).
    model: Demucs model name (``htdemucs``, ``htdemucs_ft``, ``mdx_extra`` ...).
    model_repo: folder holding Demucs weights (``.th`` + ``.yaml``); None uses the
        torch-hub cache (env ``RESONATE_MODEL_REPO`` also sets it).
    device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
    quality: ``preview`` (fast: less overlap, no shifts) or ``render`` (best).
    segment_s: window length in seconds (None: the model's own / DSP default).
    overlap: window overlap as a fraction of the window (None: from quality).
    shifts: random-shift averaging passes (None: from quality; deterministic).
    """

    separator: str = "auto"
    model: str = "htdemucs"
    model_repo: str | None = None
    device: str = "auto"
    quality: str = "preview"
    segment_s: float | None = None
    overlap: float | None = None
    shifts: int | None = None

    def validate(self) -> None:
        if self.separator not in ("auto", "demucs", "dsp"):
            raise SettingsError(f"separation.separator must be auto, demucs or dsp, not {self.separator!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise SettingsError(f"separation.device must be auto, cpu, cuda or mps, not {self.device!r}")
        if self.quality not in ("preview", "render"):
            raise SettingsError(f"separation.quality must be preview or render, not {self.quality!r}")
        if self.overlap is not None and not 0.0 <= self.overlap < 1.0:
            raise SettingsError("separation.overlap must be in [0, 1)")
        if self.segment_s is not None and not 0.5 <= self.segment_s <= 60:
            raise SettingsError("separation.segment_s must be between 0.5 and 60 seconds")
        if self.shifts is not None and not 0 <= int(self.shifts) <= 10:
            raise SettingsError("separation.shifts must be between 0 and 10")


@dataclass
class MasterSettings:
    """Mastering targets.

    target_lufs: integrated loudness of the final file, LUFS (-40..-5; -14 suits
        streaming services).  The streamed preview rides towards it too.
    ceiling_dbtp: true-peak ceiling, dBTP (-12..0), measured 4x oversampled.
    limiter_lookahead_ms: look-ahead of the true-peak limiter, ms.
    limiter_release_ms: release time of the limiter, ms.
    """

    target_lufs: float = -14.0
    ceiling_dbtp: float = -1.0
    limiter_lookahead_ms: float = 5.0
    limiter_release_ms: float = 80.0

    def validate(self) -> None:
        if not -40.0 <= self.target_lufs <= -5.0:
            raise SettingsError("master.target_lufs must be between -40 and -5 LUFS")
        if not -12.0 <= self.ceiling_dbtp <= 0.0:
            raise SettingsError("master.ceiling_dbtp must be between -12 and 0 dBTP")


@dataclass
class ExportSettings:
    """Output file.

    format: ``wav``, ``flac`` or ``mp3`` (VBR ~250 kbit/s).
    bit_depth: 16 or 24 (integer, TPDF-dithered) or 32 (float, WAV only);
        ignored for MP3.
    sample_rate: 44100, 48000 or ``keep`` (the input's rate).
    """

    format: str = "wav"
    bit_depth: int = 24
    sample_rate: int | str = 44100

    def validate(self) -> None:
        if self.format not in ("wav", "flac", "mp3"):
            raise SettingsError(f"export.format must be wav, flac or mp3, not {self.format!r}")
        if int(self.bit_depth) not in (16, 24, 32):
            raise SettingsError("export.bit_depth must be 16, 24 or 32")
        if self.format == "flac" and int(self.bit_depth) == 32:
            raise SettingsError("FLAC stores 16 or 24-bit integers: use --bit-depth 16 or 24, or --format wav")
        if self.sample_rate not in (44100, 48000, "keep"):
            raise SettingsError("export.sample_rate must be 44100, 48000 or keep")


@dataclass
class Settings:
    """All settings of one job (plain data)."""

    preset: str = DEFAULT_PRESET
    separation: SeparationSettings = field(default_factory=SeparationSettings)
    enhance: dict = field(default_factory=dict)
    restore: dict = field(default_factory=dict)
    mix: dict = field(default_factory=dict)
    master: MasterSettings = field(default_factory=MasterSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    adaptive: bool = True
    polish: dict = field(default_factory=dict)

    # -- construction -------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str = DEFAULT_PRESET, overrides: Mapping[str, Any] | None = None) -> "Settings":
        """The named preset, deep-merged with ``overrides`` (same nesting), validated."""
        data = load_preset(name)
        if overrides:
            data = deep_merge(data, overrides)
        data["preset"] = name
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Settings":
        data = dict(data)
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise SettingsError(f"unknown settings section {unknown[0]!r}")
        s = cls(
            preset=str(data.get("preset", DEFAULT_PRESET)),
            separation=_from_mapping(SeparationSettings, data.get("separation") or {}, "separation"),
            enhance=dict(data.get("enhance") or {}),
            restore=dict(data.get("restore") or {}),
            mix=dict(data.get("mix") or {}),
            master=_from_mapping(MasterSettings, data.get("master") or {}, "master"),
            export=_from_mapping(ExportSettings, data.get("export") or {}, "export"),
            adaptive=data.get("adaptive", True),
            polish=dict(data.get("polish") or {}),
        )
        if not isinstance(s.adaptive, bool):
            raise SettingsError("adaptive must be true or false")
        s.validate()
        return s

    def to_dict(self) -> dict:
        return copy.deepcopy(asdict(self))

    def validate(self) -> None:
        self.separation.validate()
        self.master.validate()
        self.export.validate()
        # building the engine configs validates the free-form sections
        self.enhance_config()
        self.restore_config()
        self.mix_config()
        self.polish_config()

    # -- engine configs -----------------------------------------------------
    def enhance_config(self):
        from engine.enhance.config import EnhanceConfig

        return EnhanceConfig.from_dict(self.enhance)

    def restore_config(self):
        from engine.restore.config import RestoreConfig

        return RestoreConfig.from_dict(self.restore)

    def mix_config(self):
        from engine.mix import MixConfig

        return MixConfig.from_dict(self.mix)

    def polish_config(self):
        from engine.polish.config import PolishConfig

        return PolishConfig.from_dict(self.polish)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict:
    """``base`` updated by ``over`` recursively (``over`` wins); inputs untouched."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_preset(name: str) -> dict:
    """The preset ``name`` as a nested dict (from the YAML shipped in the package)."""
    if name not in PRESETS:
        raise SettingsError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    text = resources.files("resonate_stream").joinpath("presets", f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def load_overrides_file(path: str | Path) -> dict:
    """User overrides from a YAML or JSON file (same nesting as a preset)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise SettingsError(f"cannot read settings file {p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise SettingsError(f"settings file {p} is not valid YAML/JSON: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {p} must hold a mapping of sections")
    return data
