"""The ``polish`` settings section: MultiBandDiffusion polish of the enhanced audio.

Plain data with its own validation (a :class:`SettingsError` names the field);
``resonate_stream.settings`` keeps the section as a dict and builds this.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from ..errors import SettingsError

MODES = ("off", "mbd")
BANDWIDTHS_KBPS = (1.5, 3.0, 6.0)
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class PolishConfig:
    """MBD polish (module 12).  Off by default: at real size MBD runs about 44x
    slower than real time on 2 CPU cores (a GPU feature).

    mode: ``off`` or ``mbd``.
    bandwidth_kbps: EnCodec bandwidth MBD decodes from: 1.5, 3 or 6 kbps
        (``get_mbd_24khz(bw=...)``; lower = more of MBD's own interpretation).
    strictness: how closely ``re_eq`` matches MBD's band levels to the input,
        0 (MBD's own balance) .. 1 (exact), for every stem but vocals.
    vocal_strictness: the same for the vocals stem (gentler: closer to the input).
    blend: share of MBD in the output below the crossover, 0 .. 1 (0 = the input, bit-for-bit).
    per_stem: polish each enhanced stem (True) or the mix (False).
    crossover_hz: MBD's correction is low-passed here (MBD at 24 kHz has nothing
        above 12 kHz); above ``crossover_hz + transition_hz`` the input is kept.
    transition_hz: width of the crossover's transition band (Hz).
    segment_s, overlap, context_s: windows (seconds; overlap a fraction) cut
        like Demucs' and stitched by overlap-add; each window sees
        ``context_s`` of real audio either side, discarded after.
    seed: job seed; window ``k``'s sampler noise is seeded from ``(seed, k)``.
    device: ``auto``, ``cpu``, ``cuda`` or ``mps`` for the polish actors / in process.
    model_dir: a Hugging Face cache folder (an ``HF_HOME``, or its ``hub``) to
        load the weights from, offline; None: the default HF cache (``HF_HOME``).
    """

    mode: str = "off"
    bandwidth_kbps: float = 6.0
    strictness: float = 0.8
    vocal_strictness: float = 0.9
    blend: float = 1.0
    per_stem: bool = True
    crossover_hz: float = 11000.0
    transition_hz: float = 1000.0
    segment_s: float = 5.0
    overlap: float = 0.25
    context_s: float = 0.25
    seed: int = 0
    device: str = "auto"
    model_dir: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "PolishConfig":
        """Build and validate from the settings section (unknown keys are named)."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"unknown setting polish.{unknown[0]} (known: {', '.join(sorted(known))})")
        if "bandwidth_kbps" in data and _is_number(data["bandwidth_kbps"]):
            data["bandwidth_kbps"] = float(data["bandwidth_kbps"])
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def strictness_for(self, stem: str | None) -> float:
        """``re_eq`` strictness for ``stem`` (None: the mix)."""
        return self.vocal_strictness if stem == "vocals" else self.strictness

    def validate(self) -> None:
        if self.mode not in MODES:
            raise SettingsError(f"polish.mode must be off or mbd, not {self.mode!r}")
        if not _is_number(self.bandwidth_kbps) or float(self.bandwidth_kbps) not in BANDWIDTHS_KBPS:
            raise SettingsError(f"polish.bandwidth_kbps must be 1.5, 3 or 6, not {self.bandwidth_kbps!r}")
        for name in ("strictness", "vocal_strictness", "blend"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        if not isinstance(self.per_stem, bool):
            raise SettingsError(f"polish.per_stem must be true or false, not {self.per_stem!r}")
        _check_range("crossover_hz", self.crossover_hz, 1000.0, 11500.0)
        _check_range("transition_hz", self.transition_hz, 100.0, 4000.0)
        if self.crossover_hz + self.transition_hz > 12000.0:
            raise SettingsError("polish.crossover_hz + polish.transition_hz must be <= 12000 Hz "
                                "(MBD at 24 kHz has nothing above 12 kHz)")
        _check_range("segment_s", self.segment_s, 1.0, 30.0)
        _check_range("overlap", self.overlap, 0.0, 0.75)
        _check_range("context_s", self.context_s, 0.0, 2.0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SettingsError(f"polish.seed must be an integer >= 0, not {self.seed!r}")
        if self.device not in DEVICES:
            raise SettingsError(f"polish.device must be auto, cpu, cuda or mps, not {self.device!r}")
        if self.model_dir is not None and not isinstance(self.model_dir, str):
            raise SettingsError(f"polish.model_dir must be a folder path, not {self.model_dir!r}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_range(name: str, value, lo: float, hi: float) -> None:
    if not _is_number(value) or not math.isfinite(value) or not lo <= value <= hi:
        raise SettingsError(f"polish.{name} must be a number in [{lo:g}, {hi:g}], not {value!r}")
