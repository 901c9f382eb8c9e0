"""StreamingSTFTProcessor: exact reconstruction, latency, fixed frame grid."""
from __future__ import annotations

import numpy as np
import pytest

from engine.dsp.stft import StreamingSTFTProcessor, sqrt_hann_pair
from engine.stage import LatencyAligned, run_in_blocks


@pytest.mark.parametrize("n, hop", [(2048, 512), (1024, 512), (512, 64), (8, 2)])
def test_windows_are_cola(n, hop):
    a, s = sqrt_hann_pair(n, hop)
    total = (a * s).reshape(n // hop, hop).sum(axis=0)
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)


def test_bad_geometry_is_refused():
    for n, hop in ((1000, 300), (512, 512), (512, 0)):
        with pytest.raises(ValueError):
            sqrt_hann_pair(n, hop)


@pytest.mark.parametrize("n, hop", [(2048, 512), (1024, 256), (256, 128)])
def test_identity_reconstructs_input_delayed_by_latency(n, hop):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 9000)) * 0.3).astype(np.float32)
    stage = StreamingSTFTProcessor(frame_length=n, hop=hop)
    assert stage.latency == n - 1
    y = run_in_blocks(stage, x, [1, 100, 777, 4096])
    assert y.shape == (2, x.shape[1] + n - 1)
    assert np.all(y[:, :n - 1] == 0.0)
    np.testing.assert_allclose(y[:, n - 1:], x, atol=1e-6)
    aligned = run_in_blocks(LatencyAligned(StreamingSTFTProcessor(n, hop)), x, [333])
    np.testing.assert_allclose(aligned, x, atol=1e-6)


class FrameRecorder(StreamingSTFTProcessor):
    """Records the frame grid and a running per-frame state (sum of magnitudes)."""

    def reset_spectral_state(self):
        self.ends = []
        self.energy = 0.0

    def process_frames(self, spectra, frame_ends):
        self.ends.extend(int(e) for e in frame_ends)
        out = spectra.copy()
        for i in range(spectra.shape[0]):  # a stateful, order-dependent modification
            self.energy = 0.9 * self.energy + 0.1 * float(np.abs(spectra[i]).mean())
            out[i] *= 1.0 / (1.0 + self.energy)
        return out


def test_frames_sit_on_absolute_positions_whatever_the_chunking():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 5000)) * 0.1).astype(np.float32)
    a, b = FrameRecorder(512, 128), FrameRecorder(512, 128)
    ya = run_in_blocks(a, x, None)
    yb = run_in_blocks(b, x, [1, 2, 3, 127, 128, 129, 1000])
    assert a.ends == b.ends == list(range(128, x.shape[1] + 511 + 1, 128))
    assert np.max(np.abs(ya - yb)) < 1e-7


def test_flush_returns_latency_samples():
    stage = StreamingSTFTProcessor(256, 64)
    stage.process(np.ones((2, 1000), dtype=np.float32))
    assert stage.flush().shape == (2, 255)
