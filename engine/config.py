"""What the in-order stages of one job read: one typed config, built once, passed unchanged.

:class:`PipelineConfig` holds the job's typed ``enhance``, ``restore``,
``mix`` and ``master`` sections (the very objects of the job's settings,
possibly adapted to the input by the strategy with ``dataclasses.replace``)
and the band limits measured from the input's first seconds.  ``polish`` is the MBD polish lane's section (off by default).  The in-process
pipeline and the Ray actors build their stages from it
(:func:`engine.pipeline.build_stem_chain`, :class:`engine.pipeline.MixMaster`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .config_fields import Section, check_fields, is_number, setting
from .enhance.config import EnhanceConfig
from .errors import SettingsError
from .master.config import MasterConfig
from .master.reference import ReferenceConfig
from .mix import MixConfig
from .polish.config import PolishConfig
from .generate.config import GenerateConfig
from .restore.config import RestoreConfig


@dataclass(frozen=True)
class PipelineConfig:
    """Configs of the in-order stages.

    band_limits_hz: ``(low, high)`` band limits of the recording, Hz, as
    detected on the input (restoration extends the band beyond them).
    high_edge: ``(edge_hz, confidence)`` of the recording's high band edge
    (:func:`engine.estimators.band_limits.high_edge_from_psd`), what the
    high-band extension starts from and how much of it it applies; None: the
    extension starts at ``band_limits_hz[1]`` with full confidence.
    preview_prior: the input's first seconds measured up front
    (:class:`engine.master.preview.PreviewPrior`): primes the streamed
    preview's loudness estimate, so it is right from its first second (None:
    unknown, the preview learns from the stream alone).
    tonal_profile: the input's first seconds' long-term band levels and noise
    floors (:class:`engine.restore.tonal.TonalProfile`), from which the
    tonal-balance correction is planned (None: no correction).
    reference_profile: the reference recording's long-term spectra
    (:class:`engine.master.reference.SpectrumProfile`; None: no reference matching);
    reference_prior: the same profile of the input's first seconds (the first filter).
    ``reference`` is how the matching is done (:class:`engine.master.reference.ReferenceConfig`).
    """

    enhance: EnhanceConfig = setting(Section(EnhanceConfig), factory=EnhanceConfig)
    restore: RestoreConfig = setting(Section(RestoreConfig), factory=RestoreConfig)
    mix: MixConfig = setting(Section(MixConfig), factory=MixConfig)
    master: MasterConfig = setting(Section(MasterConfig), factory=MasterConfig)
    polish: PolishConfig = setting(Section(PolishConfig), factory=PolishConfig)
    generate: GenerateConfig = setting(Section(GenerateConfig), factory=GenerateConfig)
    reference: ReferenceConfig = setting(Section(ReferenceConfig), factory=ReferenceConfig)
    band_limits_hz: tuple[float, float] = field(default=(20.0, 20000.0))
    high_edge: tuple[float, float] | None = None
    preview_prior: object | None = None
    tonal_profile: object | None = None
    reference_profile: object | None = None
    reference_prior: object | None = None

    def __post_init__(self) -> None:
        check_fields(self, "")
        band = tuple(self.band_limits_hz)
        if len(band) != 2 or not all(is_number(v) and math.isfinite(v) for v in band):
            raise SettingsError(f"band_limits_hz must be (low, high) in Hz, got {self.band_limits_hz!r}")
        object.__setattr__(self, "band_limits_hz", (float(band[0]), float(band[1])))
        if self.high_edge is not None:
            edge = tuple(self.high_edge)
            if (len(edge) != 2 or not all(is_number(v) and math.isfinite(v) for v in edge)
                    or not 0.0 <= edge[1] <= 1.0):
                raise SettingsError(f"high_edge must be (edge_hz, confidence 0..1), got {self.high_edge!r}")
            object.__setattr__(self, "high_edge", (float(edge[0]), float(edge[1])))
