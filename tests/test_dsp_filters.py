"""engine.dsp.filters against scipy.signal (the reference it stands in for on the DSP path)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from engine.dsp import filters as F

FS = 44100.0
DESIGNS = [(1, 500.0, "highpass"), (2, 100.0, "highpass"), (3, 2000.0, "lowpass"), (4, 8000.0, "lowpass"),
           (8, 60.0, "lowpass"), (5, 300.0, "highpass"), (2, (30.0, 120.0), "bandpass"),
           (3, (100.0, 1000.0), "bandpass"), (4, (4000.0, 8000.0), "bandpass"), (2, 20000.0, "lowpass")]


@pytest.mark.parametrize("order,freq,btype", DESIGNS)
def test_butter_matches_scipy_response_and_output(order, freq, btype):
    ref = signal.butter(order, freq, btype=btype, output="sos", fs=FS)
    mine = F.butter_sos(order, freq, btype, FS)
    assert mine.shape == ref.shape and np.all(mine[:, 3] == 1.0)
    f = np.geomspace(10.0, 22000.0, 300)
    _, h_ref = signal.sosfreqz(ref, worN=f, fs=FS)
    assert np.max(np.abs(F.sos_response(mine, f, FS) - h_ref)) < 1e-9
    # stable: every pole inside the unit circle
    assert all(np.all(np.abs(np.roots(row[3:])) < 1.0) for row in mine)
    x = np.random.default_rng(order).standard_normal((2, 20000))
    np.testing.assert_allclose(F.sosfilt(mine, x), signal.sosfilt(ref, x), atol=1e-9)


def test_sosfilt_is_scipys_arithmetic_with_carried_state_on_any_axis():
    sos = signal.butter(4, [300.0, 3000.0], btype="bandpass", output="sos", fs=FS)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5000))
    zi = rng.standard_normal((sos.shape[0], 2, 2))
    y_ref, z_ref = signal.sosfilt(sos, x, axis=-1, zi=zi)
    y, z = F.sosfilt(sos, x, axis=-1, zi=zi)
    assert np.array_equal(y, y_ref) and np.array_equal(z, z_ref)  # same operations, same order
    y_ref, z_ref = signal.sosfilt(sos, x.T, axis=0, zi=zi)  # zi: x's shape with the axis replaced by 2
    y, z = F.sosfilt(sos, x.T, axis=0, zi=zi)
    assert y.shape == x.T.shape and np.array_equal(y, y_ref) and np.array_equal(z, z_ref)
    # block by block with the carried state == whole
    state = np.zeros((sos.shape[0], 2, 2))
    parts = []
    for a, b in ((0, 7), (7, 1200), (1200, 5000)):
        part, state = F.sosfilt(sos, x[:, a:b], zi=state)
        parts.append(part)
    assert np.array_equal(np.concatenate(parts, axis=1), F.sosfilt(sos, x))
    assert not np.shares_memory(F.sosfilt(sos, x), x)  # the input is left alone


def test_first_order_section_is_lfilter_one_pole():
    a = 0.93
    x = np.random.default_rng(2).standard_normal((50, 3, 7))
    zi = np.random.default_rng(3).standard_normal((3, 7))
    y_ref, z_ref = signal.lfilter([1.0 - a], [1.0, -a], x, axis=0, zi=zi[None])
    y, z = F.sosfilt(np.array([1.0 - a, 0, 0, 1.0, -a, 0]), x, axis=0, zi=np.stack([zi, np.zeros_like(zi)])[None])
    assert np.array_equal(y, y_ref) and np.array_equal(z[0, 0], z_ref[0])


def test_windows_and_fir_match_scipy():
    for n in (1, 2, 255, 4096):
        np.testing.assert_allclose(F.blackman_harris(n), signal.get_window("blackmanharris", n), atol=1e-15)
    for taps, cut in ((81, 0.25), (41, 0.5), (101, 0.125)):
        np.testing.assert_allclose(F.kaiser_lowpass(taps, cut, 5.0), signal.firwin(taps, cut, window=("kaiser", 5.0)),
                                   atol=1e-15)


@pytest.mark.parametrize("bad", [(0, 100.0, "lowpass"), (2, 0.0, "lowpass"), (2, 30000.0, "highpass"),
                                 (2, 100.0, "bandstop"), (2, 100.0, "bandpass")])
def test_bad_designs_are_refused(bad):
    with pytest.raises(ValueError):
        F.butter_sos(*bad, FS)


def test_the_dsp_path_imports_neither_scipy_signal_nor_pyav():
    code = ("import sys, resonate_stream.cli, resonate_stream.runner, engine.graph, engine.master.final; "
            "print(sorted(m for m in ('scipy.signal', 'scipy.stats', 'av', 'torch', 'demucs', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
