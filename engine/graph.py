"""The graph of one job, described once; the runners only choose where each lane runs.

::

    input blocks --> [input lane, when cfg.restore.declip is on: InputRestorer
        |    (de-clipper, aligned: output sample i = input sample i)]
        +--> separation input FIFO ---------------------------+--> SeparationQualityMeter
        |                                                     |    (separation input vs stems)
        +--> separation lane: StreamingSeparation (windowed model stage; the
        |    stem cache may wrap it: resonate_stream.cached_separation) --+
        +--> StemReblocker (``PIPELINE_BLOCK`` = 1 s blocks)
        +--> one in-order lane per stem: StemProcessor (enhance + restore)
        +--> [polish lane, when cfg.polish is on: StreamingPolish (windowed MBD
        |    model stage over the enhanced stems) --> StemReblocker (1 s)]
        |    (``polish.per_stem: false``: stems --> mixer lane --> StreamingPolish
        |    over the mix --> StemReblocker --> preview-master lane)
        +--> [generation lane, when cfg.generate.mode is generate|both: the separated
        |    stems --> StreamingGeneration (profile, JASCO windows, crossfade); the
        |    stems --> mixer lane; (1 - blend) * restored + blend * generated
        |    --> preview-master lane]
        +--> mix/master lane: MixMaster --> ProcessedBlock(mix, preview, stems)

    end of stream (flush): the input lane flushes (its held-back frame goes
    to separation) -> separation drains (pieces as its last windows come
    back) -> re-blocker remainder -> every stem lane flushes -> those tails go
    through the mix lane -> the mix lane flushes (preview look-ahead tail).

:class:`GraphPipeline` is that graph (the coordinator, the same on every
path).  What differs between runners is only *where* each lane runs:

* the polish lane's windows (``polish``, issue 9): the same
  :class:`~engine.separation.streaming.WindowRunner` protocol (in this process:
  :func:`~engine.polish.streaming.inline_polish`; on Ray: the polish actor pool);
* the separation lane's windows: a :class:`~engine.separation.streaming.WindowRunner`
  (in this process: :class:`~engine.separation.streaming.InlineWindows`; on Ray:
  the separator actor pool, windows in flight in parallel);
* each in-order lane: ``place_lane(spec) -> lane`` turns a :class:`LaneSpec` into
  something with ``submit(method, *args)`` / ``head_ready()`` / ``pop()`` /
  ``query(name)`` / ``close()`` / ``recoveries`` (in this process:
  :class:`LocalLane`; on Ray: ``resonate_stream.ray_lanes.StatefulLane``, one
  actor per lane with pipelined calls, snapshots and restore).

:class:`LocalPipeline` is the graph with everything in this process;
``resonate_stream.ray_pipeline.RayPipeline`` the same graph on Ray actors.

Adding a lane (all in this module, both runners pick it up):

* an in-order stage (e.g. a generative polish after the mix, issue 9): its
  class in :data:`LANE_KINDS`, its :class:`LaneSpec` in :meth:`JobGraph.lane_specs`
  and :func:`lanes_per_job`, and its place in the routing of
  :class:`GraphPipeline` (``_drain`` hands one lane's output to the next);
* a windowed model stage (MBD polish, JASCO generation): a second
  :class:`~engine.separation.streaming.StreamingSeparation`-like windowed lane
  with its own window runner, routed like ``separation`` in ``_route``;
* a stage before separation: a stage inside :class:`~engine.pipeline.InputRestorer`
  (the ``input`` lane, applied in :meth:`GraphPipeline.process` before
  ``self.separation``; the de-clipper of issue 12 is there).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from .audio import SAMPLE_RATE, STEM_NAMES
from .blocks import StemFifo, StemReblocker
from .pipeline import InputRestorer, MixMaster, StemProcessor, common_stem_latency, input_restoration_on
from .separation.quality import SeparationQualityMeter
from .separation.streaming import StreamingSeparation, ThreadWindows
from .thread_lanes import ThreadLanes

#: in-order stages see blocks of exactly this many samples (1 s)
PIPELINE_BLOCK = SAMPLE_RATE

#: what an in-order lane runs, by kind (``LaneSpec.kind``)
LANE_KINDS: dict[str, Callable] = {"input": InputRestorer, "stem": StemProcessor, "mix": MixMaster}


@dataclass(frozen=True)
class LaneSpec:
    """One in-order lane: its kind (a key of :data:`LANE_KINDS`), a name for
    messages, and the stage's constructor arguments (picklable: an actor builds
    the stage from them)."""

    kind: str
    name: str
    args: tuple

    def build(self):
        """The lane's fresh stage (``process`` / ``flush`` / ``reset`` / ``latency``)."""
        return LANE_KINDS[self.kind](*self.args)


def lanes_per_job(stems=STEM_NAMES, cfg=None) -> dict[str, int]:
    """How many in-order lanes of each kind one job runs (what a warm actor pool keeps):
    ``cfg`` (a job's stage config) adds the ``input`` lane when it restores the input."""
    lanes = {"stem": len(stems), "mix": 1}
    if cfg is not None and input_restoration_on(cfg):
        lanes["input"] = 1
    return lanes


class JobGraph:
    """The in-order lanes of one job, built from the job's stage config ``cfg``
    (opaque here: passed to :class:`StemProcessor` and :class:`MixMaster`)."""

    def __init__(self, cfg, stems=STEM_NAMES):
        self.cfg = cfg
        self.stems = tuple(stems)
        #: samples every stem chain is delayed to, so all stems stay aligned
        self.stem_latency = common_stem_latency(cfg, self.stems)

    @property
    def polish_config(self):
        """The job's :class:`~engine.polish.config.PolishConfig` when polish is on, else None.

        Polish runs per stem (between the stem lanes and the mix lane), or on the
        mix (``per_stem: false``: once, between the mixer and the preview master,
        which then run as two lanes: :meth:`mixer_specs`).
        """
        p = getattr(self.cfg, "polish", None)
        if p is None or not p.enabled:
            return None
        return p

    @property
    def polish_on_mix(self) -> bool:
        """True when the polish lane sits on the mix (``polish.per_stem: false``)."""
        p = self.polish_config
        return p is not None and not p.per_stem

    @property
    def generate_config(self):
        """The job's :class:`~engine.generate.config.GenerateConfig` when it generates, else None."""
        g = getattr(self.cfg, "generate", None)
        if g is None or not g.enabled:
            return None
        if self.polish_on_mix:
            from .errors import SettingsError

            raise SettingsError("generate.mode=generate|both with polish.per_stem=false is not supported: "
                                "polish per stem (polish.per_stem=true) or turn polish off")
        return g

    def local_generation(self):
        """The generation lane with JASCO in this process (None unless generating)."""
        g = self.generate_config
        if g is None:
            return None
        from .generate.jasco import build_generator
        from .generate.streaming import StreamingGeneration, inline_generation

        generator = build_generator(g)
        return StreamingGeneration(inline_generation(generator), generator.description)

    def mixer_specs(self) -> tuple[LaneSpec, LaneSpec]:
        """``(mixer, preview master)`` specs: the mix lane split around a windowed lane on the mix."""
        return (LaneSpec("mix", "mixer", (self.cfg, "mixer")), LaneSpec("mix", "master", (self.cfg, "master")))

    def local_polish(self):
        """The polish lane with its model in this process (None when polish is off)."""
        p = self.polish_config
        if p is None:
            return None
        from .polish.factory import build_polisher, polish_signals
        from .polish.streaming import StreamingPolish, inline_polish

        polisher = build_polisher(p, polish_signals(p, self.stems))
        return StreamingPolish(inline_polish(polisher), polisher.signals, p.blend, polisher.description)

    def input_spec(self) -> LaneSpec | None:
        """The input lane (restoration before separation: the de-clipper), None when off."""
        if not input_restoration_on(self.cfg):
            return None
        return LaneSpec("input", "input (de-clip)", (self.cfg,))

    @property
    def input_description(self) -> dict:
        """What the input lane changes before separation (``{"declip": "auto"}``; ``{}`` when off):
        part of the stem cache's key, since the separated stems depend on it."""
        return {"declip": self.cfg.restore.declip} if input_restoration_on(self.cfg) else {}

    def lane_specs(self) -> tuple[dict[str, LaneSpec], LaneSpec]:
        """``({stem: spec}, mix/master spec)``."""
        stems = {s: LaneSpec("stem", f"stem {s}", (s, self.cfg, self.stem_latency)) for s in self.stems}
        return stems, LaneSpec("mix", "mix/master", (self.cfg,))


def block_samples(payload) -> int:
    """Samples of a lane input: a ``(2, n)`` block or a dict of them."""
    if isinstance(payload, dict):
        return next(iter(payload.values())).shape[1] if payload else 0
    return payload.shape[1]


class LocalLane:
    """An in-order lane run in this process: every call answers at once."""

    recoveries = 0

    def __init__(self, spec: LaneSpec):
        self.name = spec.name
        self.stage = spec.build()
        self._answers: collections.deque = collections.deque()

    def submit(self, method: str, *args) -> None:
        self._answers.append(getattr(self.stage, method)(*args))

    def head_ready(self) -> bool:
        return bool(self._answers)

    def pop(self):
        return self._answers.popleft()

    def query(self, name: str):
        """A read-only question to the stage, after the calls before it (e.g. ``stem_gains_db``)."""
        return getattr(self.stage, name)()

    def close(self) -> None:
        pass


@dataclass
class ProcessedBlock:
    """What the pipeline returns per block: unmastered mix, preview, stems."""

    mix: np.ndarray
    preview: np.ndarray
    stems: dict = field(default_factory=dict)


class GraphPipeline:
    """The job graph, whatever runs its lanes: ``process`` input blocks, then ``flush``.

    Args:
        graph: the job's :class:`JobGraph`.
        separation: the windowed separation lane (``process`` / ``drain``),
            replaceable before the first block (the stem cache wraps it).
        place_lane: ``LaneSpec -> lane`` (see the module docstring).
        separator_description: what the separator is (for reports and cache keys).
        notes: messages about the separator (fallbacks) for the job's events.
        runner: extra facts for the report (``{"runner": "ray", "actors": 2}``).

    ``process(block)`` returns the :class:`ProcessedBlock` s ready so far
    (lanes in actors or threads answer later; when more than ``MAX_BLOCKS_QUEUED``
    blocks are queued it waits for the oldest until no more are); ``flush()`` yields the rest as
    they become ready.  The output does not depend on where the lanes ran.
    """

    #: blocks (1 s each) queued on the in-order lanes before ``process`` waits for them: one
    #: separation window's worth (htdemucs 7.8 s), so the lanes work through one window while
    #: the next is separated (4 made threaded lanes wait: 60 s DSP job 0.91 -> 0.81 of inline)
    MAX_BLOCKS_QUEUED = 8

    def __init__(self, graph: JobGraph, separation: StreamingSeparation, place_lane: Callable[[LaneSpec], object],
                 separator_description: dict, notes=(), runner: dict | None = None, polish=None, generation=None):
        self.graph = graph
        self.separation = separation
        #: the windowed polish lane between the stem lanes and the mix (None: off)
        self.polish = polish
        self.polish_reblocker = StemReblocker(PIPELINE_BLOCK)
        self.separator_description = dict(separator_description)
        self.description = {**self.separator_description, **(runner or {})}
        #: what the polish lane runs (model, bandwidth, device, actors), None when off
        self.polish_description = dict(polish.description) if polish is not None else None
        self.notes = list(notes)
        self.quality = SeparationQualityMeter()
        self.reblocker = StemReblocker(PIPELINE_BLOCK)
        self._input = StemFifo()  # separation input, popped as the (delayed) stems come out
        #: restoration of the input before separation (the de-clipper; None when off)
        input_spec = graph.input_spec()
        self.input_lane = place_lane(input_spec) if input_spec is not None else None
        self.inputs_in_flight = 0  # blocks sent to the input lane, not yet answered
        self._input_reports: list | None = None
        stem_specs, mix_spec = graph.lane_specs()
        self.stem_lanes = {s: place_lane(spec) for s, spec in stem_specs.items()}
        #: polish on the mix: stems -> mixer lane -> polish lane -> master lane (``mix_lane``)
        self.polish_on_mix = polish is not None and tuple(polish.signals) == ("mix",)
        #: generation (``generate.mode`` generate|both): separated stems -> StreamingGeneration;
        #: stems -> mixer lane; (1 - blend) * restored + blend * generated -> master lane
        self.generation = generation
        gen_cfg = getattr(graph.cfg, "generate", None)
        self.mode = gen_cfg.mode if generation is not None else "restore"
        self.generate_blend = 1.0 if self.mode == "generate" else (gen_cfg.blend if generation is not None else 0.0)
        #: what generates (model, device, actors), None when not generating
        self.generator_description = dict(generation.description) if generation is not None else None
        self._restored, self._generated = StemFifo(), StemFifo()
        self.split_mix = self.polish_on_mix or generation is not None
        self.mixer_lane = None
        if self.split_mix:
            mixer_spec, mix_spec = graph.mixer_specs()
            self.mixer_lane = place_lane(mixer_spec)
        self.mix_lane = place_lane(mix_spec)
        self._premix = StemFifo()  # enhanced stems waiting for their polished mix (polish on the mix)
        self.mixes_in_flight = 0  # blocks sent to the mixer lane, not yet answered
        self.stems_in_flight = 0  # blocks sent to the stem lanes, not yet answered
        self._mixed: collections.deque = collections.deque()  # enhanced stems sent to the mix lane
        self._gains: dict | None = None
        self._stage_reports: dict | None = None
        self._reference: dict | None = None
        self.separated_s = 0.0
        self.enhanced_s = 0.0

    @property
    def lanes(self) -> dict:
        """Every in-order lane by name."""
        lanes = {**{f"stem_{s}": lane for s, lane in self.stem_lanes.items()}, "mix": self.mix_lane}
        if self.input_lane is not None:
            lanes["input"] = self.input_lane
        if self.mixer_lane is not None:
            lanes["mixer"] = self.mixer_lane
        return lanes

    @property
    def backlog(self) -> int:
        """Blocks queued on the in-order lanes."""
        return max(self.stems_in_flight, self.mixes_in_flight, len(self._mixed))

    def _route(self, stems: dict) -> None:
        """Separated stems -> quality meter, re-blocker, stem lanes."""
        n = block_samples(stems)
        if n == 0:
            return
        self.quality.update(self._input.pop(n)["mix"], stems)
        self.separated_s += n / SAMPLE_RATE
        for block in self.reblocker.process(stems):
            self._submit_stems(block)

    def _submit_stems(self, block: dict) -> None:
        for s, lane in self.stem_lanes.items():
            lane.submit("process", block[s])
        self.stems_in_flight += 1
        if self.generation is not None:  # the separated stems stream into the profile / generation lane too
            self._generated_in(self.generation.process(block))

    def _drain(self, wait: bool, keep: int = 0) -> list[ProcessedBlock]:
        """Answered stem blocks -> the mix lane; answered mixes -> :class:`ProcessedBlock` s.

        Takes every answer that is ready; with ``wait`` it also waits for the oldest ones
        until at most ``keep`` blocks stay queued on each lane (``keep=0``: all of them), so
        the lanes keep working while the caller separates the next window.
        """
        out = []
        while self.stems_in_flight:
            if (not wait or self.stems_in_flight <= keep) and \
                    not all(lane.head_ready() for lane in self.stem_lanes.values()):
                break
            self.stems_in_flight -= 1
            enhanced = {s: lane.pop() for s, lane in self.stem_lanes.items()}
            self.enhanced_s += block_samples(enhanced) / SAMPLE_RATE
            self._to_mix(enhanced)
        while self.mixes_in_flight and ((wait and self.mixes_in_flight > keep) or self.mixer_lane.head_ready()):
            self.mixes_in_flight -= 1
            mix, _ = self.mixer_lane.pop()
            if self.polish_on_mix:
                self._polished(self.polish.process({"mix": mix}))
            else:  # generation: the restored mix waits for the generated audio of the same samples
                self._restored.push({"mix": mix})
                self._join_generated()
        while self._mixed and ((wait and len(self._mixed) > keep) or self.mix_lane.head_ready()):
            mix, preview = self.mix_lane.pop()
            out.append(ProcessedBlock(mix, preview, self._mixed.popleft()))
        return out

    def _to_mix(self, enhanced: dict) -> None:
        """Enhanced stems -> (the per-stem polish lane, re-blocked to 1 s) -> the mixer."""
        if self.polish is not None and not self.polish_on_mix:
            self._polished(self.polish.process(enhanced))
        else:
            self._mix_in(enhanced)

    def _polished(self, part: dict) -> None:
        """Polish lane output (stems, or ``{"mix": ...}``) -> re-blocked to 1 s -> the mixer / master lane."""
        for block in self.polish_reblocker.process(part):
            if self.polish_on_mix:
                self._master_in(block)
            else:
                self._mix_in(block)

    def _mix_in(self, stems: dict) -> None:
        """Stems -> the mix/master lane, or (split mix: polish on the mix, generation) the mixer lane."""
        if not self.split_mix:
            self.mix_lane.submit("process", stems)
            self._mixed.append(stems)
        elif block_samples(stems):
            self.mixer_lane.submit("process", stems)
            self._premix.push(stems)
            self.mixes_in_flight += 1

    def _master_in(self, mix: dict) -> None:
        """A (polished or generated) ``{"mix": ...}`` block -> the preview master; its stems are
        the enhanced ones of the same samples."""
        n = block_samples(mix)
        if n == 0:
            return
        self.mix_lane.submit("process", mix)
        self._mixed.append(self._premix.pop(n))

    def _join_generated(self) -> None:
        """Restored and generated audio of the same samples -> ``(1 - blend) * restored + blend * generated``."""
        n = min(self._restored.available, self._generated.available)
        if n == 0:
            return
        restored, generated = self._restored.pop(n)["mix"], self._generated.pop(n)["mix"]
        b = np.float32(self.generate_blend)
        mix = generated if b == 1 else ((1 - b) * restored + b * generated).astype(np.float32)
        self._master_in({"mix": mix})

    def _generated_in(self, audio: np.ndarray) -> None:
        if audio.shape[1]:
            self._generated.push({"mix": audio})
            self._join_generated()

    def _separate(self, block: np.ndarray) -> None:
        """(Restored) input -> separation lane -> stems routed on."""
        if block.shape[1] == 0:
            return
        self._input.push({"mix": block})
        self._route(self.separation.process(block))

    def _drain_input(self, wait: bool) -> None:
        """Answered input-lane blocks -> separation (all of them with ``wait``; else those
        answered, and the oldest ones while more than ``MAX_BLOCKS_QUEUED`` are queued)."""
        while self.inputs_in_flight and (wait or self.inputs_in_flight > self.MAX_BLOCKS_QUEUED
                                         or self.input_lane.head_ready()):
            self.inputs_in_flight -= 1
            self._separate(self.input_lane.pop())

    def process(self, block: np.ndarray) -> list[ProcessedBlock]:
        """Consume one input block ``(2, n)``; return the processed blocks ready now."""
        if self.input_lane is None:
            self._separate(block)
        else:
            self.input_lane.submit("process", block)
            self.inputs_in_flight += 1
            self._drain_input(wait=False)
        return self._drain(wait=self.backlog > self.MAX_BLOCKS_QUEUED, keep=self.MAX_BLOCKS_QUEUED)

    def flush(self) -> Iterator[ProcessedBlock]:
        """End of stream: yields the remaining blocks as they become ready.

        A generator, so that the last windows (many of them when the input is
        short and was processed at once) stream out one by one.  The last
        block holds the preview's look-ahead tail and no stems.
        """
        if self.input_lane is not None:
            self._drain_input(wait=True)
            self.input_lane.submit("flush")
            self._separate(self.input_lane.pop())
            self._input_reports = self.input_lane.query("stage_reports")
            yield from self._drain(wait=True)
        for stems in self.separation.drain():
            self._route(stems)
            yield from self._drain(wait=True)
        for block in self.reblocker.flush():
            self._submit_stems(block)
        yield from self._drain(wait=True)
        for lane in self.stem_lanes.values():
            lane.submit("flush")
        tails = {s: lane.pop() for s, lane in self.stem_lanes.items()}
        self._stage_reports = {s: lane.query("stage_reports") for s, lane in self.stem_lanes.items()}
        self._to_mix(tails)
        if self.polish is not None:
            yield from self._drain(wait=True)  # polish on the mix: the mixer's last answers reach the polish lane
            for part in self.polish.drain():
                self._polished(part)
                yield from self._drain(wait=True)
            for block in self.polish_reblocker.flush():
                self._master_in(block) if self.polish_on_mix else self._mix_in(block)
        yield from self._drain(wait=True)
        if self.generation is not None:
            for part in self.generation.drain():
                self._generated_in(part)
                yield from self._drain(wait=True)
        self.mix_lane.submit("flush")
        mix, preview = self.mix_lane.pop()
        self._gains = (self.mixer_lane or self.mix_lane).query("stem_gains_db")
        self._reference = self.mix_lane.query("reference_report")
        yield ProcessedBlock(mix, preview, {})

    def separation_quality(self) -> dict:
        return self.quality.result()

    def stem_gains_db(self) -> dict | None:
        """The mixer's gain per stem (dB), once the stream is flushed."""
        return self._gains

    def stage_reports(self) -> dict | None:
        """What each reporting stage changed (``[{stage, ...}]``), once flushed: per stem, and
        under ``input`` the stages before separation (the de-clipper) when they ran."""
        if self._stage_reports is None or self._input_reports is None:
            return self._stage_reports
        return {"input": self._input_reports, **self._stage_reports}

    def reference_report(self) -> dict | None:
        """What reference matching applied on the mix (None without a reference), once flushed."""
        return self._reference

    def close(self) -> None:
        """Release the lanes (actors go back to their pool)."""
        for lane in self.lanes.values():
            lane.close()


class LocalPipeline(GraphPipeline):
    """The job graph with every lane in this process (``resonate process``, tests).

    ``lane_threads``: 0 runs every in-order lane inline on the caller's thread;
    ``n > 0`` runs them on ``n`` worker threads (:mod:`engine.thread_lanes`) and the
    separator's windows on one more (:class:`~engine.separation.streaming.ThreadWindows`), so
    they overlap with each other and with the caller's thread; the output is the same.
    """

    def __init__(self, separator, cfg, stems=STEM_NAMES, notes=(), lane_threads: int = 0):
        graph = JobGraph(cfg, stems)
        self.threads = ThreadLanes(lane_threads) if lane_threads else None
        # with lane threads the separator gets its own worker too (the caller's thread goes on
        # with decoding, analysis and routing while a window is separated)
        self._windows = ThreadWindows(separator) if lane_threads else None
        try:
            super().__init__(graph, (StreamingSeparation(windows=self._windows) if self._windows is not None
                              else StreamingSeparation(separator)),
                             self.threads.place if self.threads else LocalLane,
                             separator.description, notes=notes, polish=graph.local_polish(),
                             generation=graph.local_generation())
        except BaseException:
            self._shutdown()
            raise

    @property
    def lane_threads(self) -> int:
        return self.threads.workers if self.threads else 0

    def close(self) -> None:
        super().close()
        self._shutdown()

    def _shutdown(self) -> None:
        if self._windows is not None:
            self._windows.close()
        if self.threads is not None:
            self.threads.shutdown()
