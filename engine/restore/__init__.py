"""Frequency restoration and de-reverberation stages (modules 04 and 05).

Every stage here is an in-order :class:`engine.stage.Stage`: float32
``(channels, samples)`` blocks, state carried across blocks, chunk-size
invariant, latency reported.

* :mod:`.bandwidth`: :func:`detect_band_limits`, :class:`BandLimitDetector`,
  :class:`HighBandExtender`, :func:`extender_for`.
* :mod:`.subbass`: :class:`SubBassSynth` (octave-down sub-bass).
* :mod:`.dereverb`: :class:`SpectralReverbSuppressor`, :class:`OnlineWPE`.
* :mod:`.rt60`: :func:`estimate_rt60`, :class:`RT60Estimator`.

The spectral stages are built on :class:`engine.dsp.stft.StreamingSTFTStage`.
"""
from .bandwidth import (BandLimitDetector, HighBandExtender, band_limits_from_psd, detect_band_limits,
                        extender_for)
from .dereverb import OnlineWPE, SpectralReverbSuppressor
from .rt60 import RT60Estimator, estimate_rt60
from .subbass import SubBassSynth

__all__ = [
    "BandLimitDetector", "HighBandExtender", "band_limits_from_psd", "detect_band_limits", "extender_for",
    "OnlineWPE", "SpectralReverbSuppressor", "RT60Estimator", "estimate_rt60",
    "SubBassSynth",
]
