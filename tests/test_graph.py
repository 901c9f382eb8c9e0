"""The job graph (engine/graph.py) with no Ray: where windows and lanes run does not change the output.

* input cut into any block sizes -> the same processed stream, bit for bit
  (the re-blocker fixes the in-order stages' block boundaries);
* windows that come back late and out of order (as from an actor pool) and
  lanes that answer late (as actors do) -> the same stream as in-process;
* the flush sequence: output samples == input samples, for mix, stems and preview.
"""
from __future__ import annotations

import collections

import numpy as np
import pytest

from engine.graph import GraphPipeline, JobGraph, LaneSpec, LocalLane, LocalPipeline
from engine.separation import DspSeparator, StreamingSeparation

SR = 44100


@pytest.fixture(scope="module")
def cfg():
    from resonate_stream.runner import build_stage_configs
    from resonate_stream.settings import Settings

    return build_stage_configs(Settings.from_preset("balanced"), (20.0, 20000.0))[0]


@pytest.fixture(scope="module")
def music():
    from demucs_fixtures import music_mix

    return music_mix(5.3, seed=11)


def separator():
    return DspSeparator(segment=1.0)


def run(pipeline: GraphPipeline, x: np.ndarray, sizes) -> dict:
    blocks, pos, i = [], 0, 0
    while pos < x.shape[1]:
        n = sizes[i % len(sizes)]
        blocks += pipeline.process(x[:, pos:pos + n])
        pos, i = pos + n, i + 1
    blocks += list(pipeline.flush())
    out = {"mix": np.concatenate([b.mix for b in blocks], axis=1),
           "preview": np.concatenate([b.preview for b in blocks], axis=1)}
    for name in ("vocals", "drums", "bass", "other"):
        out[name] = np.concatenate([b.stems[name] for b in blocks if b.stems], axis=1)
    return out


class ShuffledWindows:
    """Window runner that holds windows back and returns them in reverse order, a few at a time."""

    def __init__(self, sep, hold: int = 3):
        self.separator, self.geometry, self.hold = sep, sep.geometry, hold
        self._held: list = []

    @property
    def in_flight(self) -> int:
        return len(self._held)

    def submit(self, window) -> None:
        self._held.append(window)

    def collect(self, wait: bool) -> list:
        if len(self._held) < self.hold and not (wait and self._held):
            return []
        batch, self._held = self._held[::-1], []
        return [(w, self.separator.separate(w)) for w in batch]


class LateLane(LocalLane):
    """An in-order lane whose answers arrive one call late (like an actor's)."""

    def __init__(self, spec: LaneSpec):
        super().__init__(spec)
        self._late: collections.deque = collections.deque()

    def submit(self, method, *args):
        self._late.append(getattr(self.stage, method)(*args))

    def head_ready(self) -> bool:
        if len(self._late) > 1:
            self._answers.append(self._late.popleft())
        return super().head_ready()

    def pop(self):
        if not self._answers:
            self._answers.append(self._late.popleft())
        return super().pop()


def test_output_does_not_depend_on_input_block_sizes(cfg, music):
    whole = run(LocalPipeline(separator(), cfg), music, [music.shape[1]])
    for sizes in ([SR], [1000, 70001, 3], [12345]):
        got = run(LocalPipeline(separator(), cfg), music, sizes)
        for k, v in whole.items():
            assert np.array_equal(got[k], v), (sizes, k)
    assert all(v.shape == music.shape for v in whole.values())  # flush returns every sample


def test_where_windows_and_lanes_run_does_not_change_the_output(cfg, music):
    ref = run(LocalPipeline(separator(), cfg), music, [SR])
    sep = separator()
    elsewhere = GraphPipeline(JobGraph(cfg), StreamingSeparation(windows=ShuffledWindows(sep)), LateLane,
                              sep.description, runner={"runner": "test"})
    got = run(elsewhere, music, [SR])
    for k, v in ref.items():
        assert np.array_equal(got[k], v), k
    assert elsewhere.description["runner"] == "test" and "runner" not in elsewhere.separator_description
    assert elsewhere.stem_gains_db().keys() == {"vocals", "drums", "bass", "other"}


def test_streaming_separation_needs_one_place_for_its_windows():
    sep = separator()
    with pytest.raises(ValueError):
        StreamingSeparation()
    with pytest.raises(ValueError):
        StreamingSeparation(sep, windows=ShuffledWindows(sep))
