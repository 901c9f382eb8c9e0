"""The in-order stages of a job's graph: one :class:`StemProcessor` per stem,
then :class:`MixMaster` (pure engine objects, no Ray, no files).

The graph that connects them to separation is :mod:`engine.graph`; both
runners (in this process, or in Ray actors) build these very objects, so both
produce identical output.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE, STEM_NAMES, empty_block
from .stage import Chain, Delay, LatencyAligned, Stage


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
    polish: object = None  # engine.polish.config.PolishConfig (None or mode off: no polish lane)


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
    common delay: over a stream, output samples == input samples.  ``latency``
    (samples): how many the first blocks hold back; :meth:`flush` returns them.
    """

    def __init__(self, stem: str, cfg: StageConfigs, common_latency: int):
        chain = build_stem_chain(stem, cfg)
        if chain.latency > common_latency:
            raise ValueError("common_latency smaller than the stem chain's latency")
        self.stem = stem
        self.stage = LatencyAligned(Chain([chain, Delay(common_latency - chain.latency)], name=stem))
        self.latency = int(common_latency)

    def process(self, block: np.ndarray) -> np.ndarray:
        return self.stage.process(block)

    def flush(self) -> np.ndarray:
        return self.stage.flush()

    def reset(self) -> None:
        self.stage.reset()


class MixMaster:
    """Mixer (zero latency) then the streamed preview master.

    ``process(stems)`` returns ``(mix, preview)``: the unmastered mix, aligned
    with the stems (stored for the exact final master), and the preview-mastered
    audio for listeners (aligned too, so it lags by the limiter's look-ahead
    until :meth:`flush`; ``latency`` is that look-ahead in samples).
    """

    def __init__(self, cfg: StageConfigs):
        from .master.preview import PreviewMaster
        from .mix import StemMixer

        self.mixer = StemMixer(cfg.mix, sample_rate=SAMPLE_RATE)
        self.preview = LatencyAligned(PreviewMaster(target_lufs=cfg.target_lufs, ceiling_dbtp=cfg.ceiling_dbtp,
                                                    lookahead_ms=cfg.lookahead_ms, release_ms=cfg.release_ms))
        self.latency = self.preview.latency

    def process(self, stems: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        mix = self.mixer.process(stems)
        return mix, self.preview.process(mix)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        return empty_block(), self.preview.flush()

    def reset(self) -> None:
        self.mixer.reset()
        self.preview.reset()

    def stem_gains_db(self) -> dict:
        return self.mixer.stem_gains_db()
