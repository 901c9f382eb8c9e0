"""Frequency restoration and de-reverberation stages (modules 04 and 05).

Every stage here is an in-order :class:`engine.stage.Stage`: float32
``(channels, samples)`` blocks, state carried across blocks, chunk-size
invariant, latency reported.

* :mod:`.declip`: :class:`~.declip.Declipper` (streaming S-SPADE de-clipper; the
  job graph runs it on the input, before separation: :class:`engine.pipeline.InputRestorer`).
* :mod:`.bandwidth`: :class:`HighBandExtender`, :func:`extender_for`.
* :mod:`.subbass`: :class:`SubBassSynth` (octave-down sub-bass).
* :mod:`.dereverb`: :class:`SpectralReverbSuppressor`, :class:`OnlineWPE`.

The spectral stages are built on :class:`engine.dsp.stft.StreamingSTFTStage`;
the estimators they share with the analysis (band limits, RT60) live in
:mod:`engine.estimators`.
"""
from .bandwidth import HighBandExtender, extender_for
from .dereverb import OnlineWPE, SpectralReverbSuppressor
from .subbass import SubBassSynth

__all__ = [
    "HighBandExtender", "extender_for", "OnlineWPE", "SpectralReverbSuppressor", "SubBassSynth",
]
