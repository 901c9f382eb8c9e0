"""Which restoration stages each stem gets, given the recording's band limits."""
from __future__ import annotations

from ..stage import Chain, Stage
from .bandwidth import HighBandExtender
from .config import RestoreConfig
from .dereverb import OnlineWPE, SpectralReverbSuppressor
from .subbass import SubBassSynth

#: stems whose missing high band is regenerated
HIGH_BAND_STEMS = ("vocals", "drums", "other")


def build_restore_chain(stem: str, cfg: RestoreConfig, band_limits_hz: tuple[float, float]) -> Chain:
    """De-reverberation then bandwidth restoration for ``stem`` (may be empty).

    ``band_limits_hz`` is the detected ``(low, high)`` band of the recording.
    """
    low_hz, high_hz = band_limits_hz
    stages: list[Stage] = []
    if cfg.dereverb == "spectral" and stem != "bass":
        stages.append(SpectralReverbSuppressor(rt60_s=cfg.rt60_s, floor_db=cfg.dereverb_floor_db, wet=cfg.dereverb_wet))
    elif cfg.dereverb == "wpe" and stem != "bass":
        stages.append(OnlineWPE(wet=cfg.dereverb_wet, max_hz=min(high_hz + 500.0, 20000.0)))
    if stem in HIGH_BAND_STEMS and cfg.high_band > 0 and 500.0 <= high_hz < cfg.full_band_hz:
        stages.append(HighBandExtender(cutoff_hz=high_hz, amount=cfg.high_band,
                                       rolloff_db_per_oct=cfg.high_band_rolloff_db_per_oct))
    if stem == "bass" and cfg.sub_bass > 0 and low_hz > cfg.sub_bass_below_hz:
        stages.append(SubBassSynth(amount=cfg.sub_bass))
    return Chain(stages, name=f"{stem}-restore")
