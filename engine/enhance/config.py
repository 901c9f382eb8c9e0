"""Settings of the per-stem enhancement: plain dataclasses with validation.

:class:`StemEnhanceConfig` holds the knobs of one stem's chain; every field
applies to every stem (the chain of a stem contains exactly the stages whose
knob is active, see :func:`engine.enhance.chains.build_stem_chain`); the stems
differ in their preset values and in the fixed EQ curve / compressor design
that ``eq_intensity`` and ``compression`` scale.  :class:`EnhanceConfig`
holds one per stem plus ``enabled``.  Presets: ``conservative``,
``balanced`` (default) and ``aggressive`` (:meth:`EnhanceConfig.preset`).

Both classes round-trip through plain dicts (:meth:`to_dict` /
:meth:`from_dict`); unknown keys, wrong types and out-of-range values raise
:class:`engine.errors.SettingsError` naming the offending key.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from ..audio import STEM_NAMES
from ..errors import SettingsError

PRESET_NAMES: tuple[str, ...] = ("conservative", "balanced", "aggressive")
DEFAULT_PRESET = "balanced"


@dataclass(frozen=True)
class StemEnhanceConfig:
    """Enhancement knobs of one stem.  The defaults switch everything off.

    highpass_hz: cut-off of a 12 dB/octave Butterworth high-pass, Hz
        (0 = off, else 10..500).
    noise_reduction: strength of the spectral noise reduction, 0..1
        (fraction of ``noise_reduction_max_db``; 0 = off).  Adds 2047 samples
        of latency (46 ms) when on.
    noise_reduction_max_db: attenuation of pure-noise bins at strength 1, dB
        (1..40).
    gate: depth of the downward expander (drums), 0..1: below the close
        threshold the gain falls 3 dB per dB (4:1 expander), by at most
        ``gate * 36`` dB (0 = off).  Adds 2 ms (88 samples) of
        look-ahead latency when on.
    gate_threshold_db: the expander opens when the stem's RMS level (5 ms)
        comes within this many dB of its recent peak RMS level (peak hold
        decaying 6 dB/s) and closes 4 dB below that, dB (-80..0); the open
        threshold never goes below -70 dBFS.
    transient_attack_db: extra gain on onsets (drums), dB (-12..12; + punchier,
        - softer; 0 = off).
    transient_sustain_db: extra gain on decaying tails, dB (-12..12; 0 = off).
    de_ess: de-esser depth (vocals), 0..1: sibilance (5-9 kHz) is reduced by
        up to ``de_ess * 10`` dB (0 = off).
    eq_intensity: scale of the stem's corrective EQ curve gains, 0..1
        (0 = flat; 1 = the full curve of ``engine.enhance.chains.STEM_DESIGNS``).
    compression: amount of compression, 0..1: the ratio is
        ``1 + compression * (max_ratio - 1)`` with the stem's design ``max_ratio``,
        make-up gain scaled alike (0 = off).
    harmonics: level of generated 2nd/3rd harmonics of the low band (bass), 0..1
        (linear, relative to the low band's level at ``harmonics = 1``: 0.8; 0 = off).
    width: stereo width, linear side gain, 0..2 (0 = mono, 1 = unchanged).
    """

    highpass_hz: float = 0.0
    noise_reduction: float = 0.0
    noise_reduction_max_db: float = 12.0
    gate: float = 0.0
    gate_threshold_db: float = -35.0
    transient_attack_db: float = 0.0
    transient_sustain_db: float = 0.0
    de_ess: float = 0.0
    eq_intensity: float = 0.0
    compression: float = 0.0
    harmonics: float = 0.0
    width: float = 1.0

    def __post_init__(self):
        self.validate()

    def validate(self, where: str = "enhance") -> None:
        """Raise :class:`SettingsError` for a value outside its range."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SettingsError(f"{where}.{f.name} must be a finite number, not {value!r}")
            lo, hi = STEM_FIELD_RANGES[f.name]
            if not lo <= value <= hi:
                raise SettingsError(f"{where}.{f.name} must be between {lo:g} and {hi:g}, not {value!r}")
        if 0.0 < self.highpass_hz < 10.0:
            raise SettingsError(f"{where}.highpass_hz must be 0 (off) or between 10 and 500 Hz")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: "StemEnhanceConfig | None" = None,
                  where: str = "enhance") -> "StemEnhanceConfig":
        """``base`` (default: everything off) updated by ``data``; unknown keys raise."""
        if not isinstance(data, Mapping):
            raise SettingsError(f"{where} must be a mapping of settings, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise SettingsError(f"unknown setting {where}.{key} (known: {', '.join(sorted(known))})")
        values = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingsError(f"{where}.{key} must be a number, not {value!r}")
            values[key] = float(value)
        try:
            return replace(base if base is not None else cls(), **values)
        except SettingsError as exc:
            raise SettingsError(exc.message.replace("enhance.", f"{where}.", 1)) from None

    def to_dict(self) -> dict:
        """Plain dict of every field (floats)."""
        return {k: float(v) for k, v in asdict(self).items()}


#: allowed range of every StemEnhanceConfig field (inclusive)
STEM_FIELD_RANGES: dict[str, tuple[float, float]] = {
    "highpass_hz": (0.0, 500.0),
    "noise_reduction": (0.0, 1.0),
    "noise_reduction_max_db": (1.0, 40.0),
    "gate": (0.0, 1.0),
    "gate_threshold_db": (-80.0, 0.0),
    "transient_attack_db": (-12.0, 12.0),
    "transient_sustain_db": (-12.0, 12.0),
    "de_ess": (0.0, 1.0),
    "eq_intensity": (0.0, 1.0),
    "compression": (0.0, 1.0),
    "harmonics": (0.0, 1.0),
    "width": (0.0, 2.0),
}


def _preset_values(name: str) -> dict[str, dict[str, float]]:
    """Per-stem field values of the preset ``name`` (a fresh dict)."""
    if name == "conservative":
        return {
            "vocals": dict(highpass_hz=70.0, noise_reduction=0.3, de_ess=0.3, eq_intensity=0.4, compression=0.4),
            "drums": dict(highpass_hz=25.0, gate=0.3, gate_threshold_db=-40.0, transient_attack_db=1.5,
                          eq_intensity=0.4, compression=0.2),
            "bass": dict(highpass_hz=28.0, eq_intensity=0.4, compression=0.4, harmonics=0.2),
            "other": dict(highpass_hz=25.0, noise_reduction=0.25, eq_intensity=0.4, compression=0.2, width=1.05),
        }
    if name == "balanced":
        return {
            "vocals": dict(highpass_hz=80.0, noise_reduction=0.5, de_ess=0.5, eq_intensity=0.7, compression=0.67),
            "drums": dict(highpass_hz=30.0, gate=0.5, gate_threshold_db=-35.0, transient_attack_db=3.0,
                          transient_sustain_db=-1.0, eq_intensity=0.7, compression=0.4),
            "bass": dict(highpass_hz=30.0, eq_intensity=0.7, compression=0.6, harmonics=0.4),
            "other": dict(highpass_hz=30.0, noise_reduction=0.4, eq_intensity=0.6, compression=0.3, width=1.15),
        }
    if name == "aggressive":
        return {
            "vocals": dict(highpass_hz=90.0, noise_reduction=0.8, de_ess=0.8, eq_intensity=1.0, compression=1.0),
            "drums": dict(highpass_hz=35.0, gate=0.8, gate_threshold_db=-30.0, transient_attack_db=5.0,
                          transient_sustain_db=-2.0, eq_intensity=1.0, compression=0.6),
            "bass": dict(highpass_hz=35.0, eq_intensity=1.0, compression=0.9, harmonics=0.7),
            "other": dict(highpass_hz=35.0, noise_reduction=0.7, eq_intensity=1.0, compression=0.5, width=1.3),
        }
    raise SettingsError(f"unknown enhancement preset {name!r}: choose one of {', '.join(PRESET_NAMES)}")


def _preset_stem(name: str, stem: str) -> StemEnhanceConfig:
    return StemEnhanceConfig(**_preset_values(name)[stem])


@dataclass(frozen=True)
class EnhanceConfig:
    """Per-stem enhancement of a job.  The defaults are the ``balanced`` preset.

    enabled: False skips enhancement altogether (the pipeline builds no chain).
    vocals, drums, bass, other: the :class:`StemEnhanceConfig` of each stem.
    """

    enabled: bool = True
    vocals: StemEnhanceConfig = field(default_factory=lambda: _preset_stem(DEFAULT_PRESET, "vocals"))
    drums: StemEnhanceConfig = field(default_factory=lambda: _preset_stem(DEFAULT_PRESET, "drums"))
    bass: StemEnhanceConfig = field(default_factory=lambda: _preset_stem(DEFAULT_PRESET, "bass"))
    other: StemEnhanceConfig = field(default_factory=lambda: _preset_stem(DEFAULT_PRESET, "other"))

    def __post_init__(self):
        if not isinstance(self.enabled, bool):
            raise SettingsError(f"enhance.enabled must be true or false, not {self.enabled!r}")
        for stem in STEM_NAMES:
            if not isinstance(getattr(self, stem), StemEnhanceConfig):
                raise SettingsError(f"enhance.{stem} must be a StemEnhanceConfig")

    @classmethod
    def preset(cls, name: str = DEFAULT_PRESET) -> "EnhanceConfig":
        """The ready-made configuration ``conservative``, ``balanced`` or ``aggressive``."""
        values = _preset_values(name)
        return cls(enabled=True, **{stem: StemEnhanceConfig(**values[stem]) for stem in STEM_NAMES})

    def stem(self, name: str) -> StemEnhanceConfig:
        """The config of stem ``name`` (one of ``engine.audio.STEM_NAMES``)."""
        if name not in STEM_NAMES:
            raise SettingsError(f"unknown stem {name!r}: choose one of {', '.join(STEM_NAMES)}")
        return getattr(self, name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, base: "EnhanceConfig | None" = None) -> "EnhanceConfig":
        """Build from a (possibly partial) dict.

        Keys: ``enabled`` (bool), ``preset`` (name of the base preset, default
        ``balanced``), and one mapping per stem with :class:`StemEnhanceConfig`
        fields overriding the base's values.  ``base`` (if given, and no
        ``preset`` key) replaces the balanced preset as the starting point.
        """
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise SettingsError(f"enhance must be a mapping of settings, not {type(data).__name__}")
        known = ("enabled", "preset") + STEM_NAMES
        for key in data:
            if key not in known:
                raise SettingsError(f"unknown setting enhance.{key} (known: {', '.join(known)})")
        if "preset" in data:
            if not isinstance(data["preset"], str):
                raise SettingsError(f"enhance.preset must be a preset name, not {data['preset']!r}")
            base = cls.preset(data["preset"])
        elif base is None:
            base = cls.preset(DEFAULT_PRESET)
        enabled = data.get("enabled", base.enabled)
        if not isinstance(enabled, bool):
            raise SettingsError(f"enhance.enabled must be true or false, not {enabled!r}")
        stems = {
            stem: StemEnhanceConfig.from_dict(data[stem], base=getattr(base, stem), where=f"enhance.{stem}")
            if stem in data else getattr(base, stem)
            for stem in STEM_NAMES
        }
        return cls(enabled=enabled, **stems)

    def to_dict(self) -> dict:
        """Plain nested dict: ``enabled`` and one dict per stem."""
        out: dict[str, Any] = {"enabled": self.enabled}
        for stem in STEM_NAMES:
            out[stem] = getattr(self, stem).to_dict()
        return out
