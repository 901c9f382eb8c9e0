"""The default enhancement chain of each stem.

Every stem gets the same ordered slots; a slot is present only when its knob
in :class:`~engine.enhance.config.StemEnhanceConfig` is active::

    high-pass -> gate/expander -> noise reduction (LSA) -> transient shaper
      -> de-esser -> EQ -> compressor -> bass exciter -> stereo width

What differs between stems is the preset values of those knobs and the fixed
design that ``eq_intensity`` and ``compression`` scale (:data:`STEM_DESIGNS`):

* vocals: high-pass 80 Hz, noise reduction, de-essing, presence EQ (+3 dB at
  3.5 kHz at full intensity, -2 dB mud at 250 Hz, +2 dB air shelf), 4:1 max
  (3:1 at the balanced 0.67) soft-knee compression.
* drums: high-pass 30 Hz, downward expander, transient shaping, EQ (+2.5 dB
  punch at 70 Hz, -2.5 dB boxiness at 400 Hz, +1.5 dB shelf at 8 kHz), light
  compression with a slow attack that lets hits through.
* bass: high-pass 30 Hz, EQ (+2 dB at 80 Hz, -2 dB mud at 250 Hz, +1.5 dB
  definition at 900 Hz), 6:1 max compression, 2nd/3rd harmonics of 30-120 Hz.
* other: noise reduction, EQ (-1.5 dB at 300 Hz, +2 dB shelf at 8 kHz), gentle
  glue compression, stereo width.

The chain's latency is the sum of its stages': 2047 samples for noise
reduction, 88 for the gate's look-ahead (2 ms), 0 for everything else.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..audio import CHANNELS, SAMPLE_RATE, STEM_NAMES
from ..errors import SettingsError
from ..stage import Chain, Gain, Stage
from .compressor import Compressor
from .config import StemEnhanceConfig
from .deesser import DeEsser
from .eq import EQBand, HighPass, ParametricEQ
from .exciter import BassExciter
from .gate import NoiseGate
from .lsa import LSANoiseSuppressor
from .noise_reduction import SpectralNoiseReducer
from .transient import TransientShaper
from .width import StereoWidth

#: largest gate range (dB) reached at ``gate = 1``
GATE_MAX_RANGE_DB = 36.0
#: de-esser depth (dB) at ``de_ess = 1``
DEESS_MAX_DEPTH_DB = 10.0
#: exciter mix (linear) at ``harmonics = 1``
HARMONICS_MAX_AMOUNT = 0.8
#: downward-expander ratio of the stem gate (gentler than a hard gate on cymbal tails)
GATE_EXPANDER_RATIO = 4.0
#: absolute floor of the gate's open threshold, dBFS
GATE_ABSOLUTE_THRESHOLD_DB = -70.0


@dataclass(frozen=True)
class CompressorDesign:
    """A stem's compressor at ``compression = 1``.

    threshold_db (dBFS), max_ratio, knee_db (dB), attack_ms / release_ms (ms),
    makeup_ref_db: make-up gain restores half the static reduction of a signal
    this many dB above the threshold (scaled with the ratio).
    """

    threshold_db: float
    max_ratio: float
    knee_db: float
    attack_ms: float
    release_ms: float
    makeup_ref_db: float = 12.0

    def build(self, amount: float, channels: int, sample_rate: int) -> Compressor:
        ratio = 1.0 + float(amount) * (self.max_ratio - 1.0)
        comp = Compressor(self.threshold_db, ratio, self.knee_db, self.attack_ms, self.release_ms, 0.0,
                          channels=channels, sample_rate=sample_rate)
        comp.makeup_db = -0.5 * comp.static_gain_db(self.threshold_db + self.makeup_ref_db)
        return comp


@dataclass(frozen=True)
class StemDesign:
    """Fixed per-stem design: EQ curve at ``eq_intensity = 1`` and compressor."""

    eq: tuple[EQBand, ...]
    compressor: CompressorDesign


STEM_DESIGNS: dict[str, StemDesign] = {
    "vocals": StemDesign(
        eq=(EQBand("peak", 250.0, -2.0, 1.0), EQBand("peak", 3500.0, 3.0, 0.9),
            EQBand("high_shelf", 10000.0, 2.0, 0.7071)),
        compressor=CompressorDesign(threshold_db=-24.0, max_ratio=4.0, knee_db=6.0, attack_ms=10.0, release_ms=120.0),
    ),
    "drums": StemDesign(
        eq=(EQBand("peak", 70.0, 2.5, 1.0), EQBand("peak", 400.0, -2.5, 1.2),
            EQBand("high_shelf", 8000.0, 1.5, 0.7071)),
        compressor=CompressorDesign(threshold_db=-18.0, max_ratio=3.0, knee_db=6.0, attack_ms=15.0, release_ms=100.0),
    ),
    "bass": StemDesign(
        eq=(EQBand("peak", 80.0, 2.0, 0.9), EQBand("peak", 250.0, -2.0, 1.0), EQBand("peak", 900.0, 1.5, 1.2)),
        compressor=CompressorDesign(threshold_db=-24.0, max_ratio=6.0, knee_db=6.0, attack_ms=20.0, release_ms=150.0),
    ),
    "other": StemDesign(
        eq=(EQBand("peak", 300.0, -1.5, 0.9), EQBand("high_shelf", 8000.0, 2.0, 0.7071)),
        compressor=CompressorDesign(threshold_db=-20.0, max_ratio=2.5, knee_db=8.0, attack_ms=20.0, release_ms=200.0),
    ),
}


def build_stem_chain(stem: str, config: StemEnhanceConfig, sample_rate: int = SAMPLE_RATE,
                     channels: int = CHANNELS) -> Chain:
    """The enhancement :class:`~engine.stage.Chain` of ``stem`` for ``config``.

    Stages whose knob is off are left out (an all-off config gives a chain of
    one 0 dB :class:`~engine.stage.Gain`, a bit-exact copy).  The chain reports
    its latency in samples (``chain.latency``); wrap it in
    :class:`~engine.stage.LatencyAligned` to line it up with its input.
    """
    if stem not in STEM_DESIGNS:
        raise SettingsError(f"unknown stem {stem!r}: choose one of {', '.join(STEM_NAMES)}")
    if not isinstance(config, StemEnhanceConfig):
        raise SettingsError(f"enhance.{stem} must be a StemEnhanceConfig, not {type(config).__name__}")
    design = STEM_DESIGNS[stem]
    kw = dict(channels=channels, sample_rate=sample_rate)
    stages: list[Stage] = []
    if config.highpass_hz > 0.0:
        stages.append(HighPass(config.highpass_hz, order=2, **kw))
    if config.gate > 0.0:
        stages.append(NoiseGate(threshold_db=GATE_ABSOLUTE_THRESHOLD_DB, relative_threshold_db=config.gate_threshold_db,
                                range_db=config.gate * GATE_MAX_RANGE_DB, ratio=GATE_EXPANDER_RATIO, hysteresis_db=4.0,
                                hold_ms=40.0, attack_ms=0.25, release_ms=100.0, lookahead_ms=2.0, **kw))
    if config.noise_reduction > 0.0 and config.noise_reduction_method == "lsa":
        stages.append(LSANoiseSuppressor(strength=config.noise_reduction,
                                         max_reduction_db=config.noise_reduction_max_db, **kw))
    elif config.noise_reduction > 0.0:
        stages.append(SpectralNoiseReducer(strength=config.noise_reduction,
                                           max_reduction_db=config.noise_reduction_max_db, **kw))
    if config.transient_attack_db != 0.0 or config.transient_sustain_db != 0.0:
        stages.append(TransientShaper(attack_db=config.transient_attack_db,
                                      sustain_db=config.transient_sustain_db, **kw))
    if config.de_ess > 0.0:
        stages.append(DeEsser(depth_db=config.de_ess * DEESS_MAX_DEPTH_DB, **kw))
    if config.eq_intensity > 0.0:
        stages.append(ParametricEQ([b.scaled(config.eq_intensity) for b in design.eq], **kw))
    if config.compression > 0.0:
        stages.append(design.compressor.build(config.compression, channels, sample_rate))
    if config.harmonics > 0.0:
        stages.append(BassExciter(amount=config.harmonics * HARMONICS_MAX_AMOUNT, **kw))
    if config.width != 1.0 and channels == 2:  # width needs a stereo pair
        stages.append(StereoWidth(config.width, sample_rate=sample_rate))
    if not stages:
        stages.append(Gain(0.0, channels=channels))
    return Chain(stages, name=f"{stem}-enhance")
