"""Envelope / dynamics / harmonic kernels: maths and state carrying."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.dsp.dynamics import compressor_gain, static_compression_db
from engine.dsp.envelope import follow, linked_level, time_constant_coeff
from engine.dsp.harmonics import chebyshev_harmonics

SR = 44100


def test_time_constant_reaches_63_percent_after_tau():
    coeff = time_constant_coeff(10.0, SR)
    env = [0.0]
    for _ in range(441 * 3):
        env.append(follow(1.0, env[-1], coeff, coeff))
    assert env[441] == pytest.approx(1 - math.exp(-1), abs=1e-3)
    assert time_constant_coeff(0.0, SR) == 0.0
    assert time_constant_coeff(100.0, SR, step_samples=512) == pytest.approx(math.exp(-512 / 4410))


def test_linked_level_is_the_channel_maximum():
    x = np.array([[0.1, -0.5, 0.2], [-0.3, 0.4, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(linked_level(x), [0.3, 0.5, 0.2], rtol=1e-6)


def test_static_compression_curve():
    assert static_compression_db(-30.0, -20.0, 4.0, 0.0) == 0.0
    assert static_compression_db(-10.0, -20.0, 4.0, 0.0) == pytest.approx(-7.5)
    # the knee is continuous at its edges
    assert static_compression_db(-25.0, -20.0, 4.0, 10.0) == pytest.approx(0.0, abs=1e-12)
    assert static_compression_db(-15.0, -20.0, 4.0, 10.0) == pytest.approx(-3.75)
    assert static_compression_db(0.0, -20.0, 1.0, 6.0) == 0.0


def test_compressor_gain_of_exactly_one_at_ratio_one():
    level = np.abs(np.random.default_rng(0).standard_normal(1000))
    g = compressor_gain(level, -40.0, 1.0, 6.0, 0.5, 0.9, 0.0, np.zeros(1))
    assert np.all(g == 1.0)


def test_chebyshev_harmonics_of_a_sine_are_pure():
    t = np.arange(SR) / SR
    x = np.vstack([0.5 * np.cos(2 * np.pi * 100 * t)] * 2)
    # instant attack, very slow release: the envelope holds the peak
    h = chebyshev_harmonics(x, 1.0, 0.0, 0.0, time_constant_coeff(10000.0, SR), np.zeros(1))
    np.testing.assert_allclose(h[0, 1000:], 0.5 * np.cos(2 * np.pi * 200 * t[1000:]), atol=2e-3)
    h3 = chebyshev_harmonics(x, 0.0, 1.0, 0.0, time_constant_coeff(10000.0, SR), np.zeros(1))
    np.testing.assert_allclose(h3[0, 1000:], 0.5 * np.cos(2 * np.pi * 300 * t[1000:]), atol=2e-3)


@pytest.mark.parametrize("shape, width", [((5, 1025), 29), ((3, 10), 7), ((2, 3), 5), ((4, 50), 1)])
def test_running_median_matches_scipy(shape, width):
    from scipy import ndimage

    from engine.dsp.noise_floor import running_median

    x = np.random.default_rng(0).random(shape) ** 3
    x[:, 1:3] = x[:, :1]  # ties
    np.testing.assert_array_equal(running_median(x, width),
                                  ndimage.median_filter(x, size=(1, width), mode="nearest"))
