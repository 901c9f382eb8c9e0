"""The ``polish`` settings section: MultiBandDiffusion polish of the enhanced audio.

A typed section of the job's settings (``Settings.polish``), checked field by
field by :mod:`engine.config_fields` like every other section.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..config_fields import Choice, Flag, Number, Text, build, check_fields, setting
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
    per_stem: polish each enhanced stem (True) or the mix once, between the mixer
        and the preview master (False: 4x less MBD work; the stems stay unpolished).
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

    mode: str = setting(Choice(MODES), "off")
    bandwidth_kbps: float = setting(Choice(BANDWIDTHS_KBPS), 6.0)
    strictness: float = setting(Number(0.0, 1.0), 0.8)
    vocal_strictness: float = setting(Number(0.0, 1.0), 0.9)
    blend: float = setting(Number(0.0, 1.0), 1.0)
    per_stem: bool = setting(Flag(), True)
    crossover_hz: float = setting(Number(1000.0, 11500.0), 11000.0)
    transition_hz: float = setting(Number(100.0, 4000.0), 1000.0)
    segment_s: float = setting(Number(1.0, 30.0), 5.0)
    overlap: float = setting(Number(0.0, 0.75), 0.25)
    context_s: float = setting(Number(0.0, 2.0), 0.25)
    seed: int = setting(Number(0, 2 ** 31 - 1, integer=True), 0)
    device: str = setting(Choice(DEVICES), "auto")
    model_dir: str | None = setting(Text(optional=True, none_means="the default Hugging Face cache"), None)

    def __post_init__(self) -> None:
        check_fields(self, "polish")
        if self.crossover_hz + self.transition_hz > 12000.0:
            raise SettingsError("polish.crossover_hz + polish.transition_hz must be <= 12000 Hz "
                                "(MBD at 24 kHz has nothing above 12 kHz)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, base: "PolishConfig | None" = None) -> "PolishConfig":
        """``base`` (default: the defaults above) updated by a (possibly partial) dict."""
        return build(cls, data, "polish", base)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def strictness_for(self, stem: str | None) -> float:
        """``re_eq`` strictness for ``stem`` (None: the mix)."""
        return self.vocal_strictness if stem == "vocals" else self.strictness

