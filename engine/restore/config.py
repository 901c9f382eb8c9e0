"""Settings of frequency restoration and de-reverberation (plain, validated).

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
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from ..errors import SettingsError

DEREVERB_METHODS = ("off", "spectral", "wpe")


@dataclass(frozen=True)
class RestoreConfig:
    high_band: float = 1.0
    high_band_rolloff_db_per_oct: float = 6.0
    full_band_hz: float = 15000.0
    sub_bass: float = 0.5
    sub_bass_below_hz: float = 60.0
    dereverb: str = "off"
    dereverb_wet: float = 0.7
    rt60_s: float | None = None
    dereverb_floor_db: float = -12.0

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        checks = {"high_band": (0.0, 2.0), "high_band_rolloff_db_per_oct": (0.0, 24.0), "sub_bass": (0.0, 2.0),
                  "full_band_hz": (2000.0, 22050.0),
                  "sub_bass_below_hz": (20.0, 300.0), "dereverb_wet": (0.0, 1.0), "dereverb_floor_db": (-40.0, 0.0)}
        for name, (lo, hi) in checks.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise SettingsError(f"restore.{name} must be a number between {lo:g} and {hi:g}, not {v!r}")
        if self.dereverb not in DEREVERB_METHODS:
            raise SettingsError(f"restore.dereverb must be one of {', '.join(DEREVERB_METHODS)}, not {self.dereverb!r}")
        if self.rt60_s is not None and not 0.05 <= float(self.rt60_s) <= 20.0:
            raise SettingsError("restore.rt60_s must be between 0.05 and 20 s, or null (estimate)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "RestoreConfig":
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise SettingsError(f"unknown setting restore.{key} (known: {', '.join(sorted(known))})")
        return replace(cls(), **data)

    def to_dict(self) -> dict:
        return asdict(self)
