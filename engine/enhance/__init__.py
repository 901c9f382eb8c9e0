"""Per-stem enhancement: stateful, chunk-size invariant streaming stages.

Stages (all :class:`engine.stage.Stage` subclasses, float32 ``(channels,
samples)`` in and out, explicit state, ``reset()``, reported ``latency``):

* :class:`ParametricEQ`, :class:`HighPass` (:mod:`.eq`) - biquad cascades.
* :class:`Compressor` (:mod:`.compressor`) - soft-knee, stereo-linked.
* :class:`NoiseGate` (:mod:`.gate`) - gate / downward expander with look-ahead.
* :class:`TransientShaper` (:mod:`.transient`) - attack / sustain in dB.
* :class:`DeEsser` (:mod:`.deesser`) - split-band sibilance reduction.
* :class:`LSANoiseSuppressor` (:mod:`.lsa`) - Ephraim-Malah LSA, MCRA noise, gain floor.
* :class:`SpectralNoiseReducer` (:mod:`.noise_reduction`) - streaming STFT gate.
* :class:`StereoWidth` (:mod:`.width`) - mid/side width.
* :class:`BassExciter` (:mod:`.exciter`) - 2nd/3rd harmonics of the low band.

:func:`build_stem_chain` builds a stem's default chain from its
:class:`StemEnhanceConfig`; :class:`EnhanceConfig` holds all four stems (the
presets are the YAML files of ``resonate_stream/presets``).
"""
from .chains import STEM_DESIGNS, build_stem_chain
from .compressor import Compressor
from .config import EnhanceConfig, StemEnhanceConfig
from .deesser import DeEsser
from .eq import EQBand, HighPass, ParametricEQ
from .exciter import BassExciter
from .gate import NoiseGate
from .lsa import LSANoiseSuppressor
from .noise_reduction import SpectralNoiseReducer
from .transient import TransientShaper
from .width import StereoWidth

__all__ = [
    "BassExciter", "Compressor", "DeEsser", "EQBand", "EnhanceConfig", "HighPass", "LSANoiseSuppressor", "NoiseGate",
    "ParametricEQ", "STEM_DESIGNS", "SpectralNoiseReducer", "StemEnhanceConfig", "StereoWidth", "TransientShaper",
    "build_stem_chain",
]
