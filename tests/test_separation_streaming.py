"""StreamingSeparation end to end with a pass-through separator: alignment,
sample counts, bounded memory, to_stem_dict mapping."""
from __future__ import annotations

import numpy as np
import pytest

from engine.audio import STEM_NAMES
from engine.separation import Separator, StreamingSeparation, to_stem_dict


class ScaledCopySeparator(Separator):
    """Every source is the window's chunk times a fixed gain (sources given)."""

    def __init__(self, sources, gains, segment=3000, overlap=0.25, context=50):
        self.sources = tuple(sources)
        self.gains = np.asarray(gains, np.float32)[:, None, None]
        self.segment_samples, self.overlap, self.context_samples = segment, overlap, context
        self.description = {"separator": "scaled-copy"}

    def separate(self, window):
        assert window.context.shape[1] >= window.length + 2 * self.context_samples
        return self.gains * window.chunk[None]


@pytest.mark.parametrize("total", [0, 1, 2999, 3000, 50_001])
def test_stream_is_aligned_and_complete(total):
    rng = np.random.default_rng(total)
    x = rng.standard_normal((2, total)).astype(np.float32)
    sep = ScaledCopySeparator(["drums", "bass", "other", "vocals"], [0.1, 0.2, 0.3, 0.4])
    st = StreamingSeparation(sep)
    parts, pos = [], 0
    while pos < total:
        n = int(rng.integers(1, 5000))
        out = st.process(x[:, pos:pos + n])
        assert len({v.shape for v in out.values()}) == 1  # all stems the same length
        parts.append(out)
        pos += n
    parts.append(st.flush())
    stems = {k: np.concatenate([p[k] for p in parts], axis=1) for k in STEM_NAMES}
    for k, g in zip(["drums", "bass", "other", "vocals"], [0.1, 0.2, 0.3, 0.4]):
        assert stems[k].shape == (2, total)
        np.testing.assert_allclose(stems[k], g * x, atol=1e-6)
    assert st.emitted == st.received == total


def test_memory_stays_flat_on_a_long_stream():
    sep = ScaledCopySeparator(["vocals", "drums", "bass", "other"], [1, 1, 1, 1], segment=4410)
    st = StreamingSeparation(sep)
    block = np.ones((2, 4410), np.float32)
    peak_planner = peak_stitch = 0
    for _ in range(2000):  # 200 s at 44.1 kHz
        out = st.process(block)
        peak_planner = max(peak_planner, st.planner.held_samples)
        peak_stitch = max(peak_stitch, st.stitcher._acc.shape[2])
        assert st.received - st.emitted <= 2 * 4410 + 50
    st.flush()
    assert peak_planner <= 3 * 4410 + 2 * 50
    assert peak_stitch <= 2 * 4410


def test_to_stem_dict_folds_extra_sources_into_other():
    sources = ["drums", "bass", "other", "vocals", "guitar", "piano"]  # htdemucs_6s
    arr = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 2, 3), np.float32)
    d = to_stem_dict(sources, arr)
    assert list(d) == list(STEM_NAMES)
    assert d["drums"][0, 0] == 0 and d["bass"][0, 0] == 1 and d["vocals"][0, 0] == 3
    assert d["other"][0, 0] == 2 + 4 + 5
    np.testing.assert_allclose(sum(d.values()), arr.sum(axis=0))
    two = to_stem_dict(["vocals", "accompaniment"], arr[:2])
    assert np.all(two["drums"] == 0) and np.all(two["other"] == 1)


class _ThreadRecordingSeparator(ScaledCopySeparator):
    """Records the thread each window ran on; raises on window ``fail_at`` (1-based) if given."""

    def __init__(self, *args, fail_at=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.threads, self.calls, self.fail_at = set(), 0, fail_at

    def separate(self, window):
        import threading

        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.calls == self.fail_at:
            raise RuntimeError("window failed")
        return super().separate(window)


def _stream(st, x, rng):
    parts, pos = [], 0
    while pos < x.shape[1]:
        n = int(rng.integers(1, 7000))
        parts.append(st.process(x[:, pos:pos + n]))
        pos += n
    parts.append(st.flush())
    return {k: np.concatenate([p[k] for p in parts], axis=1) for k in STEM_NAMES}


@pytest.mark.parametrize("max_in_flight", [1, 2, 3])
def test_thread_windows_give_the_inline_stems_from_a_worker_thread(max_in_flight):
    from engine.separation import DspSeparator
    from engine.separation.streaming import ThreadWindows

    rng = np.random.default_rng(7)
    x = (0.1 * rng.standard_normal((2, 5 * 44100))).astype(np.float32)
    sep = DspSeparator(segment=1.0)
    inline = _stream(StreamingSeparation(sep), x, np.random.default_rng(1))
    windows = ThreadWindows(sep, max_in_flight=max_in_flight)
    peak = 0
    submit = windows.submit

    def counting_submit(w):
        nonlocal peak
        submit(w)
        peak = max(peak, sum(not f.done() for _, f in windows._pending))
    windows.submit = counting_submit
    try:
        threaded = _stream(StreamingSeparation(windows=windows), x, np.random.default_rng(2))
    finally:
        windows.close()
    for k in STEM_NAMES:
        np.testing.assert_array_equal(threaded[k], inline[k])  # bit for bit, block sizes differ too
    assert 1 <= peak <= max_in_flight + 1  # the window just submitted plus those still running
    rec = _ThreadRecordingSeparator(["vocals", "drums", "bass", "other"], [1, 1, 1, 1])
    w2 = ThreadWindows(rec)
    StreamingSeparation(windows=w2).process_all(x[:, :20000], block_size=3000)
    w2.close()
    assert rec.threads and all(t.startswith("resonate-separator") for t in rec.threads)


def test_a_window_that_fails_on_the_worker_reraises_in_the_caller():
    from engine.separation.streaming import ThreadWindows

    rec = _ThreadRecordingSeparator(["vocals", "drums", "bass", "other"], [1, 1, 1, 1], fail_at=3)
    windows = ThreadWindows(rec)
    st = StreamingSeparation(windows=windows)
    x = np.ones((2, 40000), np.float32)
    try:
        with pytest.raises(RuntimeError, match="window failed"):
            for pos in range(0, x.shape[1], 1000):
                st.process(x[:, pos:pos + 1000])
            st.flush()
    finally:
        windows.close()
    assert windows.in_flight == 0
    with pytest.raises(RuntimeError):  # a closed runner takes no more windows
        windows.submit(next(iter(st.planner.push(np.ones((2, 4000), np.float32)))))
