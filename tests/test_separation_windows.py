"""Contract 1, geometry part: planner + stitcher reproduce demucs' split loop.

Identity separator (every stem = the window's chunk): the stitched stream must
equal the input for any block sizes and any window arrival order.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from demucs.apply import TensorChunk

from engine.separation import (OverlapAddStitcher, StitchError, WindowPlanner,
                               demucs_transition_weight, n_windows)

SR = 44100


def _feed(planner: WindowPlanner, x: np.ndarray, rng: np.random.Generator, max_block: int):
    windows = []
    pos = 0
    while pos < x.shape[1]:
        n = int(rng.integers(1, max_block + 1))
        windows += planner.push(x[:, pos:pos + n])
        pos += n
    windows += planner.finish()
    return windows


@pytest.mark.parametrize("total", [1, 999, 1000, 1001, 7 * 750, 12345])
@pytest.mark.parametrize("segment,overlap,context", [(1000, 0.25, 0), (1000, 0.5, 37), (640, 0.0, 200)])
def test_planner_matches_apply_model_split_loop(total, segment, overlap, context):
    rng = np.random.default_rng(total + segment)
    x = rng.standard_normal((2, total)).astype(np.float32)
    planner = WindowPlanner(segment, overlap, context)
    windows = _feed(planner, x, rng, max_block=300)
    stride = int((1 - overlap) * segment)
    offsets = list(range(0, total, stride))  # demucs.apply.apply_model
    assert [w.offset for w in windows] == offsets
    assert [w.seq for w in windows] == list(range(len(offsets)))
    assert [w.length for w in windows] == [min(segment, total - o) for o in offsets]
    mix = torch.from_numpy(x)
    for w in windows:
        np.testing.assert_array_equal(w.chunk, x[:, w.offset:w.offset + w.length])
        # the context is what demucs' TensorChunk.padded would see around the chunk
        left = w.context_offset
        right = w.context.shape[1] - left - w.length
        assert left >= context and right >= context
        target = w.length + 2 * min(left, right)
        ref = TensorChunk(mix, w.offset, w.length).padded(target).numpy()
        ours = TensorChunk(torch.from_numpy(w.context), w.context_offset, w.length).padded(target)
        np.testing.assert_array_equal(ours.numpy(), ref)


def test_planner_emits_windows_as_soon_as_right_context_arrives():
    planner = WindowPlanner(1000, 0.25, context_samples=100)
    assert planner.push(np.zeros((2, 1099), np.float32)) == []
    (w,) = planner.push(np.zeros((2, 1), np.float32))
    assert (w.seq, w.offset, w.length, w.context_offset, w.context.shape) == (0, 0, 1000, 100, (2, 1200))
    assert planner.push(np.zeros((2, 749), np.float32)) == []
    assert [w.seq for w in planner.push(np.zeros((2, 1), np.float32))] == [1]


def test_planner_memory_is_bounded():
    segment, context = 2000, 300
    planner = WindowPlanner(segment, 0.25, context)
    rng = np.random.default_rng(0)
    peak = 0
    for _ in range(3000):  # ~1.5 M samples in blocks up to 1000
        planner.push(np.ones((2, int(rng.integers(1, 1000))), np.float32))
        peak = max(peak, planner.held_samples)
    assert planner.received > 100 * segment
    assert peak <= 2 * segment + 2 * context + 1000


def _identity_stitch(x, segment, overlap, context, tp, rng, max_block):
    planner = WindowPlanner(segment, overlap, context)
    stitcher = OverlapAddStitcher(segment, overlap, n_sources=3, transition_power=tp)
    windows = _feed(planner, x, rng, max_block)
    order = rng.permutation(len(windows))
    outs = []
    for i in order:
        w = windows[i]
        stitcher.add(w.seq, w.offset, np.stack([w.chunk, 2 * w.chunk, -w.chunk]))
        outs.append(stitcher.pop_ready())
    outs.append(stitcher.finish(x.shape[1]))
    return np.concatenate(outs, axis=2)


@pytest.mark.parametrize("total", [5, 1000, 4321, 20000])
@pytest.mark.parametrize("segment,overlap,tp", [(1000, 0.25, 1.0), (997, 0.5, 2.0), (512, 0.1, 1.0),
                                                (300, 0.0, 1.0)])
def test_identity_separator_roundtrip_any_blocks_any_order(total, segment, overlap, tp):
    rng = np.random.default_rng(total * 7 + segment)
    x = rng.standard_normal((2, total)).astype(np.float32)
    y = _identity_stitch(x, segment, overlap, 11, tp, rng, max_block=int(rng.integers(1, 3000)))
    assert y.shape == (3, 2, total)
    np.testing.assert_allclose(y[0], x, atol=1e-6, rtol=0)
    np.testing.assert_allclose(y[1], 2 * x, atol=2e-6, rtol=0)
    np.testing.assert_allclose(y[2], -x, atol=1e-6, rtol=0)


def test_stitcher_releases_samples_in_order_only_when_final():
    seg, stride, total = 1000, 750, 2250  # windows at 0, 750, 1500 (the last 750 long)
    st = OverlapAddStitcher(seg, 0.25, n_sources=1)
    ones = np.ones((1, 2, seg), np.float32)
    assert st.add(2, 2 * stride, ones[..., :total - 2 * stride]) is True  # early: held
    assert st.pop_ready().shape[2] == 0  # window 0 missing: nothing is final
    assert st.pending == 1
    st.add(0, 0, ones)
    assert st.pop_ready().shape[2] == stride  # samples before window 1's start
    st.add(1, stride, ones)
    out = st.pop_ready()
    assert out.shape[2] == total - stride  # windows 1 and 2 both integrated
    np.testing.assert_allclose(out, 1.0, atol=1e-6)
    assert st.add(1, stride, 5 * ones) is False  # duplicate (retried window) ignored
    assert st.finish(total).shape[2] == 0
    assert st.emitted == total


def test_stitcher_weights_are_demucs_triangle():
    w = demucs_transition_weight(10)
    np.testing.assert_allclose(w, np.array([1, 2, 3, 4, 5, 5, 4, 3, 2, 1]) / 5, rtol=1e-7)
    w2 = demucs_transition_weight(7, 2.0)
    ref = torch.cat([torch.arange(1, 4), torch.arange(4, 0, -1)])
    ref = (ref / ref.max()) ** 2.0
    np.testing.assert_allclose(w2, ref.numpy(), rtol=1e-6)


def test_stitcher_rejects_bad_windows_and_missing_ones():
    st = OverlapAddStitcher(1000, 0.25, n_sources=2)
    with pytest.raises(StitchError):
        st.add(1, 700, np.zeros((2, 2, 1000), np.float32))  # wrong offset
    with pytest.raises(StitchError):
        st.add(0, 0, np.zeros((3, 2, 1000), np.float32))  # wrong source count
    st.add(0, 0, np.zeros((2, 2, 1000), np.float32))
    st.add(2, 1500, np.zeros((2, 2, 1000), np.float32))
    with pytest.raises(StitchError, match="needs 4 windows"):
        st.finish(2500)
    assert n_windows(2500, 750) == 4
