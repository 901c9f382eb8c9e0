"""RBJ / Butterworth designs and the stateful SOS filter."""
from __future__ import annotations

import numpy as np
import pytest

from engine.dsp import biquad
from engine.dsp.biquad import SosFilter, design_band, sos_gain_db
from engine.errors import SettingsError

SR = 44100


@pytest.mark.parametrize("freq, gain, q", [(50.0, 6.0, 0.7), (1000.0, -9.0, 2.0), (16000.0, 3.0, 1.0)])
def test_peak_has_its_gain_at_the_centre(freq, gain, q):
    sos = biquad.peak(freq, gain, q, SR)[None]
    assert sos_gain_db(sos, freq, SR)[0] == pytest.approx(gain, abs=1e-9)
    assert abs(sos_gain_db(sos, [5.0, 21000.0], SR)).max() < abs(gain) / 2


def test_shelves_and_passes():
    assert sos_gain_db(biquad.low_shelf(200.0, 6.0, 0.7071, SR)[None], [200.0, 10.0, 15000.0], SR) == pytest.approx(
        [3.0, 6.0, 0.0], abs=0.05)
    assert sos_gain_db(biquad.high_shelf(5000.0, -4.0, 0.7071, SR)[None], [5000.0, 21000.0, 50.0], SR) == pytest.approx(
        [-2.0, -4.0, 0.0], abs=0.1)
    assert sos_gain_db(biquad.highpass(100.0, 0.7071, SR)[None], 100.0, SR)[0] == pytest.approx(-3.01, abs=0.01)
    assert sos_gain_db(biquad.lowpass(5000.0, 0.7071, SR)[None], 5000.0, SR)[0] == pytest.approx(-3.01, abs=0.01)
    assert sos_gain_db(biquad.bandpass(2000.0, 2.0, SR)[None], 2000.0, SR)[0] == pytest.approx(0.0, abs=1e-9)
    assert sos_gain_db(biquad.notch(2000.0, 2.0, SR)[None], 2000.0, SR)[0] < -100.0
    hp4 = biquad.butterworth("highpass", 30.0, 4, SR)
    assert hp4.shape == (2, 6)
    assert sos_gain_db(hp4, [30.0, 15.0], SR) == pytest.approx([-3.01, -24.1], abs=0.2)


def test_design_band_dispatch_and_errors():
    assert design_band("peak", 1000.0, 3.0, 1.0, 2, SR).shape == (1, 6)
    assert design_band("highpass", 80.0, 0.0, 0.7071, 4, SR).shape == (2, 6)
    for bad in (lambda: design_band("boost", 100.0, 1.0, 1.0, 2, SR),
                lambda: biquad.peak(0.0, 3.0, 1.0, SR),
                lambda: biquad.peak(23000.0, 3.0, 1.0, SR),
                lambda: biquad.peak(1000.0, 3.0, -1.0, SR),
                lambda: biquad.butterworth("highpass", 100.0, 0, SR)):
        with pytest.raises(SettingsError):
            bad()


def test_sos_filter_is_bit_exact_under_chunking():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 20000))
    sos = np.concatenate([biquad.peak(300.0, 5.0, 1.0, SR)[None], biquad.butterworth("lowpass", 3000.0, 3, SR)])
    whole = SosFilter(sos, 2).process(x)
    f = SosFilter(sos, 2)
    pieces, pos = [], 0
    for n in rng.integers(1, 3000, 100):
        pieces.append(f.process(x[:, pos:pos + n]))
        pos += n
        if pos >= x.shape[1]:
            break
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole[:, :pos])
    f.reset()
    np.testing.assert_array_equal(f.process(x), whole)


def test_empty_cascade_is_identity():
    x = np.ones((2, 10))
    assert SosFilter(np.zeros((0, 6)), 2).process(x) is x
