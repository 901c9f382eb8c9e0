"""The weight-free DSP separator: mixture consistency, stream invariance, and
that each kind of sound lands in the stem a listener expects."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from demucs_fixtures import music_mix
from engine.errors import NonFiniteAudioError, SettingsError
from engine.separation import DspSeparator, StreamingSeparation, WindowPlanner
from engine.dsp.median_network import median_filter_cols, median_network

SR = 44100


@pytest.fixture(scope="module")
def sep():
    return DspSeparator(segment=2.0, overlap=0.25)


def _stream(sep, x, sizes, order_seed=None):
    st = StreamingSeparation(sep)
    parts, pos, i = [], 0, 0
    while pos < x.shape[1]:
        n = sizes[i % len(sizes)]
        parts.append(st.process(x[:, pos:pos + n]))
        pos, i = pos + n, i + 1
    parts.append(st.flush())
    return {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}


def test_stems_sum_to_mix_and_stay_aligned(sep):
    x = music_mix(5.3, seed=1)
    out = _stream(sep, x, [4410, 1, 30000, 777])
    assert set(out) == {"vocals", "drums", "bass", "other"}
    assert all(v.shape == x.shape and v.dtype == np.float32 for v in out.values())
    np.testing.assert_allclose(sum(out.values()), x, atol=1e-4, rtol=0)
    assert all(np.sqrt(np.mean(v ** 2)) > 1e-4 for k, v in out.items() if k != "vocals")


def test_output_does_not_depend_on_block_sizes(sep):
    x = music_mix(4.1, seed=2)
    a = _stream(sep, x, [44100])
    b = _stream(sep, x, [1234, 5, 20000])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_window_result_independent_of_attached_context(sep):
    """A tail window carries more left context; the stems must not change."""
    x = music_mix(3.0, seed=3)
    w_small = WindowPlanner(sep.segment_samples, sep.overlap, sep.context_samples).push(x)[0]
    w_big = WindowPlanner(sep.segment_samples, sep.overlap, sep.context_samples + 5000).push(x)[0]
    np.testing.assert_array_equal(sep.separate(w_small), sep.separate(w_big))


def _shares(sep, x):
    out = StreamingSeparation(sep).process_all(x)
    e = {k: float(np.sum(v.astype(np.float64) ** 2)) for k, v in out.items()}
    tot = sum(e.values())
    return {k: v / tot for k, v in e.items()}


def _harmonic_tone(f0, seconds, gains=(1.0, 0.5, 0.3, 0.2)):
    t = np.arange(int(seconds * SR)) / SR
    vib = 0.002 * np.sin(2 * np.pi * 5 * t)
    return sum(g * np.sin(2 * np.pi * f0 * (i + 1) * (t + vib)) for i, g in enumerate(gains)) * 0.2


def test_sounds_land_in_the_expected_stems(sep):
    seconds = 4.0
    n = int(seconds * SR)
    t = np.arange(n) / SR
    bass = np.tile(0.4 * np.sin(2 * np.pi * 55 * t), (2, 1))
    clicks = np.zeros(n)
    clicks[::SR // 4] = 1.0
    clicks = np.convolve(clicks, np.random.default_rng(0).standard_normal(300) * np.exp(-np.arange(300) / 40))[:n]
    drums = np.tile(0.5 * clicks, (2, 1))
    tone = _harmonic_tone(330, seconds)
    centre = np.stack([tone, tone])
    left_only = np.stack([tone, np.zeros_like(tone)])

    assert _shares(sep, bass.astype(np.float32))["bass"] > 0.8
    assert _shares(sep, drums.astype(np.float32))["drums"] > 0.6
    s_centre = _shares(sep, centre.astype(np.float32))
    assert s_centre["vocals"] > 0.6
    s_left = _shares(sep, left_only.astype(np.float32))
    assert s_left["vocals"] < 0.1 and s_left["other"] > 0.6


def test_short_and_silent_streams(sep):
    for n in (1, 100, 3000):
        x = np.random.default_rng(n).standard_normal((2, n)).astype(np.float32) * 0.1
        out = _stream(sep, x, [n])
        assert all(v.shape == (2, n) for v in out.values())
        np.testing.assert_allclose(sum(out.values()), x, atol=1e-5)
    out = _stream(sep, np.zeros((2, 50000), np.float32), [10000])
    assert all(np.all(v == 0) for v in out.values())
    assert _stream(sep, np.zeros((2, 0), np.float32), [1])["vocals"].shape == (2, 0)


def test_bad_input_and_settings(sep):
    st = StreamingSeparation(sep)
    bad = np.zeros((2, 100), np.float32)
    bad[0, 5] = np.nan
    with pytest.raises(NonFiniteAudioError):
        st.process(bad)
    with pytest.raises(SettingsError):
        DspSeparator(overlap=1.0)
    with pytest.raises(SettingsError):
        DspSeparator(segment=0)
    assert sep.description["separator"] == "dsp"


def test_fast_median_equals_scipy():
    """The sorting-network sliding median (along axis 0, every column at once) is scipy's."""
    rng = np.random.default_rng(0)
    for shape, k in [((300, 7), 17), ((5, 3), 17), ((40, 4), 9), ((1, 2), 3), ((2049, 12), 17), ((30, 5), 29)]:
        x = (rng.random(shape) ** 3).astype(np.float32)
        x[::7, :] = x[0:1, :]  # ties
        x[rng.random(shape) < 0.1] = 0.0
        np.testing.assert_array_equal(median_filter_cols(x, k),
                                      ndi.median_filter(x, size=(k, 1), mode="reflect"))


@pytest.mark.parametrize("width", [1, 3, 5, 9, 17, 29, 33])
def test_median_network_puts_the_median_on_its_wire(width):
    """Every permutation-like input (random, with ties) ends with the median on ``target``."""
    from engine.dsp.median_network import apply_network

    a, b, target = median_network(width)
    rng = np.random.default_rng(width)
    wires = rng.integers(0, 6, (width, 500)).astype(np.float64)  # columns: 500 windows with ties
    want = np.median(wires, axis=0)
    apply_network(wires, a, b)
    np.testing.assert_array_equal(wires[target], want)
    with pytest.raises(ValueError):
        median_network(width + 1)


def test_dsp_separator_pickles(sep):
    import pickle

    x = music_mix(2.5, seed=4)
    (w,) = WindowPlanner(sep.segment_samples, sep.overlap, sep.context_samples).push(x)
    sep.separate(w)
    clone = pickle.loads(pickle.dumps(sep))
    np.testing.assert_array_equal(clone.separate(w), sep.separate(w))


def test_process_with_the_dsp_separator_imports_no_torch(tmp_path):
    """Start-up: the weight-free path loads neither torch nor demucs (seconds of imports)."""
    import subprocess
    import sys
    import textwrap

    import soundfile as sf

    sr = 44100
    x = 0.1 * np.random.default_rng(1).standard_normal((2 * sr, 2)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, sr)
    code = textwrap.dedent(f"""
        import sys
        from resonate_stream.cli import main
        rc = main(["process", {str(tmp_path / 'in.wav')!r}, "-o", {str(tmp_path / 'out.wav')!r}, "-q",
                   "--separator", "dsp", "--no-cache"])
        print("RESULT", rc, "torch" in sys.modules, "demucs" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    assert line == ["RESULT 0 False False"], out.stdout + out.stderr
    assert (tmp_path / "out.wav").stat().st_size > 0


def _numpy_istft(X, n_fft, hop, window, length):
    """The overlap-add the separator used before its numba kernels (numpy partial sums)."""
    import scipy.fft

    K, _, T = X.shape
    r = n_fft // hop
    frames = scipy.fft.irfft(X.transpose(0, 2, 1), n=n_fft, axis=-1).astype(np.float32, copy=False) * window
    chunks = frames.reshape(K, T, r, hop)
    out = np.zeros((K, T + r - 1, hop), np.float32)
    wsq = (window * window).reshape(r, hop)
    wsum = np.zeros((T + r - 1, hop), np.float32)
    for j in range(r):
        out[:, j:j + T] += chunks[:, :, j]
        wsum[j:j + T] += wsq[j]
    p = n_fft // 2
    y = out.reshape(K, -1)[:, p:p + length]
    w = wsum.reshape(-1)[p:p + length]
    y = y / np.where(w > 1e-11, w, 1.0)
    if y.shape[1] < length:
        y = np.pad(y, ((0, 0), (0, length - y.shape[1])))
    return y.astype(np.float32, copy=False)


@pytest.mark.parametrize("length", [1, 700, 2049, 4096, 30001])
def test_istft_overlap_add_kernel_matches_the_numpy_partial_sums_bit_for_bit(length):
    from engine.separation.dsp_separator import _istft, _stft

    rng = np.random.default_rng(length)
    n_fft, hop = 1024, 256
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    x = rng.standard_normal((2, max(length, n_fft // 2 + 1))).astype(np.float32)
    X = _stft(x, n_fft, hop, window)
    X = np.concatenate([X, X * rng.uniform(0, 1, X.shape[1:]).astype(np.float32)])  # masked copies too
    for want in (length, length + 3 * hop):  # also asked for more than the frames cover: zeros
        got = _istft(X, n_fft, hop, window, want)
        ref = _numpy_istft(X, n_fft, hop, window, want)
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_allclose(_istft(X[:2], n_fft, hop, window, x.shape[1]), x, atol=2e-5)  # round trip
