"""Loudness measurement and mastering.

* :mod:`.loudness` - streaming BS.1770-4 / R128 meter, true-peak meter.
* :mod:`.limiter` - look-ahead true-peak limiter (a Stage).
* :mod:`.preview` - the streamed preview master (loudness ride + limiter).
* :mod:`.final` - the exact final master (multi-pass on the stored mix).

The stem mixer lives in :mod:`engine.mix`.
"""
from .final import FinalMasterConfig, final_master
from .limiter import TruePeakLimiter
from .loudness import SILENCE_LUFS, RunningLoudness, StreamingLoudnessMeter, integrated_lufs
from .true_peak import TruePeakMeter, true_peak_dbtp
from .preview import PreviewMaster

__all__ = [
    "FinalMasterConfig", "final_master", "TruePeakLimiter", "SILENCE_LUFS", "RunningLoudness",
    "StreamingLoudnessMeter", "TruePeakMeter", "integrated_lufs", "true_peak_dbtp", "PreviewMaster",
]
