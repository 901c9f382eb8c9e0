"""In-order lanes on worker threads (``--lane-threads``, :mod:`engine.thread_lanes`).

* the restored file is the same, sample for sample and byte for byte, with
  every lane inline and with 1, 2 or 6 worker threads (lanes sharing workers
  or each on its own), including the input (de-clipper) lane;
* a stage's error on a worker re-raises in the caller at that call's answer,
  after the answers before it, and the workers stop when the pipeline closes,
  also when the job fails;
* ``auto`` and bad values are resolved at the boundary (CLI and API).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf

from engine.errors import SettingsError
from engine.graph import LocalPipeline
from engine.separation import DspSeparator
from engine.separation.streaming import ThreadWindows
from engine.thread_lanes import MAX_AUTO_WORKERS, ThreadLanes, auto_workers, resolve_workers
from resonate_stream.cli import main
from resonate_stream.runner import process_file
from resonate_stream.settings import Settings

from conftest import DSP_SETTINGS


def _lane_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("resonate-lane")]


def _separator_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("resonate-separator")]


@pytest.fixture(scope="module")
def declip_settings():
    """The balanced preset with the de-clipper on, so the input lane runs too."""
    return Settings.from_preset("balanced", {**DSP_SETTINGS, "restore": {"declip": "auto"}})


def test_restored_file_is_the_same_inline_and_on_any_number_of_lane_threads(concert_clip, declip_settings,
                                                                             tmp_path):
    outs = {}
    for workers in (0, 1, 2, 6):
        out = tmp_path / f"w{workers}.wav"
        done = process_file(concert_clip, out, declip_settings, report_path=tmp_path / f"w{workers}.json",
                            use_cache=False, lane_threads=workers)
        outs[workers] = (out.read_bytes(), done.report["stages"])
    audio = sf.read(str(tmp_path / "w0.wav"), dtype="float32")[0]
    assert audio.shape[0] > 44100 and np.abs(audio).max() > 0.01  # a real restored signal
    for workers in (1, 2, 6):
        assert outs[workers][0] == outs[0][0], workers
        assert outs[workers][1] == outs[0][1], workers
    assert _lane_threads_alive() == []
    assert _separator_threads_alive() == []


@dataclass
class FailingSpec:
    """A lane spec whose stage doubles its input and raises on call ``fail_at``."""

    name: str
    fail_at: int

    def build(self):
        return FailingStage(self.fail_at)


class FailingStage:
    def __init__(self, fail_at: int):
        self.calls, self.fail_at = 0, fail_at
        self.built_on = threading.current_thread().name

    def process(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError(f"stage failed on call {self.calls}")
        return 2 * x

    def stage_reports(self):
        return {"calls": self.calls}


def test_an_error_on_a_worker_reraises_at_its_answer_in_order():
    lanes = ThreadLanes(2)
    try:
        a, b = lanes.place(FailingSpec("a", fail_at=3)), lanes.place(FailingSpec("b", fail_at=0))
        assert a.stage.built_on != b.stage.built_on  # round-robin: one worker each
        assert a.stage.built_on.startswith("resonate-lane")
        for i in range(4):
            a.submit("process", i)
            b.submit("process", i)
        assert [a.pop(), a.pop()] == [0, 2]
        with pytest.raises(RuntimeError, match="call 3"):
            a.pop()
        assert a.pop() == 6  # the lane goes on after the failed call, in order
        assert [b.pop() for _ in range(4)] == [0, 2, 4, 6]
        assert a.query("stage_reports") == {"calls": 4}
    finally:
        lanes.shutdown()
    assert _lane_threads_alive() == []
    assert _separator_threads_alive() == []


class BrokenSeparator(DspSeparator):
    """The DSP separator failing on its second window: a job that dies mid-stream."""

    def __init__(self):
        super().__init__(segment=2.0)
        self.windows = 0

    def separate(self, window):
        self.windows += 1
        if self.windows == 2:
            raise RuntimeError("separator died")
        return super().separate(window)


def test_the_workers_stop_when_a_failing_job_closes(dsp_settings):
    from engine.master.preview import PreviewPrior
    from stage_signals import harmonic_music

    x = harmonic_music(8.0, seed=2)
    head = [x[:, i:i + 44100] for i in range(0, 3 * 44100, 44100)]
    cfg = dsp_settings.pipeline_config((40.0, 16000.0), PreviewPrior.measure(head))
    pipeline = LocalPipeline(BrokenSeparator(), cfg, lane_threads=3)
    assert pipeline.lane_threads == 3 and len(_lane_threads_alive()) == 3
    assert isinstance(pipeline.separation.windows, ThreadWindows)  # the separator on a worker too
    with pytest.raises(RuntimeError, match="separator died"):
        try:
            for pos in range(0, x.shape[1], 44100):
                pipeline.process(x[:, pos:pos + 44100])
            list(pipeline.flush())
        finally:
            pipeline.close()
    assert _lane_threads_alive() == []
    assert _separator_threads_alive() == []


def test_demucs_on_the_cpu_reserves_its_torch_threads_for_auto():
    import torch

    from demucs_fixtures import tiny_htdemucs
    from engine.separation.demucs_separator import DemucsSeparator

    sep = DemucsSeparator(tiny_htdemucs(seed=1, segment=1), device="cpu")
    assert sep.cpu_threads == torch.get_num_threads() >= 1
    assert DspSeparator().cpu_threads == 0
    assert resolve_workers("auto", reserved=sep.cpu_threads) == auto_workers(reserved=torch.get_num_threads())


def test_auto_and_bad_values_resolve_at_the_boundary(tmp_path, capsys):
    assert auto_workers(1) == 0  # one core: inline
    assert auto_workers(2) == 2 and auto_workers(4) == 4
    assert auto_workers(64) == MAX_AUTO_WORKERS
    # the cores a separator's own thread pool takes (Demucs' torch threads on the CPU) are left to
    # it, down to a floor of 2 workers (they fill the model's idle gaps)
    assert auto_workers(8, reserved=4) == 4 and auto_workers(16, reserved=8) == MAX_AUTO_WORKERS
    assert auto_workers(2, reserved=2) == 2 and auto_workers(3, reserved=2) == 2 and auto_workers(1, reserved=1) == 0
    assert resolve_workers("auto") == auto_workers() and resolve_workers(3) == 3 and resolve_workers(0) == 0
    for bad in ("two", -1, 1.5):
        with pytest.raises(SettingsError, match="lane threads"):
            resolve_workers(bad)
    with pytest.raises(SettingsError, match="workers"):
        ThreadLanes(0)
    with pytest.raises(SystemExit) as e:
        main(["process", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.wav"), "--lane-threads", "-2"])
    assert e.value.code == 2
    assert "--lane-threads" in capsys.readouterr().err
