"""A weight-free separator so Resonate works on a fresh machine.

Per window (the chunk plus ``context`` samples on each side, trimmed after):

1. STFT of both channels (Hann, ``n_fft`` 4096, hop 1024 at 44.1 kHz).
2. Harmonic/percussive separation by median filtering (Fitzgerald 2010) of
   the mid power spectrogram: a median across time keeps sustained partials
   (harmonic), a median across frequency keeps broadband clicks
   (percussive); soft Wiener-like masks ``P^2 / (H^2 + P^2)``.
3. ``drums`` = percussive part.
4. ``bass`` = harmonic part below ~170 Hz (smooth 8th-order crossover).
5. ``vocals`` = harmonic part above the bass band, inside a smooth
   150 Hz - 8 kHz band, weighted by a centre-channel similarity mask
   ``max(0, 2 Re(L R*)) / (|L|^2 + |R|^2)`` (1 for sound panned dead centre and
   in phase, 0 for one-sided or anti-phase content), sharpened and lightly
   smoothed over time.
6. ``other`` = the mix minus the three stems above, in the time domain, so
   the stems always sum back to the mix (mixture consistency).

Rough by design (a mono phone recording puts every centred harmonic sound in
``vocals``); its job is to keep the product working when Demucs weights are
missing, and the report says which separator ran.
"""
from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.ndimage as ndi
from numba import njit


from ..audio import CHANNELS, SAMPLE_RATE
from ..errors import SettingsError
from ..dsp.median_network import median_filter_cols
from .base import Separator
from .windows import SeparationWindow

DSP_SOURCES: tuple[str, ...] = ("vocals", "drums", "bass", "other")


class DspSeparator(Separator):
    """Median-filter HPSS + bass band + centre-channel vocals (no weights).

    Args:
        segment: window length in seconds (default 6 s).
        overlap: window overlap fraction (default 0.25).
        n_fft: STFT size in samples; ``hop = n_fft // 4``.
        kernel_frames: harmonic median length across time (STFT frames, odd).
        kernel_bins: percussive median length across frequency (bins, odd).
        bass_cutoff_hz: bass/harmonic crossover frequency in Hz.
        vocal_band_hz: ``(low, high)`` vocal band edges in Hz.
        centre_power: exponent sharpening the centre-similarity mask.
        samplerate: Hz (the engine's 44.1 kHz).

    ``separate(window)`` returns float32 ``(4, 2, window.length)`` in the order
    :data:`DSP_SOURCES` (``vocals, drums, bass, other``).
    """

    def __init__(self, segment: float = 6.0, overlap: float = 0.25, n_fft: int = 4096,
                 kernel_frames: int = 17, kernel_bins: int = 17, bass_cutoff_hz: float = 170.0,
                 vocal_band_hz: tuple[float, float] = (150.0, 8000.0), centre_power: float = 2.0,
                 samplerate: int = SAMPLE_RATE):
        if segment <= 0:
            raise SettingsError(f"segment must be > 0 seconds, got {segment}")
        if n_fft < 64 or n_fft & (n_fft - 1):
            raise SettingsError(f"n_fft must be a power of two >= 64, got {n_fft}")
        self.samplerate = int(samplerate)
        self.sources = DSP_SOURCES
        self.segment = float(segment)
        self.segment_samples = int(round(self.segment * self.samplerate))
        self.overlap = float(overlap)
        self.transition_power = 1.0
        self.n_fft = int(n_fft)
        self.hop = self.n_fft // 4
        self.kernel_frames = int(kernel_frames) | 1
        self.kernel_bins = int(kernel_bins) | 1
        # enough audio on each side for the STFT frames and the time median
        self.context_samples = (self.kernel_frames // 2 + 2) * self.hop + self.n_fft // 2
        f = np.fft.rfftfreq(self.n_fft, 1.0 / self.samplerate).astype(np.float32)
        with np.errstate(divide="ignore"):
            self._bass_w = (1.0 / (1.0 + (f / float(bass_cutoff_hz)) ** 8)).astype(np.float32)
            lo, hi = float(vocal_band_hz[0]), float(vocal_band_hz[1])
            hp = np.where(f > 0, 1.0 / (1.0 + (lo / np.maximum(f, 1e-3)) ** 4), 0.0)
            lp = 1.0 / (1.0 + (f / hi) ** 4)
        self._vocal_band = ((1.0 - self._bass_w) * hp * lp).astype(np.float32)[:, None]
        self._bass_w = self._bass_w[:, None]
        self.centre_power = float(centre_power)
        self._window = None
        self.description = {
            "separator": "dsp",
            "method": "median-filter HPSS + bass band + centre-channel vocals",
            "sources": list(self.sources),
            "segment_s": self.segment,
            "overlap": self.overlap,
            "n_fft": self.n_fft,
            "device": "cpu",
        }
        self.geometry  # noqa: B018  (validates segment/overlap)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_window"] = None  # window cache, rebuilt on demand
        return state

    def separate(self, window: SeparationWindow) -> np.ndarray:
        """Stems of ``window``: float32 ``(4, 2, window.length)``."""
        C = self.context_samples
        x = window.context_span(C, C)
        stems = self.separate_array(x)
        return np.ascontiguousarray(stems[:, :, C:C + window.length])

    def separate_array(self, x: np.ndarray) -> np.ndarray:
        """Separate a whole ``(2, n)`` array at once: float32 ``(4, 2, n)``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[1]
        if n == 0:
            return np.zeros((len(self.sources), CHANNELS, 0), np.float32)
        if self._window is None:  # periodic Hann
            self._window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(self.n_fft) / self.n_fft)).astype(np.float32)
        pad = 0
        if n <= self.n_fft // 2:  # reflect padding needs n > n_fft / 2
            pad = self.n_fft // 2 + 1 - n
            x = np.pad(x, ((0, 0), (0, pad)))
        X = _stft(x, self.n_fft, self.hop, self._window)  # (2, F, T) complex64
        XL, XR = X[0], X[1]
        pl = XL.real ** 2 + XL.imag ** 2
        pr = XR.real ** 2 + XR.imag ** 2
        power = 0.5 * (pl + pr)
        if not np.all(np.isfinite(power)):  # absurdly loud input overflowing float32
            power = np.nan_to_num(power, nan=0.0, posinf=np.finfo(np.float32).max)
        # harmonic: median across time; percussive: median across frequency
        harm = median_filter_cols(np.ascontiguousarray(power.T), self.kernel_frames).T
        perc = median_filter_cols(power, self.kernel_bins)
        h2, p2 = harm * harm, perc * perc
        eps = np.float32(1e-20)
        m_perc = p2 / (h2 + p2 + eps)
        m_harm = 1.0 - m_perc
        cross = XL.real * XR.real + XL.imag * XR.imag  # Re(L R*)
        centre = np.maximum(2.0 * cross, 0.0) / (pl + pr + eps)
        centre = ndi.uniform_filter1d(centre, size=3, axis=1, mode="nearest")
        if self.centre_power != 1.0:
            centre = centre ** np.float32(self.centre_power)
        m_bass = m_harm * self._bass_w
        m_voc = m_harm * self._vocal_band * centre
        masks = np.stack([m_voc, m_perc, m_bass]).astype(np.float32)  # (3, F, T)
        Y = masks[:, None] * X[None]  # (3, 2, F, T)
        y = _istft(Y.reshape(6, *X.shape[1:]), self.n_fft, self.hop, self._window,
                   x.shape[1]).reshape(3, CHANNELS, x.shape[1])
        if pad:
            y, x = y[..., :n], x[:, :n]
        other = x - y.sum(axis=0)
        return np.concatenate([y, other[None]], axis=0).astype(np.float32, copy=False)


def _stft(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    """Centred STFT of ``(C, n)`` (reflect padding of ``n_fft // 2``, as ``torch.stft(center=True)``):
    complex64 ``(C, n_fft // 2 + 1, 1 + n // hop)``."""
    p = n_fft // 2
    xp = np.pad(x, ((0, 0), (p, p)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft, axis=1)[:, ::hop]  # (C, T, n_fft)
    spec = scipy.fft.rfft(frames * window, axis=-1)  # float32 frames -> complex64 (numpy's would go via float64)
    return np.ascontiguousarray(spec.transpose(0, 2, 1)).astype(np.complex64, copy=False)


def _istft(X: np.ndarray, n_fft: int, hop: int, window: np.ndarray, length: int) -> np.ndarray:
    """Inverse of :func:`_stft` (windowed overlap-add over the squared-window sum, as
    ``torch.istft(center=True, length=length)``): float32 ``(K, length)`` from ``(K, F, T)``."""
    frames = scipy.fft.irfft(X.transpose(0, 2, 1), n=n_fft, axis=-1)  # (K, T, n_fft)
    return _overlap_add(np.ascontiguousarray(frames, dtype=np.float32), np.asarray(window, dtype=np.float32), int(hop),
                        n_fft // 2, int(length))


@njit(cache=True, nogil=True)
def _overlap_add(frames, window, hop, start, length):  # pragma: no cover - compiled
    """Windowed overlap-add of ``frames`` ``(K, T, n)`` at ``hop``, divided by the summed squared
    window (where over 1e-11), samples ``[start, start + length)``; zeros past the last frame.
    Float32 throughout, each sum taken in the order ``frame t, t - 1, ...`` (the latest frame is
    added first, into zeros), so the result is the same to the bit as the per-sample loop it
    replaced; frame by frame, so the additions vectorise."""
    K, T, n = frames.shape
    r = n // hop
    out = np.zeros((K, length), dtype=np.float32)
    total = (T + r - 1) * hop
    qmax = min(length, max(total - start, 0))
    den = np.empty(qmax, dtype=np.float32)
    for q in range(qmax):
        g = start + q
        m = g // hop
        i = g - m * hop
        w = np.float32(0.0)
        for j in range(r):
            t = m - j
            if t < 0 or t >= T:
                continue
            wc = window[j * hop + i]
            w += wc * wc
        den[q] = w if w > 1e-11 else np.float32(1.0)
    for k in range(K):
        o = out[k]
        for t in range(T - 1, -1, -1):
            base = t * hop - start
            fr = frames[k, t]
            for c in range(max(0, -base), min(n, qmax - base)):
                o[base + c] += fr[c] * window[c]
        for q in range(qmax):
            o[q] = o[q] / den[q]
    return out
