"""The streaming STFT the spectral restoration stages are built on."""
from __future__ import annotations

import numpy as np
import pytest

from engine.errors import SettingsError
from engine.restore.stft import StreamingSTFTStage
from engine.stage import LatencyAligned, run_in_blocks


class Identity(StreamingSTFTStage):
    def process_frames(self, spec):
        return spec


class HalfGainAbove(StreamingSTFTStage):
    """A frame-recursive toy: gain follows a running frame counter."""

    def __init__(self, n_fft, hop):
        super().__init__(n_fft, hop)
        self.reset_state()

    def reset_state(self):
        self.count = 0

    def process_frames(self, spec):
        out = spec.copy()
        for t in range(spec.shape[2]):
            self.count += 1
            out[:, 100:, t] *= 0.5 + 0.5 * np.cos(self.count / 10.0)
        return out


@pytest.mark.parametrize("n_fft,hop", [(1024, 256), (2048, 1024), (512, 128)])
def test_identity_reconstructs_the_input_delayed(n_fft, hop):
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((2, 9000))).astype(np.float32)
    st = Identity(n_fft, hop)
    y = run_in_blocks(st, x)
    assert st.latency == n_fft - 1
    assert y.shape == (2, 9000 + st.latency)
    np.testing.assert_allclose(y[:, st.latency:], x, atol=1e-6)
    assert np.max(np.abs(y[:, :st.latency])) < 1e-6
    aligned = run_in_blocks(LatencyAligned(Identity(n_fft, hop)), x, sizes=[1, 100, 3])
    np.testing.assert_allclose(aligned, x, atol=1e-6)


def test_frame_recursive_state_is_chunk_size_invariant_and_resets():
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal((2, 20000))).astype(np.float32)
    st = HalfGainAbove(1024, 256)
    whole = run_in_blocks(st, x)
    st.reset()
    again = run_in_blocks(st, x)
    np.testing.assert_array_equal(whole, again)
    parts = run_in_blocks(HalfGainAbove(1024, 256), x, sizes=[1, 7, 255, 256, 257, 3001, 1])
    assert np.max(np.abs(whole - parts)) < 10 ** (-90 / 20)


def test_bad_parameters_raise():
    with pytest.raises(SettingsError):
        Identity(1000, 300)
    with pytest.raises(SettingsError):
        Identity(1024, 1024)
