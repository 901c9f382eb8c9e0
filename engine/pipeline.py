"""The processing graph of one job, as pure engine objects (no Ray, no files).

::

    blocks -> StreamingSeparation (windows + overlap-add) -> StemReblocker
           -> StemProcessor per stem (enhance + restore, aligned to a common latency)
           -> MixMaster (mixer -> unmastered mix; preview master -> streamed audio)

:class:`LocalPipeline` runs the graph in this process.  The Ray runner builds
the very same :class:`StemProcessor` and :class:`MixMaster` objects inside its
actors and the same planner/stitcher/re-blocker in its coordinator, so both
produce identical output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .audio import SAMPLE_RATE, STEM_NAMES, empty_block
from .blocks import StemFifo, StemReblocker
from .stage import Chain, Delay, LatencyAligned, Stage

#: in-order stages see blocks of exactly this many samples (1 s)
PIPELINE_BLOCK = SAMPLE_RATE


@dataclass
class StageConfigs:
    """Engine configs of the in-order stages (built from the job's Settings)."""

    enhance: object  # engine.enhance.config.EnhanceConfig
    restore: object  # engine.restore.config.RestoreConfig
    mix: object  # engine.mix.MixConfig
    target_lufs: float = -14.0
    ceiling_dbtp: float = -1.0
    lookahead_ms: float = 5.0
    release_ms: float = 80.0
    band_limits_hz: tuple[float, float] = (20.0, 20000.0)
    #: the input's first seconds measured up front (engine.master.preview.PreviewPrior):
    #: primes the preview's loudness estimate (restore branch, issue 12 item 7; None = unknown)
    preview_prior: object | None = None


def build_stem_chain(stem: str, cfg: StageConfigs) -> Stage:
    """Enhancement then restoration for one stem (unaligned; reports its latency)."""
    from .enhance.chains import build_stem_chain as build_enhance
    from .restore.chains import build_restore_chain

    stages: list[Stage] = []
    if getattr(cfg.enhance, "enabled", True):
        stages.append(build_enhance(stem, getattr(cfg.enhance, stem)))
    stages.extend(build_restore_chain(stem, cfg.restore, cfg.band_limits_hz).stages)
    return Chain(stages, name=f"{stem}-chain")


def common_stem_latency(cfg: StageConfigs, stems=STEM_NAMES) -> int:
    """The largest chain latency over the stems: every stem is delayed to it."""
    return max(build_stem_chain(s, cfg).latency for s in stems)


class StemProcessor:
    """In-order processing of one stem, output aligned with the input.

    Padded with a :class:`Delay` to ``common_latency`` so all stems produce the
    same number of samples per block, then :class:`LatencyAligned` removes the
    common delay: over a stream, output samples == input samples.
    """

    def __init__(self, stem: str, cfg: StageConfigs, common_latency: int):
        chain = build_stem_chain(stem, cfg)
        if chain.latency > common_latency:
            raise ValueError("common_latency smaller than the stem chain's latency")
        self.stem = stem
        self.stage = LatencyAligned(Chain([chain, Delay(common_latency - chain.latency)], name=stem))

    def process(self, block: np.ndarray) -> np.ndarray:
        return self.stage.process(block)

    def flush(self) -> np.ndarray:
        return self.stage.flush()


class MixMaster:
    """Mixer (zero latency) then the streamed preview master.

    ``process(stems)`` returns ``(mix, preview)``: the unmastered mix, aligned
    with the stems (stored for the exact final master), and the preview-mastered
    audio for listeners (aligned too, so it lags by the limiter's look-ahead
    until :meth:`flush`).
    """

    def __init__(self, cfg: StageConfigs):
        from .master.preview import PreviewMaster
        from .mix import StemMixer

        self.mixer = StemMixer(cfg.mix, sample_rate=SAMPLE_RATE)
        self.preview = LatencyAligned(PreviewMaster(target_lufs=cfg.target_lufs, ceiling_dbtp=cfg.ceiling_dbtp,
                                                    lookahead_ms=cfg.lookahead_ms, release_ms=cfg.release_ms,
                                                    prior=cfg.preview_prior))

    def process(self, stems: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        mix = self.mixer.process(stems)
        return mix, self.preview.process(mix)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        return empty_block(), self.preview.flush()

    def stem_gains_db(self) -> dict:
        return self.mixer.stem_gains_db()


@dataclass
class ProcessedBlock:
    """What the pipeline returns per block: unmastered mix, preview, stems."""

    mix: np.ndarray
    preview: np.ndarray
    stems: dict = field(default_factory=dict)


class LocalPipeline:
    """The whole graph in this process; ``feed`` blocks, then ``finish``."""

    def __init__(self, separator, cfg: StageConfigs, stems=STEM_NAMES):
        from .separation.streaming import StreamingSeparation

        from .separation.quality import SeparationQualityMeter

        self.separation = StreamingSeparation(separator)
        self.description = dict(separator.description)
        self.notes: list[str] = []
        self.quality = SeparationQualityMeter()
        self._mix_fifo = StemFifo()  # input, popped as the (delayed) stems come out
        self.reblocker = StemReblocker(PIPELINE_BLOCK)
        latency = common_stem_latency(cfg, stems)
        self.stem_latency = latency
        self.stems = {s: StemProcessor(s, cfg, latency) for s in stems}
        self.mixmaster = MixMaster(cfg)

    def feed(self, block: np.ndarray) -> list[ProcessedBlock]:
        self._mix_fifo.push({"mix": block})
        return self._in_order(self.reblocker.push(self._measured(self.separation.push(block))))

    def finish(self) -> list[ProcessedBlock]:
        out = self._in_order(self.reblocker.push(self._measured(self.separation.finish())))
        out += self._in_order(self.reblocker.finish())
        tail = {k: p.flush() for k, p in self.stems.items()}
        out += [self._mix(tail)]
        mix, preview = self.mixmaster.flush()
        out.append(ProcessedBlock(mix, preview, {}))
        return out

    def _measured(self, stems: dict | None) -> dict | None:
        if stems:
            n = next(iter(stems.values())).shape[1]
            if n:
                self.quality.update(self._mix_fifo.pop(n)["mix"], stems)
        return stems

    def separation_quality(self) -> dict:
        return self.quality.result()

    def stem_gains_db(self) -> dict:
        return self.mixmaster.stem_gains_db()

    def _in_order(self, blocks: list[dict]) -> list[ProcessedBlock]:
        return [self._mix({k: self.stems[k].process(v) for k, v in b.items()}) for b in blocks]

    def _mix(self, stems: dict) -> ProcessedBlock:
        mix, preview = self.mixmaster.process(stems)
        return ProcessedBlock(mix, preview, stems)


def concat(blocks: list[np.ndarray]) -> Optional[np.ndarray]:
    """Concatenate ``(2, n)`` blocks along time (None for an empty list)."""
    return np.concatenate(blocks, axis=1) if blocks else None
