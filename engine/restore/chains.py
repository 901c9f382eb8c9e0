"""Which restoration stages each stem gets, given the recording's band limits."""
from __future__ import annotations

from ..stage import Chain, Stage
from .bandwidth import HighBandExtender
from .config import RestoreConfig
from .dereverb import OnlineWPE, SpectralReverbSuppressor
from .subbass import SubBassSynth

#: stems whose missing high band is regenerated
HIGH_BAND_STEMS = ("vocals", "drums", "other")


def build_restore_chain(stem: str, cfg: RestoreConfig, band_limits_hz: tuple[float, float],
                        high_edge: tuple[float, float] | None = None) -> Chain:
    """De-reverberation then bandwidth restoration for ``stem`` (may be empty).

    ``band_limits_hz`` is the detected ``(low, high)`` band of the recording;
    ``high_edge`` the detected ``(edge_hz, confidence)`` of its high band edge
    (:func:`engine.estimators.band_limits.high_edge_from_psd`): the high band is
    regenerated from the edge with ``amount * confidence``, and not at all with
    confidence 0 or an edge at or above ``cfg.full_band_hz``.  Without
    ``high_edge`` the extension starts at ``band_limits_hz[1]``, confidence 1.
    """
    low_hz, high_hz = band_limits_hz
    edge_hz, confidence = (high_hz, 1.0) if high_edge is None else high_edge
    stages: list[Stage] = []
    if cfg.dereverb == "spectral" and stem != "bass":
        stages.append(SpectralReverbSuppressor(rt60_s=cfg.rt60_s, floor_db=cfg.dereverb_floor_db, wet=cfg.dereverb_wet))
    elif cfg.dereverb == "wpe" and stem != "bass":
        stages.append(OnlineWPE(wet=cfg.dereverb_wet, max_hz=min(high_hz + 500.0, 20000.0)))
    if (stem in HIGH_BAND_STEMS and cfg.high_band > 0 and confidence > 0.0
            and 500.0 <= edge_hz < cfg.full_band_hz):
        stages.append(HighBandExtender(cutoff_hz=edge_hz, amount=cfg.high_band, confidence=min(confidence, 1.0),
                                       rolloff_db_per_oct=cfg.high_band_rolloff_db_per_oct))
    if stem == "bass" and cfg.sub_bass > 0 and low_hz > cfg.sub_bass_below_hz:
        stages.append(SubBassSynth(amount=cfg.sub_bass))
    return Chain(stages, name=f"{stem}-restore")
