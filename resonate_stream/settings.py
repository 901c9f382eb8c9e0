"""Job settings: one typed config tree, built and validated once from a preset and overrides.

A :class:`Settings` is made only through :meth:`Settings.from_preset` /
:meth:`Settings.from_dict`: the preset's YAML file (the one source of presets,
:mod:`resonate_stream.presets`) updated by user overrides (a ``--settings``
file, ``--set SECTION.KEY=VALUE``, CLI flags, or ``start_job.settings`` of the
websocket protocol).  Every field's type and range is checked there, once
(:mod:`engine.config_fields`); a bad value raises
:class:`~engine.errors.SettingsError` (code ``bad_settings``) naming the
dotted field and what it accepts.  The typed sections then flow unchanged to
the stages (:meth:`Settings.pipeline_config`), the actors and the final master.

Sections:

``separation``  which separator runs and how (:class:`SeparationSettings`)
``enhance``     per-stem enhancement (``engine.enhance.config.EnhanceConfig``)
``restore``     frequency restoration and de-reverberation (``engine.restore.config.RestoreConfig``)
``mix``         stem levels (``engine.mix.MixConfig``)
``master``      loudness target, true-peak ceiling, limiter (``engine.master.config.MasterConfig``)
``export``      output file format (:class:`ExportSettings`): the one place the format is chosen
``polish``      MBD polish after enhancement (``engine.polish.config.PolishConfig``; off by default)
``generate``    JASCO generation mode (``engine.generate.config.GenerateConfig``; ``restore`` by default)
``reference``   how the mix is matched to a reference recording, when the job has one
                (``--reference``; ``engine.master.reference.ReferenceConfig``)
``adaptive``    adapt the enhancement to the input's measured SNR (see
                ``resonate_stream.strategy``); false keeps the preset exactly

Settings are plain data through :meth:`Settings.to_dict` (msgpack/JSON-able)
and back through :meth:`Settings.from_dict`; numbers are stored canonically
(floats, integers as ``int``), so equal settings give equal plain data (the
stem cache keys on ``separation``).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from engine.config import PipelineConfig
from engine.config_fields import Choice, Flag, Number, Section, Text, build, check_fields, setting
from engine.enhance.config import EnhanceConfig
from engine.io.encode import EXPORT_FORMATS, MP3_BITRATES
from engine.errors import SettingsError
from engine.master.config import MasterConfig
from engine.master.reference import ReferenceConfig
from engine.polish.config import PolishConfig
from engine.generate.config import GenerateConfig
from engine.mix import MixConfig
from engine.restore.config import RestoreConfig

from .presets import DEFAULT_PRESET, load_yaml, preset_names, read_preset


@dataclass(frozen=True)
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

    separator: str = setting(Choice(("auto", "demucs", "dsp")), "auto")
    model: str = setting(Text(), "htdemucs")
    model_repo: str | None = setting(Text(optional=True, none_means="torch-hub cache"), None)
    device: str = setting(Choice(("auto", "cpu", "cuda", "mps")), "auto")
    quality: str = setting(Choice(("preview", "render")), "preview")
    segment_s: float | None = setting(Number(0.5, 60.0, optional=True, none_means="default"), None)
    overlap: float | None = setting(Number(0.0, 1.0, open_hi=True, optional=True, none_means="from quality"), None)
    shifts: int | None = setting(Number(0, 10, integer=True, optional=True, none_means="from quality"), None)

    def __post_init__(self) -> None:
        check_fields(self, "separation")


@dataclass(frozen=True)
class ExportSettings:
    """Output file.

    format: ``wav``, ``flac``, ``mp3`` (VBR ~250 kbit/s), ``ogg`` (Vorbis) or
        ``opus`` (48 kHz).
    bit_depth: 16 or 24 (integer, TPDF-dithered) or 32 (float, WAV only);
        ignored for the lossy formats.
    sample_rate: 44100, 48000 or ``keep`` (the input's rate).
    mp3_bitrate: constant MP3 bitrate in kbit/s, or None for VBR V0.
    """

    format: str = setting(Choice(tuple(EXPORT_FORMATS)), "wav")
    bit_depth: int = setting(Choice((16, 24, 32)), 24)
    sample_rate: int | str = setting(Choice((44100, 48000, "keep")), 44100)
    mp3_bitrate: int | None = setting(Choice((None,) + MP3_BITRATES), None)

    def __post_init__(self) -> None:
        check_fields(self, "export")
        if self.mp3_bitrate is not None and self.format != "mp3":
            raise SettingsError(f"export.mp3_bitrate is for mp3 output only (format is {self.format})")
        if self.format == "flac" and self.bit_depth == 32:
            raise SettingsError("FLAC stores 16 or 24-bit integers: use --bit-depth 16 or 24, or --format wav")


@dataclass(frozen=True)
class Settings:
    """All settings of one job (typed; plain data through :meth:`to_dict`).

    Build it with :meth:`from_preset` or :meth:`from_dict`; ``preset`` names
    the preset the values started from (``Settings()`` itself holds the
    engine's field defaults, with enhancement off: it is the blank the preset
    file is applied to).
    """

    preset: str = setting(Choice(preset_names()), DEFAULT_PRESET)
    separation: SeparationSettings = setting(Section(SeparationSettings), factory=SeparationSettings)
    enhance: EnhanceConfig = setting(Section(EnhanceConfig), factory=EnhanceConfig)
    restore: RestoreConfig = setting(Section(RestoreConfig), factory=RestoreConfig)
    mix: MixConfig = setting(Section(MixConfig), factory=MixConfig)
    master: MasterConfig = setting(Section(MasterConfig), factory=MasterConfig)
    export: ExportSettings = setting(Section(ExportSettings), factory=ExportSettings)
    adaptive: bool = setting(Flag(), True)
    polish: PolishConfig = setting(Section(PolishConfig), factory=PolishConfig)
    generate: GenerateConfig = setting(Section(GenerateConfig), factory=GenerateConfig)
    reference: ReferenceConfig = setting(Section(ReferenceConfig), factory=ReferenceConfig)

    def __post_init__(self) -> None:
        check_fields(self, "")

    # -- construction (the one boundary) ------------------------------------
    @classmethod
    def from_preset(cls, name: str = DEFAULT_PRESET, overrides: Mapping[str, Any] | None = None) -> "Settings":
        """The preset ``name`` (its YAML file) updated by ``overrides`` (same nesting), checked.

        This is what the CLI and the gateway's ``start_job`` call; ``overrides``
        may be partial at any depth.  Raises :class:`SettingsError`.
        """
        if overrides is not None and not isinstance(overrides, Mapping):
            raise SettingsError(f"settings overrides must be a mapping of sections, got {overrides!r}")
        if overrides and "preset" in overrides:
            raise SettingsError("the preset is chosen by name (--preset, start_job settings.preset), "
                                "not as an override")
        preset = build(cls, read_preset(name), "", base=cls(preset=name))
        return build(cls, overrides, "", base=preset)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Settings":
        """Settings from plain data: the preset ``data["preset"]`` (default ``balanced``)
        updated by the other keys; ``from_dict(s.to_dict()) == s``."""
        if not isinstance(data, Mapping):
            raise SettingsError(f"settings must be a mapping of sections, got {data!r}")
        rest = {k: v for k, v in data.items() if k != "preset"}
        return cls.from_preset(data.get("preset", DEFAULT_PRESET), rest)

    def to_dict(self) -> dict:
        """Plain nested dict of every setting (JSON/msgpack-able; a fresh copy)."""
        return asdict(self)

    # -- what the stages read ------------------------------------------------
    def pipeline_config(self, band_limits_hz: tuple[float, float] = (20.0, 20000.0),
                        preview_prior=None, reference_profile=None, reference_prior=None,
                        tonal_profile=None, high_edge=None) -> PipelineConfig:
        """The typed sections the in-order stages read, with what was measured on the input's
        first seconds (band limits, the high band edge and its confidence,
        ``engine.master.preview.PreviewPrior``) and, with a
        reference recording, its profile and the input head's
        (``engine.master.reference.SpectrumProfile``)."""
        return PipelineConfig(enhance=self.enhance, restore=self.restore, mix=self.mix, master=self.master,
                              polish=self.polish, generate=self.generate, reference=self.reference,
                              band_limits_hz=tuple(band_limits_hz), preview_prior=preview_prior,
                              tonal_profile=tonal_profile, reference_profile=reference_profile, high_edge=high_edge,
                              reference_prior=reference_prior)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict:
    """``base`` updated by ``over`` recursively (``over`` wins); inputs untouched."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_set_option(item: str) -> dict:
    """``--set SECTION.KEY=VALUE`` as a nested override (``VALUE`` parsed as a YAML scalar).

    ``--set mix.gains_db.vocals=2`` -> ``{"mix": {"gains_db": {"vocals": 2}}}``;
    ``--set adaptive=false`` -> ``{"adaptive": False}``.  The value is checked
    with the rest of the settings by :meth:`Settings.from_preset`.
    """
    key, sep, text = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise SettingsError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
    try:
        value = load_yaml(text) if text.strip() else text
    except yaml.YAMLError:
        value = text
    node: dict = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        node = {part: node}
    return node


def load_overrides_file(path: str | Path) -> dict:
    """User overrides from a YAML or JSON file (same nesting as a preset)."""
    p = Path(path)
    try:
        data = load_yaml(p.read_text())
    except OSError as e:
        raise SettingsError(f"cannot read settings file {p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise SettingsError(f"settings file {p} is not valid YAML/JSON: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {p} must hold a mapping of sections")
    return data
