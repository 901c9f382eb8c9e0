"""Run one job: decode -> pipeline -> streamed preview + stored mix -> exact final master.

The driver here is the same whatever executes the job graph
(:class:`engine.graph.GraphPipeline`): with every lane in this process
(:class:`engine.graph.LocalPipeline`, ``resonate process``) or on Ray actors
(``resonate_stream.ray_pipeline.RayPipeline``, ``resonate serve``), passed in
as ``pipeline_factory``.  The stem cache wraps the graph's separation lane the
same way on both.
"""
from __future__ import annotations

import functools
import itertools
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from engine.audio import SAMPLE_RATE, STEM_NAMES
from engine.errors import ResonateError
from engine.blocks import StemFifo
from engine.graph import GraphPipeline, LocalPipeline
from engine.master.preview import PreviewPrior
from engine.restore.governor import SpectrumAccumulator
from engine.restore.tonal import TonalProfile
from engine.stage import LatencyAligned
from engine.thread_lanes import resolve_workers
from engine.config import PipelineConfig
from engine.polish.factory import provenance
from engine.provenance import Provenance, job_provenance

from .events import AudioChunk, EventSink, Finished, InfoEvent, ProgressEvent
from .settings import Settings
from .strategy import adapt
from .sources import BlockSource, FileSource, SourceInfo

#: seconds of input read ahead to detect the recording's band limits
BAND_DETECT_SECONDS = 10.0


class JobCancelled(ResonateError):
    code = "cancelled"


@dataclass
class OutputSpec:
    """Where a job writes: the mastered file, optional stems/report/plots folders."""

    master: Path
    stems_dir: Optional[Path] = None
    report: Optional[Path] = None
    plots_dir: Optional[Path] = None
    stream_stems: bool = False  # attach enhanced stems to streamed AudioChunks


PipelineFactory = Callable[[Settings, PipelineConfig], GraphPipeline]


def local_pipeline(settings: Settings, cfg: PipelineConfig, lane_threads: int | str | None = 0) -> LocalPipeline:
    """The in-process pipeline; its separator falls back to DSP under ``auto``.

    ``lane_threads``: worker threads for the in-order lanes (0: inline; ``"auto"``:
    one per core that the separator's own thread pool leaves free, up to one per lane, at least 2
    on 2+ cores;
    see :func:`engine.thread_lanes.auto_workers`); where the lanes run never changes the output.
    """
    resolve_workers(lane_threads)  # bad values fail before the model loads
    separator, notes = build_separator_for(settings)
    workers = resolve_workers(lane_threads, reserved=getattr(separator, "cpu_threads", 0))
    return LocalPipeline(separator, cfg, notes=notes, lane_threads=workers)


def process_file(input_path: Path, output: Path, settings: Settings, *, stems_dir: Path | None = None,
                 report_path: Path | None = None, plots_dir: Path | None = None,
                 emit: EventSink | None = None, cancel: threading.Event | None = None,
                 cache_dir: Path | None = None, use_cache: bool = True,
                 reference: Path | None = None, lane_threads: int | str | None = "auto") -> Finished:
    """``resonate process``: restore ``input_path`` into ``output`` in this process.

    ``reference``: a studio recording to match the mix to (spectrum, width, loudness).
    ``lane_threads``: see :func:`local_pipeline` (default ``"auto"``).

    With ``use_cache`` the separated stems are kept in the stem cache
    (``cache_dir``, default ``$RESONATE_CACHE_DIR`` or ``~/.cache/resonate``), so
    re-processing the same file with other settings skips separation.
    """
    from .cache import StemCache

    outputs = OutputSpec(Path(output), stems_dir, report_path, plots_dir)
    check_outputs(outputs)
    cache = StemCache(cache_dir) if use_cache else None
    resolve_workers(lane_threads)  # a bad value fails before any work
    factory = functools.partial(local_pipeline, lane_threads=lane_threads)
    return run_job(FileSource(Path(input_path)), settings, outputs, emit=emit, cancel=cancel, cache=cache,
                   reference=reference, pipeline_factory=factory)


def check_outputs(outputs: OutputSpec) -> None:
    """Fail before any work when an output cannot be written."""
    from engine.io.encode import check_writable

    check_writable(outputs.master)
    for folder in (outputs.stems_dir, outputs.plots_dir):
        if folder is not None:
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                from engine.errors import OutputError

                raise OutputError(f"cannot create folder {folder}: {e.strerror}") from None
            check_writable(Path(folder) / "probe.wav")
    if outputs.report is not None:
        check_writable(outputs.report)


def build_separator_for(settings: Settings):
    """(separator, notes) from the separation settings (auto falls back to DSP)."""
    from engine.separation.factory import build_separator

    s = settings.separation
    return build_separator(s.separator, model=s.model, repo=s.model_repo, device=s.device, quality=s.quality,
                           segment=s.segment_s, overlap=s.overlap, shifts=s.shifts)


def _read_ahead(blocks: Iterator[np.ndarray], seconds: float) -> tuple[list[np.ndarray], Iterator[np.ndarray]]:
    head, n = [], 0
    for b in blocks:
        head.append(b)
        n += b.shape[1]
        if n >= seconds * SAMPLE_RATE:
            break
    return head, itertools.chain(head, blocks)


def detect_band_limits(head: list[np.ndarray]) -> tuple[float, float]:
    from engine.estimators.band_limits import BandLimitDetector

    det = BandLimitDetector(SAMPLE_RATE)
    for b in head:
        det.process(b)
    low, high = det.limits()
    return float(low), float(high)


def detect_high_edge(head: list[np.ndarray]) -> tuple[float, float]:
    """``(edge_hz, confidence)`` of the high band edge of the first seconds (the extension's start)."""
    from engine.estimators.band_limits import BandLimitDetector

    det = BandLimitDetector(SAMPLE_RATE)
    for b in head:
        det.update(b)
    edge = det.high_edge()
    return float(edge.edge_hz), float(edge.confidence)


class _Writers:
    """The job's files: stored unmastered mix (temp) and optional stems; all atomic."""

    def __init__(self, workdir: Path, outputs: OutputSpec, settings: Settings, source_name: str,
                 made_by: Provenance | None = None):
        from engine.io.encode import AudioWriter

        self.mix_path = workdir / "mix_unmastered.wav"
        self.mix = AudioWriter(self.mix_path, format="wav", bit_depth=32)
        self.stems = {}
        self.stem_paths = {}
        if outputs.stems_dir is not None:
            ex = settings.export
            stem_rate = 44100 if ex.sample_rate == "keep" else int(ex.sample_rate)
            base = Path(source_name).stem
            for s in STEM_NAMES:
                p = Path(outputs.stems_dir) / f"{base}.{s}.{ex.format}"
                self.stem_paths[s] = p
                tags = stem_provenance(made_by).tags(f"{base} ({s})")
                self.stems[s] = AudioWriter(p, format=ex.format, sample_rate=stem_rate, bit_depth=int(ex.bit_depth),
                                            tags=tags)

    def write(self, mix: np.ndarray, stems: dict) -> None:
        if mix.shape[1]:
            self.mix.write(mix)
        for k, w in self.stems.items():
            if k in stems and stems[k].shape[1]:
                w.write(stems[k])

    def close(self) -> None:
        self.mix.close()
        for w in self.stems.values():
            w.close()

    def abort(self) -> None:
        for w in [self.mix, *self.stems.values()]:
            try:
                w.abort()
            except Exception:
                pass


def run_job(source: FileSource | BlockSource, settings: Settings, outputs: OutputSpec, *,
            emit: EventSink | None = None, cancel: threading.Event | None = None,
            pipeline_factory: PipelineFactory | None = None, cache=None,
            reference: Path | None = None) -> Finished:
    """Run one job end to end; return :class:`Finished` (also emitted).

    ``reference``: a recording (any format the decoders read) whose long-term
    spectrum, width and loudness the mix is matched to (:mod:`engine.master.reference`);
    analysed block by block before the stream starts.

    Raises :class:`ResonateError` subclasses for bad input or settings; on any
    failure nothing is left at the output paths.
    """
    from engine.analysis.metrics import AudioAnalyzer
    from engine.background import SinkThread

    emit = emit or (lambda e: None)
    factory = pipeline_factory or local_pipeline
    t0 = time.perf_counter()
    info: SourceInfo = source.info
    total = info.duration_s
    ref_profile = None
    if reference is not None:
        ref_profile = measure_reference(Path(reference))
        settings = settings_for_reference(settings, ref_profile)
        emit(InfoEvent(_describe_reference(Path(reference).name, ref_profile, settings),
                       {"kind": "reference", "name": Path(reference).name, **ref_profile.describe(),
                        "target_lufs": settings.master.target_lufs}))

    head, blocks = _read_ahead(iter(source.blocks()), BAND_DETECT_SECONDS)
    band = detect_band_limits(head)
    analyzer_in = AudioAnalyzer(SAMPLE_RATE)
    for b in head:  # measured once here; the loop below skips these blocks
        analyzer_in.update(b)
    analysis = _input_analysis(analyzer_in, band, total)
    emit(InfoEvent(_describe_analysis(analysis), analysis))
    ref_prior = None
    if ref_profile is not None:
        from engine.master.reference import SpectrumProfile

        ref_prior = SpectrumProfile.measure(head)
    cfg, strategy = settings.pipeline_config(band, PreviewPrior.measure(head), ref_profile, ref_prior,
                                             tonal_profile=TonalProfile.measure(head),
                                             high_edge=detect_high_edge(head)), None
    if settings.adaptive:
        cfg, strategy = adapt(cfg, analysis["metrics"])
    for note in (strategy or {}).get("notes", []):
        emit(InfoEvent(f"strategy: {note}", {"kind": "strategy"}))
    pipeline = factory(settings, cfg)
    notes = list(pipeline.notes)
    for note in notes:
        emit(InfoEvent(note, {"kind": "separator"}))
    description = dict(pipeline.description)
    emit(InfoEvent(f"separator: {description.get('separator')}", description))
    if pipeline.polish_description is not None:
        emit(InfoEvent(provenance(pipeline.polish_description), {"kind": "polish", **pipeline.polish_description}))
    if getattr(pipeline, "generator_description", None) is not None:
        from engine.generate.config import WARNING

        emit(InfoEvent(f"{WARNING} Generating with {pipeline.generator_description.get('model')}.",
                       {"kind": "generation", "mode": pipeline.mode, **pipeline.generator_description}))
    made_by = pipeline_provenance(pipeline)
    emit(InfoEvent(f"output: {made_by.summary()}", {"kind": "provenance", "provenance": made_by.to_dict()}))
    cache_state, cached = _attach_cache(pipeline, source, settings, cache, emit)

    workdir = Path(tempfile.mkdtemp(prefix="resonate-job-", dir=str(Path(outputs.master).parent)))
    writers = _Writers(workdir, outputs, settings, info.name, made_by)
    seq = 0
    offset = 0
    consumed = 0
    produced = 0
    first_audio_s = None

    # the preview lags the stems by the limiter look-ahead: hand out each preview block's length
    stem_queue = StemFifo() if outputs.stream_stems else None

    def handle(processed) -> None:
        nonlocal seq, offset, produced, first_audio_s
        for pb in processed:
            writers.write(pb.mix, pb.stems)
            produced += pb.mix.shape[1]
            if stem_queue is not None and pb.stems:
                stem_queue.push(pb.stems)
            n = pb.preview.shape[1]
            if n:
                stems = stem_queue.pop(n) if stem_queue is not None and stem_queue.available else None
                emit(AudioChunk(seq=seq, offset=offset, sample_rate=SAMPLE_RATE, audio=pb.preview, stems=stems))
                if first_audio_s is None:
                    first_audio_s = time.perf_counter() - t0
                seq += 1
                offset += n

    # the governor judges a restoration against its input; generated audio is not one
    governed = settings.restore.governor and getattr(pipeline, "mode", "restore") == "restore"
    spectrum_in = SpectrumAccumulator(SAMPLE_RATE) if governed else None
    # the input's analysis runs on a worker thread beside the pipeline (a copy of each block:
    # the pipeline may own the one it is given); the same blocks in order, the same figures
    measure_in = SinkThread(*([] if spectrum_in is None else [spectrum_in.update]), analyzer_in.update,
                            name="resonate-input-analysis")
    try:
        for i, block in enumerate(blocks):
            if cancel is not None and cancel.is_set():
                raise JobCancelled("job cancelled")
            if i >= len(head):
                measure_in(block.copy())
            elif spectrum_in is not None:
                spectrum_in.update(block)
            consumed += block.shape[1]
            handle(pipeline.process(block))
            emit(ProgressEvent("input", consumed / SAMPLE_RATE, total))
            emit(ProgressEvent("restore", produced / SAMPLE_RATE, total))
        measure_in.close()
        if consumed == 0:
            from engine.errors import EmptyAudioError

            raise EmptyAudioError(f"{info.name} holds no audio samples")
        total = consumed / SAMPLE_RATE
        emit(ProgressEvent("input", total, total))
        handle(pipeline.flush())
        emit(ProgressEvent("restore", produced / SAMPLE_RATE, total))
        writers.close()
        if cancel is not None and cancel.is_set():
            raise JobCancelled("job cancelled")
        governor = None
        if spectrum_in is not None:
            governor = _govern(writers.mix_path, spectrum_in, band, settings)
            if governor.backed_off:
                emit(InfoEvent(f"governor: {governor.notes[-1]} in the final file", {"kind": "governor",
                                                                                      **governor.report()}))
        master_report, analyzer_out = _final_master(writers.mix_path, outputs.master, settings, total, emit,
                                                    source_rate=info.sample_rate,
                                                    tags=made_by.tags(Path(info.name).stem),
                                                    pre=governor.corrector() if governor is not None else None)
        report = _report(info, settings, description, notes, analyzer_in, analyzer_out, master_report,
                         pipeline, band, total, time.perf_counter() - t0, first_audio_s)
        report["separation"]["cache"] = cache_state
        report["governor"] = governor.report() if governor is not None else None
        report["strategy"] = strategy
        if ref_profile is not None:
            report["reference"] = {"name": Path(reference).name, **ref_profile.describe(),
                                   "match_loudness": settings.reference.match_loudness,
                                   "applied": pipeline.reference_report()}
        if cache is not None:
            from .cached_separation import DEFAULT_MAX_AGE_DAYS, DEFAULT_MAX_BYTES

            evicted = cache.enforce_limits(DEFAULT_MAX_BYTES, DEFAULT_MAX_AGE_DAYS)
            if evicted:
                emit(InfoEvent(f"stem cache: {len(evicted)} old entr{'y' if len(evicted) == 1 else 'ies'} removed to "
                          f"stay under {DEFAULT_MAX_BYTES / 1024 ** 3:.0f} GiB / {DEFAULT_MAX_AGE_DAYS:g} days",
                          {"kind": "cache_evicted", "keys": evicted}))
        done = Finished(report=report, outputs=_outputs(outputs, writers))
        if outputs.plots_dir is not None:
            from .plots import write_plots

            done.outputs.update(write_plots(source, outputs.master, Path(outputs.plots_dir)))
        if outputs.report is not None:
            _write_json_atomic(outputs.report, report)
        emit(done)
        return done
    except BaseException:
        measure_in.abort()
        writers.abort()
        if cached is not None:
            cached.abort()
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        pipeline.close()


def _attach_cache(pipeline: GraphPipeline, source, settings: Settings, cache, emit: EventSink):
    """Route the pipeline's separation lane through the stem cache (whatever runs the lanes).

    Returns ``(state, lane)``: ``hit``, ``miss`` or None, and the cache lane
    (to abort when the job fails) or None.  The key names the separator, not
    where it ran, so stems separated in this process serve a Ray job and back.
    """
    if cache is None or not isinstance(source, FileSource):
        return None, None
    from .cached_separation import CachedSeparation, RecordingSeparation, separation_key

    what = {**pipeline.separator_description, "settings": settings.separation.__dict__}
    if pipeline.graph.input_description:  # the stems are separated from the de-clipped input
        what["input"] = pipeline.graph.input_description
    key = separation_key(source.path, what)
    if cache.has(key):
        pipeline.separation = CachedSeparation(cache, key)
        emit(InfoEvent("separated stems read from the cache (separation skipped)", {"cache": "hit", "key": key}))
        return "hit", pipeline.separation
    pipeline.separation = RecordingSeparation(pipeline.separation, cache.writer(key, "separate", {"input": source.info.name}))
    return "miss", pipeline.separation


def check_reference(path: Path) -> None:
    """Fail before any work when the reference recording cannot be read (typed errors)."""
    from engine.io.decode import probe

    try:
        probe(Path(path))
    except ResonateError as exc:
        raise _bad_reference(exc) from None


def _bad_reference(exc: ResonateError):
    """``exc`` (a decoder's error about the reference file) as a ``bad_reference`` error."""
    from engine.errors import BadReferenceError

    if isinstance(exc, BadReferenceError):
        return exc
    return BadReferenceError(f"reference recording: {exc.message} ({exc.code})")


def measure_reference(path: Path):
    """The reference recording's :class:`~engine.master.reference.SpectrumProfile`, decoded and
    analysed block by block (never whole).  Raises the decoders' typed errors, naming the file as
    the reference (code ``bad_reference``)."""
    from engine.io.decode import open_audio
    from engine.master.reference import SpectrumProfile

    try:
        with open_audio(path, block_seconds=1.0) as dec:
            profile = SpectrumProfile.measure(dec)
    except ResonateError as exc:
        raise _bad_reference(exc) from None
    if profile.loud_s <= 0:
        from engine.errors import BadReferenceError

        raise BadReferenceError(f"reference recording {path.name} is silent: nothing to match")
    return profile


def settings_for_reference(settings: Settings, profile) -> Settings:
    """With ``reference.match_loudness``: the master's target becomes the reference's integrated
    loudness (clamped to the valid range of ``master.target_lufs``)."""
    import dataclasses

    from engine.master.config import TARGET_LUFS

    if not settings.reference.match_loudness or profile.integrated_lufs is None:
        return settings
    target = round(min(max(profile.integrated_lufs, TARGET_LUFS.lo), TARGET_LUFS.hi), 2)
    return dataclasses.replace(settings, master=dataclasses.replace(settings.master, target_lufs=target))


def _describe_reference(name: str, profile, settings: Settings) -> str:
    lufs = "?" if profile.integrated_lufs is None else f"{profile.integrated_lufs:.1f} LUFS"
    target = (f", master target {settings.master.target_lufs:.1f} LUFS" if settings.reference.match_loudness
              else "")
    return f"reference: {name}, {lufs}, {profile.loud_s:.1f} s of loud passages analysed{target}"


def _input_analysis(analyzer, band: tuple[float, float], total_s: float | None) -> dict:
    """``InfoEvent.data`` of the early input analysis (kind ``input_analysis``): metrics of the
    input read so far, the detected band limits (Hz) and the whole duration (s) if known."""
    metrics = analyzer.result().to_dict()
    analysed = float(metrics["duration_s"])
    return {"kind": "input_analysis", "partial": total_s is None or analysed < float(total_s) - 1e-3,
            "analysed_s": analysed, "duration_s": total_s, "band_limits_hz": list(band), "metrics": metrics}


def _describe_analysis(a: dict) -> str:
    """One line for people: ``input: 25.0 s, SNR 14.2 dB, -22.9 LUFS, band 120-7900 Hz (first 10.0 s)``."""
    m = a["metrics"]
    fmt = lambda v, spec, unit: "?" if v is None else f"{v:{spec}}{unit}"  # noqa: E731
    dur = a["duration_s"] if a["duration_s"] is not None else None
    text = (f"input: {fmt(dur, '.1f', ' s')}, SNR {fmt(m.get('snr_db'), '.1f', ' dB')}, "
            f"{fmt(m.get('integrated_lufs'), '.1f', ' LUFS')}, band {fmt(m.get('bandwidth_low_hz'), '.0f', '')}-"
            f"{fmt(m.get('bandwidth_high_hz'), '.0f', ' Hz')}")
    return text + (f" (first {a['analysed_s']:.1f} s)" if a["partial"] else "")


def _govern(mix_path: Path, spectrum_in, band: tuple[float, float], settings: Settings):
    """The governor's plan (:mod:`engine.restore.governor`): the stored mix's long-term spectrum
    (one streaming read) against the input's."""
    from engine.io.decode import open_audio
    from engine.restore.governor import plan_governor
    from engine.restore.tonal import TonalModel

    out = SpectrumAccumulator(SAMPLE_RATE)
    with open_audio(mix_path, block_seconds=1.0) as dec:
        for block in dec:
            out.update(block)
    r = settings.restore
    model = TonalModel.load(r.tonal_model) if r.tonal_model else None
    return plan_governor(spectrum_in.profile(), out.profile(), band, model, tol_db=r.governor_tol_db,
                         min_snr_db=r.tonal_min_snr_db)


def _final_master(mix_path: Path, output: Path, settings: Settings, total_s: float, emit: EventSink,
                  source_rate: int | None = None, tags: dict | None = None, pre=None):
    """Exact second pass on the stored mix -> the export file; returns (report, output analyzer).

    The mix is resampled to the export rate *before* the final limiter, so the
    true-peak ceiling holds in the file itself, not only at 44.1 kHz.  ``pre``: a stage run on
    the stored mix first (the governor's filter; its latency removed).
    """
    from engine.analysis.metrics import AudioAnalyzer
    from engine.background import SinkThread
    from engine.io.decode import open_audio
    from engine.io.encode import LOSSY_FORMATS, AudioWriter
    from engine.io.resample import StreamResampler
    from engine.master.final import FinalMasterConfig, final_master

    ex, m = settings.export, settings.master
    rate = int(source_rate or SAMPLE_RATE) if ex.sample_rate == "keep" else int(ex.sample_rate)
    analyzer = AudioAnalyzer(rate)
    writer = AudioWriter(output, format=ex.format, sample_rate=rate, bit_depth=int(ex.bit_depth), input_rate=rate,
                         mp3_bitrate=ex.mp3_bitrate, tags=tags)
    written = 0
    # the output's analysis and encoding run on a worker thread beside the limiter and meters
    # (same blocks in the same order: the same file and figures); progress stays on this thread
    sink = SinkThread(analyzer.update, writer.write, name="resonate-master-writer")

    def read_blocks():
        resampler = StreamResampler(SAMPLE_RATE, rate, 2) if rate != SAMPLE_RATE else None
        first = LatencyAligned(pre) if pre is not None else None
        if first is not None:
            first.reset()

        def stored():
            with open_audio(mix_path, block_seconds=1.0) as dec:
                for block in dec:
                    yield first.process(block) if first is not None else block
            if first is not None:
                yield first.flush()

        for block in stored():
            if block.shape[1]:
                yield resampler.process(block) if resampler else block
        if resampler:
            yield resampler.flush()

    def write_block(block: np.ndarray) -> None:
        nonlocal written
        sink(block)
        written += block.shape[1]
        emit(ProgressEvent("master", written / rate, total_s))

    try:
        rep = final_master(read_blocks, write_block, FinalMasterConfig(
            target_lufs=m.target_lufs, ceiling_dbtp=m.ceiling_dbtp, sample_rate=rate,
            lookahead_ms=m.limiter_lookahead_ms, release_ms=m.limiter_release_ms))
        sink.close()
        writer.close()
    except BaseException:
        sink.abort()
        writer.abort()
        raise
    rep["sample_rate"] = rate
    rep["format"] = ex.format
    rep["bit_depth"] = None if ex.format in LOSSY_FORMATS else int(ex.bit_depth)
    return rep, analyzer


def _outputs(outputs: OutputSpec, writers: _Writers) -> dict:
    out = {"master": str(outputs.master)}
    for k, p in writers.stem_paths.items():
        out[f"stem_{k}"] = str(p)
    if outputs.report is not None:
        out["report"] = str(outputs.report)
    return out


def _report(info, settings, description, notes, analyzer_in, analyzer_out, master_report, pipeline, band,
            total_s, wall_s, first_audio_s) -> dict:
    quality = pipeline.separation_quality()
    return {
        "input": {"name": info.name, "format": info.format, "sample_rate": info.sample_rate,
                  "channels": info.channels, "duration_s": total_s},
        "separation": {**description, "notes": list(notes), "quality": quality},
        "band_limits_hz": list(band),
        "metrics_before": analyzer_in.result().to_dict(),
        "metrics_after": analyzer_out.result().to_dict(),
        "master": master_report,
        "mix_gains_db": pipeline.stem_gains_db(),
        "stages": _stage_reports(pipeline),
        "timing": {"wall_s": wall_s, "realtime_factor": total_s / wall_s if wall_s else None,
                   "time_to_first_audio_s": first_audio_s},
        "settings": settings.to_dict(),
        "polish": pipeline.polish_description,
        "generation": getattr(pipeline, "generator_description", None),
        "mode": getattr(pipeline, "mode", "restore"),
        "provenance": pipeline_provenance(pipeline).summary(),
        "made_by": pipeline_provenance(pipeline).to_dict(),
    }


def _stage_reports(pipeline) -> dict | None:
    """Per stem, what each self-measuring stage changed and whether it backed off."""
    get = getattr(pipeline, "stage_reports", None)
    return get() if callable(get) else None


def pipeline_provenance(pipeline: GraphPipeline) -> Provenance:
    """What made the job's main output (from what the pipeline's lanes run)."""
    return job_provenance(pipeline.polish_description, getattr(pipeline, "generator_description", None),
                          getattr(pipeline, "mode", "restore"))


def stem_provenance(made_by: Provenance | None) -> Provenance:
    """The stems are the separated, restored input (polished when MBD ran per stem), never generated."""
    if made_by is None:
        return Provenance()
    polish = [m for m in made_by.models if m.get("role") == "polish" and m.get("on") != "mix"]
    return Provenance("restored+polished" if polish else "restored", tuple(polish), "restore")


def _write_json_atomic(path: Path, data: dict) -> None:
    import json
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
