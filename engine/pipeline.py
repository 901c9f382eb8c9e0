"""The in-order stages of a job's graph: :class:`InputRestorer` on the decoded
input (before separation, when ``restore.declip`` is on), one
:class:`StemProcessor` per stem, then :class:`MixMaster` (pure engine
objects, no Ray, no files).

The graph that connects them to separation is :mod:`engine.graph`; both
runners (in this process, or in Ray actors) build these very objects, so both
produce identical output.
"""
from __future__ import annotations

import numpy as np

from .audio import CHANNELS, SAMPLE_RATE, STEM_NAMES, check_finite, empty_block
from .config import PipelineConfig
from .stage import Chain, Delay, LatencyAligned, Stage


def build_stem_chain(stem: str, cfg: PipelineConfig) -> Stage:
    """Enhancement, the tonal-balance correction (the same on every stem, so one
    filter on the mix) then restoration for one stem (unaligned; reports its latency).

    Consecutive spectral stages (noise suppression, tonal correction, high-band
    extension) share one STFT (:func:`engine.dsp.spectral_chain.fuse_spectral`)."""
    from .dsp.spectral_chain import fuse_spectral
    from .enhance.chains import build_stem_chain as build_enhance
    from .restore.chains import build_restore_chain

    from .restore.tonal import TonalModel, plan_corrector

    stages: list[Stage] = []
    if cfg.enhance.enabled:
        stages.extend(build_enhance(stem, cfg.enhance.stem(stem)).stages)
    r = cfg.restore
    if r.tonal > 0.0:
        model = TonalModel.load(r.tonal_model) if r.tonal_model else None
        corrector = plan_corrector(cfg.tonal_profile, cfg.band_limits_hz[1], r.tonal, r.tonal_max_db,
                                   r.tonal_min_snr_db, model, low_edge_hz=cfg.band_limits_hz[0])
        if corrector is not None:
            stages.append(corrector)
    stages.extend(build_restore_chain(stem, cfg.restore, cfg.band_limits_hz, cfg.high_edge).stages)
    return Chain(fuse_spectral(stages), name=f"{stem}-chain")


def common_stem_latency(cfg: PipelineConfig, stems=STEM_NAMES) -> int:
    """The largest chain latency over the stems: every stem is delayed to it."""
    return max(build_stem_chain(s, cfg).latency for s in stems)


def stage_reports(stage) -> list[dict]:
    """``report()`` of every stage inside ``stage`` (chains and wrappers walked, in order)."""
    out: list[dict] = []
    inner = getattr(stage, "stage", None)
    if isinstance(inner, Stage):
        out.extend(stage_reports(inner))
    for sub in getattr(stage, "stages", ()) or ():
        out.extend(stage_reports(sub))
    if callable(getattr(stage, "report", None)) and not isinstance(stage, (Chain, LatencyAligned)):
        out.append(stage.report())
    return out


def input_restoration_on(cfg: PipelineConfig) -> bool:
    """Whether the job restores its input before separation (``restore.declip`` not ``off``)."""
    return cfg.restore.declip != "off"


class InputRestorer(Stage):
    """Restoration of the decoded input, before separation: the de-clipper
    (:class:`~engine.restore.declip.Declipper`, ``restore.declip``).

    Output aligned with the input (a :class:`LatencyAligned` wrapper): over a
    stream, output samples == input samples, output sample ``i`` belonging to
    input sample ``i``, so ``latency`` is 0; the first blocks hold back
    ``held`` samples (the de-clipper's one frame), which :meth:`flush`
    returns.  State is one frame and the amplitude histogram: memory does not
    grow with the recording.
    """

    latency = 0
    name = "input-restore"

    def __init__(self, cfg: PipelineConfig):
        from .restore.declip import DeclipConfig, Declipper

        self.declipper = Declipper(DeclipConfig(mode=cfg.restore.declip), SAMPLE_RATE, CHANNELS)
        self.stage = LatencyAligned(self.declipper)
        self.held = int(self.declipper.latency)
        self.channels = CHANNELS

    def output_length(self, n: int) -> int:
        return self.stage.output_length(n)

    def stage_reports(self) -> list[dict]:
        """What the input stages found and changed (the de-clipper's ``report()``)."""
        return stage_reports(self.stage)

    def process(self, block: np.ndarray) -> np.ndarray:
        check_finite(block, "input")
        return self.stage.process(block)

    def flush(self) -> np.ndarray:
        return self.stage.flush()

    def reset(self) -> None:
        self.stage.reset()


class StemProcessor(Stage):
    """In-order processing of one stem (a :class:`Stage`), output aligned with the input.

    Padded with a :class:`Delay` to ``common_latency`` so all stems produce the
    same number of samples per block, then :class:`LatencyAligned` removes the
    common delay: over a stream, output samples == input samples, so its
    ``latency`` is 0; the first blocks hold back ``held`` samples, which
    :meth:`flush` returns.
    """

    latency = 0

    def __init__(self, stem: str, cfg: PipelineConfig, common_latency: int):
        chain = build_stem_chain(stem, cfg)
        if chain.latency > common_latency:
            raise ValueError("common_latency smaller than the stem chain's latency")
        self.stem = stem
        self.stage = LatencyAligned(Chain([chain, Delay(common_latency - chain.latency)], name=stem))
        self.held = int(common_latency)
        self.name = f"stem-{stem}"
        self.channels = self.stage.channels

    def output_length(self, n: int) -> int:
        return self.stage.output_length(n)

    def stage_reports(self) -> list[dict]:
        """What the stages of this stem's chain that measure themselves changed
        (``report()`` of each, in chain order; see :func:`stage_reports`)."""
        return stage_reports(self.stage)

    def process(self, block: np.ndarray) -> np.ndarray:
        return self.stage.process(block)

    def flush(self) -> np.ndarray:
        return self.stage.flush()

    def reset(self) -> None:
        self.stage.reset()


class MixMaster:
    """Mixer (zero latency), reference matching (when the job has a reference), then the
    streamed preview master.

    ``process(stems)`` returns ``(mix, preview)``: the unmastered mix, aligned
    with the stems (stored for the exact final master), and the preview-mastered
    audio for listeners (aligned too, so ``latency`` is 0; the first blocks
    hold back ``held`` samples, the limiter's look-ahead, until :meth:`flush`).
    """

    latency = 0
    #: what one lane of this class runs: both, the mixer only, or the preview master only
    PARTS = ("mix+master", "mixer", "master")

    def __init__(self, cfg: PipelineConfig, part: str = "mix+master"):
        from .master.preview import LevelDrift, PreviewMaster
        from .mix import StemMixer

        if part not in self.PARTS:
            raise ValueError(f"MixMaster part must be one of {self.PARTS}, got {part!r}")
        #: with a windowed lane on the mix (MBD polish, ``per_stem: false``) the
        #: mixer and the preview master are two lanes: ``mixer`` returns
        #: ``(mix, empty)``; ``master`` takes ``{"mix": mix}`` and returns ``(mix, preview)``
        self.part = part
        self.mixer = StemMixer(cfg.mix, sample_rate=SAMPLE_RATE)
        m = cfg.master
        self.preview = LatencyAligned(PreviewMaster(target_lufs=m.target_lufs, ceiling_dbtp=m.ceiling_dbtp,
                                                    lookahead_ms=m.limiter_lookahead_ms,
                                                    release_ms=m.limiter_release_ms,
                                                    prior=cfg.preview_prior))
        self.held = self.preview.stage.latency
        #: the mix level still to come (auto-level glide), told to the preview
        self.drift = LevelDrift(SAMPLE_RATE)
        #: reference matching on the mix (aligned; its look-ahead is held back until flush)
        self.match = None
        if cfg.reference_profile is not None and cfg.reference.amount > 0 and part != "mixer":
            from .master.reference import ReferenceMatch

            self.match = LatencyAligned(ReferenceMatch(cfg.reference_profile, cfg.reference_prior, cfg.reference))
            self.held += self.match.stage.latency

    def process(self, stems: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.part == "master":
            return self._master(np.asarray(stems["mix"], np.float32))
        mix = self.mixer.process(stems)
        if self.part == "mixer":
            return mix, empty_block()
        if self.mixer.config.auto_level:  # without it no gain glides: the mix is already settled
            self.preview.stage.expect_change(self.drift.update(mix, self.mixer.converged_mix(stems)))
        return self._master(mix)

    def _master(self, mix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.match is not None:
            mix = self.match.process(mix)
        return mix, self.preview.process(mix)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        if self.part == "mixer":
            return empty_block(), empty_block()
        if self.match is None:
            return empty_block(), self.preview.flush()
        tail = self.match.flush()
        return tail, np.concatenate([self.preview.process(tail), self.preview.flush()], axis=1)

    def reset(self) -> None:
        self.mixer.reset()
        self.drift.reset()
        if self.match is not None:
            self.match.reset()
        self.preview.reset()

    def reference_report(self) -> dict | None:
        """What reference matching applied (None without a reference)."""
        return self.match.stage.report() if self.match is not None else None

    def stem_gains_db(self) -> dict:
        return self.mixer.stem_gains_db()
