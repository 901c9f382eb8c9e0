"""Settings of the per-stem enhancement: typed, range-checked dataclasses.

:class:`StemEnhanceConfig` holds the knobs of one stem's chain; every field
applies to every stem (the chain of a stem contains exactly the stages whose
knob is active, see :func:`engine.enhance.chains.build_stem_chain`); the stems
differ in their preset values and in the fixed EQ curve / compressor design
that ``eq_intensity`` and ``compression`` scale.  :class:`EnhanceConfig`
holds one per stem plus ``enabled``.  The defaults switch everything off; the
presets (``conservative``, ``balanced``, ``aggressive``) are the YAML files of
``resonate_stream/presets``.

Both classes round-trip through plain dicts (:meth:`to_dict` /
:meth:`from_dict`); unknown keys, wrong types and out-of-range values raise
:class:`engine.errors.SettingsError` naming the offending key
(:mod:`engine.config_fields`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..audio import STEM_NAMES
from ..config_fields import Choice, Flag, Number, Section, build, check_fields, setting
from ..errors import SettingsError


NOISE_REDUCTION_METHODS = ("lsa", "gate")


@dataclass(frozen=True)
class StemEnhanceConfig:
    """Enhancement knobs of one stem.  The defaults switch everything off.

    highpass_hz: cut-off of a 12 dB/octave Butterworth high-pass, Hz
        (0 = off, else 10..500).
    noise_reduction: strength of the spectral noise reduction, 0..1
        (fraction of ``noise_reduction_max_db``; 0 = off).  Adds 2047 samples
        of latency (46 ms) when on, shared with the stem's other spectral
        stages (one STFT: :mod:`engine.dsp.spectral_chain`).
    noise_reduction_max_db: attenuation of pure-noise bins at strength 1, dB
        (1..40; with ``lsa`` the gain floor, 12..18 keeps the noise's shape
        without spectral holes).
    noise_reduction_method: ``lsa`` (Ephraim-Malah log-spectral amplitude with
        decision-directed a-priori SNR, MCRA noise tracker and a gain floor of
        ``-noise_reduction * noise_reduction_max_db`` dB, never gating:
        :class:`engine.enhance.lsa.LSANoiseSuppressor`) or ``gate`` (the older
        spectral gate, :class:`engine.enhance.noise_reduction.SpectralNoiseReducer`).
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

    highpass_hz: float = setting(Number(10.0, 500.0, off=0.0), 0.0)
    noise_reduction: float = setting(Number(0.0, 1.0), 0.0)
    noise_reduction_max_db: float = setting(Number(1.0, 40.0), 12.0)
    noise_reduction_method: str = setting(Choice(NOISE_REDUCTION_METHODS), "lsa")
    gate: float = setting(Number(0.0, 1.0), 0.0)
    gate_threshold_db: float = setting(Number(-80.0, 0.0), -35.0)
    transient_attack_db: float = setting(Number(-12.0, 12.0), 0.0)
    transient_sustain_db: float = setting(Number(-12.0, 12.0), 0.0)
    de_ess: float = setting(Number(0.0, 1.0), 0.0)
    eq_intensity: float = setting(Number(0.0, 1.0), 0.0)
    compression: float = setting(Number(0.0, 1.0), 0.0)
    harmonics: float = setting(Number(0.0, 1.0), 0.0)
    width: float = setting(Number(0.0, 2.0), 1.0)

    def __post_init__(self):
        check_fields(self, "enhance")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: "StemEnhanceConfig | None" = None,
                  where: str = "enhance") -> "StemEnhanceConfig":
        """``base`` (default: everything off) updated by ``data``; unknown keys raise."""
        return build(cls, data, where, base)

    def to_dict(self) -> dict:
        """Plain dict of every field (floats)."""
        return asdict(self)


@dataclass(frozen=True)
class EnhanceConfig:
    """Per-stem enhancement of a job.  The defaults switch everything off.

    enabled: False skips enhancement altogether (the pipeline builds no chain).
    vocals, drums, bass, other: the :class:`StemEnhanceConfig` of each stem.
    """

    enabled: bool = setting(Flag(), True)
    vocals: StemEnhanceConfig = setting(Section(StemEnhanceConfig), factory=StemEnhanceConfig)
    drums: StemEnhanceConfig = setting(Section(StemEnhanceConfig), factory=StemEnhanceConfig)
    bass: StemEnhanceConfig = setting(Section(StemEnhanceConfig), factory=StemEnhanceConfig)
    other: StemEnhanceConfig = setting(Section(StemEnhanceConfig), factory=StemEnhanceConfig)

    def __post_init__(self):
        check_fields(self, "enhance")

    def stem(self, name: str) -> StemEnhanceConfig:
        """The config of stem ``name`` (one of ``engine.audio.STEM_NAMES``)."""
        if name not in STEM_NAMES:
            raise SettingsError(f"unknown stem {name!r}: choose one of {', '.join(STEM_NAMES)}")
        return getattr(self, name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, base: "EnhanceConfig | None" = None) -> "EnhanceConfig":
        """``base`` (default: everything off) updated by a (possibly partial) dict.

        Keys: ``enabled`` (bool) and one mapping per stem with
        :class:`StemEnhanceConfig` fields overriding the base's values.
        """
        return build(cls, data, "enhance", base)

    def to_dict(self) -> dict:
        """Plain nested dict: ``enabled`` and one dict per stem."""
        return asdict(self)
