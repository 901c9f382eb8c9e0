"""SinkThread: sinks fed on a worker thread in order, bounded, errors back in the caller."""
from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

from engine.background import SinkThread
from engine.master.loudness import StreamingLoudnessMeter
from engine.master.true_peak import TruePeakMeter


def _blocks(seed=0, n=40):
    rng = np.random.default_rng(seed)
    return [(0.3 * rng.standard_normal((2, int(rng.integers(1, 9000))))).astype(np.float32) for _ in range(n)]


def test_meters_on_the_worker_read_exactly_what_they_read_inline():
    blocks = _blocks()
    inline = (StreamingLoudnessMeter(44100, 2), TruePeakMeter(2, 16))
    for b in blocks:
        for m in inline:
            m.update(b)
    threaded = (StreamingLoudnessMeter(44100, 2), TruePeakMeter(2, 16))
    seen: list[np.ndarray] = []
    names = set()

    def record(b):
        names.add(threading.current_thread().name)
        seen.append(b)
    with SinkThread(*(m.update for m in threaded), record, depth=3, name="resonate-test-sink") as sink:
        for b in blocks:
            sink(b)
    assert threaded[0].integrated_lufs() == inline[0].integrated_lufs()
    assert threaded[1].max_dbtp == inline[1].max_dbtp
    assert len(seen) == len(blocks) and all(a is b for a, b in zip(seen, blocks))  # every block, in order
    assert names and all(n.startswith("resonate-test-sink") for n in names)


def test_the_caller_waits_when_depth_blocks_are_queued():
    release = threading.Event()
    done: list[int] = []

    def slow(b):
        release.wait(5)
        done.append(int(b[0, 0]))
    sink = SinkThread(slow, depth=2)
    sink(np.zeros((1, 1)))
    sink(np.ones((1, 1)))
    t = threading.Thread(target=lambda: sink(np.full((1, 1), 2.0)))
    t.start()
    time.sleep(0.2)
    assert t.is_alive()  # the third block waits for room
    release.set()
    t.join(5)
    sink.close()
    assert done == [0, 1, 2]


def test_a_failing_sink_reraises_in_the_caller_and_stops_feeding():
    fed: list[int] = []

    def sink_fn(b):
        fed.append(int(b[0, 0]))
        if b[0, 0] == 2:
            raise ValueError("meter broke")
    sink = SinkThread(sink_fn, depth=8)
    with pytest.raises(ValueError, match="meter broke"):
        for i in range(6):
            sink(np.full((1, 1), float(i)))
        sink.close()
    sink.abort()
    assert fed == [0, 1, 2]  # nothing after the failure
    with pytest.raises(RuntimeError, match="closed"):
        sink(np.zeros((1, 1)))


def test_no_worker_is_left_behind():
    for exit_with_error in (False, True):
        with pytest.raises(KeyError) if exit_with_error else contextlib.nullcontext():
            with SinkThread(lambda b: None, name="resonate-leak-check") as sink:
                sink(np.zeros((2, 10)))
                if exit_with_error:
                    raise KeyError("elsewhere")
    assert not [t.name for t in threading.enumerate() if t.name.startswith("resonate-leak-check")]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        SinkThread()
    with pytest.raises(ValueError):
        SinkThread(lambda b: None, depth=0)
