"""Streaming estimators shared by the analysis and the restoration stages.

* :mod:`.band_limits`: :class:`BandLimitDetector`, :func:`detect_band_limits`,
  :func:`band_limits_from_psd` (effective band of a recording, Hz);
  :func:`detect_high_edge` / :func:`high_edge_from_psd` (the high band edge and a confidence).
* :mod:`.rt60`: :class:`RT60Estimator`, :func:`estimate_rt60` (reverberation
  time from free decays, seconds).

Estimators are sinks (see :mod:`engine.stage`): ``update(block)``,
``reset()`` and documented readings.
"""
from .band_limits import (BandLimitDetector, HighEdge, band_limits_from_psd, detect_band_limits, detect_high_edge,
                          high_edge_from_psd)
from .rt60 import RT60Estimator, estimate_rt60

__all__ = ["BandLimitDetector", "HighEdge", "detect_high_edge", "high_edge_from_psd", "band_limits_from_psd", "detect_band_limits", "RT60Estimator", "estimate_rt60"]
