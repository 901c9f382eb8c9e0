"""Source separation as a windowed, parallelisable stage (contract 1).

``WindowPlanner`` cuts the stream into overlapping windows (demucs'
``apply_model`` geometry), any :class:`Separator` turns a window into stems
(independently, in any order, on any machine), and ``OverlapAddStitcher``
reorders and overlap-adds them back.  ``StreamingSeparation`` wires the three
together in-process.  Heavy imports (torch, demucs) happen lazily.
"""
from .base import Separator, WindowGeometry, stems_from_dict, to_stem_dict
from .demucs_separator import (DemucsSeparator, UnsupportedModelError, demucs_quality_params,
                               demucs_weights_present, device_notes, load_demucs_model,
                               resolve_device)
from .dsp_separator import DspSeparator
from .factory import build_separator
from .quality import SeparationQualityMeter, assess_separation_quality
from .stitcher import OverlapAddStitcher, StitchError, demucs_transition_weight
from .streaming import StreamingSeparation
from .windows import SeparationWindow, WindowPlanner, n_windows, window_stride

__all__ = [
    "DemucsSeparator", "DspSeparator", "OverlapAddStitcher", "SeparationQualityMeter",
    "SeparationWindow", "Separator", "StitchError", "StreamingSeparation",
    "UnsupportedModelError", "WindowGeometry", "WindowPlanner", "assess_separation_quality",
    "build_separator", "demucs_quality_params", "demucs_transition_weight",
    "demucs_weights_present", "device_notes", "load_demucs_model", "n_windows",
    "resolve_device", "stems_from_dict", "to_stem_dict", "window_stride",
]
