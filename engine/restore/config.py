"""Settings of restoration: de-clipping, frequency restoration, de-reverberation (plain, validated).

declip: ``off`` or ``auto``: the streaming S-SPADE de-clipper
    (:mod:`engine.restore.declip`) on the decoded input, before separation.
    ``auto`` repairs only where its detector finds clipping (a pile-up of
    samples at the top of the amplitude histogram, with a tolerance for the
    codec's blur); an unclipped recording passes bit-exactly.  Adds no
    latency to the output (its one-frame look-ahead, 2048 samples, is
    compensated); the report's ``stages.input`` says what it found and how
    many samples it repaired.
high_band: amount of regenerated high band above the detected cutoff, 0..2
    (linear gain of the generated band; 1 continues the spectral envelope;
    0 = off).  Applied to vocals, drums and other when the recording's high
    cutoff is below ``full_band_hz``.
high_band_rolloff_db_per_oct: extra roll-off of the regenerated band on top of
    the slope measured below the cutoff, dB/octave (0..24).
full_band_hz: a recording whose detected high cutoff is at or above this (Hz)
    is treated as full-band: no high-band extension.
sub_bass: amount of octave-down sub-bass synthesised on the bass stem, 0..2
    (0 = off).  Applied when the recording's low cutoff is above
    ``sub_bass_below_hz`` (a phone rolls off below about 100 Hz).
sub_bass_below_hz: see ``sub_bass`` (Hz).
dereverb: ``off``, ``spectral`` (late-reverb suppression) or ``wpe`` (online
    weighted prediction error).  Off by default: see README "De-reverberation".
dereverb_wet: dry/wet of the de-reverberation, 0..1.
rt60_s: reverberation time for the spectral suppressor (s); None = estimate
    online from the stream.
dereverb_floor_db: lowest gain of the spectral suppressor (dB, <= 0).
tonal: amount of the closed-loop tonal-balance correction, 0..1 (0 = off):
    per-band gains measured on the recording's head and predicted by the
    tonal model (:mod:`engine.restore.tonal`), the same zero-phase filter on
    every stem (on the stem's shared STFT: 2047 samples of latency when no other
    spectral stage already pays them).
tonal_max_db: cap of every tonal correction gain, +-dB (0..12).
tonal_min_snr_db: a band whose long-term level is less than this many dB
    above its noise floor is never boosted (dB, 0..30).
governor: check the whole job before the final master (:mod:`engine.restore.governor`):
    a band whose long-term level ended further from the tonal model's plausible
    clean target than the input's was, by more than ``governor_tol_db``, is
    pulled back towards the input in the final file (a fixed zero-phase filter).
governor_tol_db: see ``governor`` (dB, 0..12).
tonal_model: JSON file of a fitted tonal model (``benchmarks/restoration_eval.py
    --loo tonal`` writes them); null = the model shipped with the engine.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..config_fields import Choice, Flag, Number, Text, build, check_fields, setting
from .declip import MODES as DECLIP_MODES

DEREVERB_METHODS = ("off", "spectral", "wpe")


@dataclass(frozen=True)
class RestoreConfig:
    declip: str = setting(Choice(DECLIP_MODES), "off")
    high_band: float = setting(Number(0.0, 2.0), 1.0)
    high_band_rolloff_db_per_oct: float = setting(Number(0.0, 24.0), 6.0)
    full_band_hz: float = setting(Number(2000.0, 22050.0), 15000.0)
    sub_bass: float = setting(Number(0.0, 2.0), 0.5)
    sub_bass_below_hz: float = setting(Number(20.0, 300.0), 60.0)
    dereverb: str = setting(Choice(DEREVERB_METHODS), "off")
    dereverb_wet: float = setting(Number(0.0, 1.0), 0.7)
    rt60_s: float | None = setting(Number(0.05, 20.0, optional=True, none_means="estimate"), None)
    dereverb_floor_db: float = setting(Number(-40.0, 0.0), -12.0)
    tonal: float = setting(Number(0.0, 1.0), 0.0)
    tonal_max_db: float = setting(Number(0.0, 12.0), 9.0)
    tonal_min_snr_db: float = setting(Number(0.0, 30.0), 6.0)
    tonal_model: str | None = setting(Text(optional=True, none_means="built-in"), None)
    governor: bool = setting(Flag(), True)
    governor_tol_db: float = setting(Number(0.0, 12.0), 1.0)

    def __post_init__(self):
        check_fields(self, "restore")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, base: "RestoreConfig | None" = None) -> "RestoreConfig":
        """``base`` (default: the defaults above) updated by a (possibly partial) dict."""
        return build(cls, data, "restore", base)

    def to_dict(self) -> dict:
        return asdict(self)
