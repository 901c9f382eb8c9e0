"""Reference-based quality metrics for the restoration evaluation (pure numpy/scipy).

Every function takes float arrays ``(channels, samples)`` (or mono
``(samples,)``) at ``sr`` Hz: ``ref`` the clean original, ``est`` the signal
scored against it (the degraded input or the restored output).

* :func:`align` lines ``est`` up with ``ref`` (cross-correlation of the
  channel means, integer lag refined to a fraction of a sample by parabolic
  interpolation, applied as an FFT phase shift) and trims both to a common
  length.  It absorbs the AAC encoder delay and the pipeline's sub-millisecond
  shifts.
* :func:`ls_gain` is the least-squares gain ``<ref, est> / <est, est>``.
* :func:`third_octave_levels` / :func:`tonal_balance_error`: long-term
  1/3-octave spectra (dB) over ``TONAL_BAND_HZ`` (the 50 Hz - 16 kHz bands, base-2
  centres); the error is ``min_c mean_k |d_k - c|`` with ``d = L_est - L_ref``,
  i.e. the mean absolute band difference after the overall level offset that
  best matches the two (the median of ``d``, robust to a few dead bands).
* :func:`high_band_energy_db`: energy from 8 to 16 kHz of ``est`` relative to
  ``ref`` (dB) after the same level normalisation (``- median(d)``), so it says
  how much high band there is compared with the body of the music.
* The spectral scores stop at :data:`SCORE_MAX_HZ` (16 kHz): the clean
  references are lossy files (Vorbis) whose own content ends at 16-19 kHz.
* :func:`log_spectral_distance` (dB), :func:`mr_stft_distance`
  (spectral convergence + mean absolute log magnitude, averaged over several
  FFT sizes) and :func:`si_sdr` (dB): computed after gain matching by
  :func:`score` (which also normalises ``ref`` to a fixed RMS so the small
  floors of the log terms mean the same thing for every clip).
"""
from __future__ import annotations

import numpy as np
from scipy import signal

#: 1/3-octave band centres scored by the tonal-balance error (Hz)
TONAL_BAND_HZ: tuple[float, float] = (45.0, 17000.0)
#: Welch analysis of the long-term spectra
LTAS_NFFT = 8192
#: (n_fft, hop) of the multi-resolution STFT distance
MR_STFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512), (4096, 1024))
#: highest frequency the spectral scores look at (Hz): the clean references are
#: lossy files whose own content stops at 16-19 kHz, so content a restoration
#: generates above that would be scored as an error against them
SCORE_MAX_HZ = 16000.0
#: RMS that :func:`score` normalises the reference to (linear)
SCORE_RMS = 0.1


def _mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x if x.ndim == 1 else x.mean(axis=0)


def _2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[None, :] if x.ndim == 1 else x


# --------------------------------------------------------------------------
# alignment and gain
# --------------------------------------------------------------------------

def estimate_lag(ref: np.ndarray, est: np.ndarray, max_lag: int) -> float:
    """Delay of ``est`` relative to ``ref`` in samples (fractional; positive = ``est`` late).

    Peak of the cross-correlation of the channel means within ``+-max_lag``,
    refined by a parabola through the peak and its two neighbours.
    """
    r, e = _mono(ref), _mono(est)
    n = len(r) + len(e) - 1
    nfft = 1 << int(np.ceil(np.log2(n)))
    xc = np.fft.irfft(np.fft.rfft(e, nfft) * np.conj(np.fft.rfft(r, nfft)), nfft)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = xc[lags % nfft]
    i = int(np.argmax(vals))
    k = int(lags[i])
    y0, y1, y2 = xc[(k - 1) % nfft], xc[k % nfft], xc[(k + 1) % nfft]
    den = y0 - 2.0 * y1 + y2
    frac = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    return float(k + np.clip(frac, -0.5, 0.5))


def fractional_shift(x: np.ndarray, delay: float) -> np.ndarray:
    """``x`` ``(channels, n)`` delayed by ``delay`` samples (may be fractional or
    negative) with an FFT phase shift (circular; pad first when the wrap matters)."""
    x = _2d(x)
    n = x.shape[1]
    f = np.fft.rfftfreq(n)
    return np.fft.irfft(np.fft.rfft(x, axis=1) * np.exp(-2j * np.pi * f * delay)[None, :], n, axis=1)


def align(ref: np.ndarray, est: np.ndarray, max_lag: int = 22050) -> tuple[np.ndarray, np.ndarray, float]:
    """``(ref, est_aligned, lag)``: ``est`` moved by ``-lag`` samples onto ``ref``,
    both trimmed to a common length ``(channels, n)``; ``lag`` in samples."""
    ref, est = _2d(ref), _2d(est)
    lag = estimate_lag(ref, est, max_lag)
    pad = int(np.ceil(abs(lag))) + 1
    n = max(ref.shape[1], est.shape[1]) + 2 * pad
    buf = np.zeros((est.shape[0], n))
    buf[:, pad:pad + est.shape[1]] = est
    moved = fractional_shift(buf, -lag)[:, pad:]
    m = min(ref.shape[1], moved.shape[1], est.shape[1] - int(np.ceil(lag)))
    return ref[:, :m], moved[:, :m], lag


def ls_gain(ref: np.ndarray, est: np.ndarray) -> float:
    """Least-squares gain ``g`` minimising ``||ref - g * est||^2`` (linear)."""
    ref, est = _2d(ref), _2d(est)
    den = float(np.sum(est * est))
    return float(np.sum(ref * est)) / den if den > 0 else 0.0


# --------------------------------------------------------------------------
# long-term 1/3-octave spectra
# --------------------------------------------------------------------------

def third_octave_centres(lo: float = TONAL_BAND_HZ[0], hi: float = TONAL_BAND_HZ[1]) -> np.ndarray:
    """Base-2 1/3-octave centres ``1000 * 2**(k/3)`` within ``[lo, hi]`` Hz."""
    k = np.arange(np.ceil(3 * np.log2(lo / 1000.0) - 1e-9), np.floor(3 * np.log2(hi / 1000.0) + 1e-9) + 1)
    return 1000.0 * 2.0 ** (k / 3.0)


def ltas(x: np.ndarray, sr: int, n_fft: int = LTAS_NFFT) -> tuple[np.ndarray, np.ndarray]:
    """``(freqs, psd)``: long-term power spectrum (Welch, Hann, 50 % overlap),
    summed over channels."""
    x = _2d(x)
    f, p = signal.welch(x, fs=sr, window="hann", nperseg=min(n_fft, x.shape[1]), axis=-1,
                        scaling="spectrum", average="mean")
    return f, p.sum(axis=0)


def band_powers(freqs: np.ndarray, psd: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Power in each 1/3-octave band ``[fc / 2**(1/6), fc * 2**(1/6))``."""
    out = np.empty(len(centres))
    for i, fc in enumerate(centres):
        sel = (freqs >= fc * 2 ** (-1 / 6)) & (freqs < fc * 2 ** (1 / 6))
        out[i] = psd[sel].sum()
    return out


def third_octave_levels(x: np.ndarray, sr: int, max_hz: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(centres_hz, levels_db)`` of the long-term 1/3-octave spectrum of ``x``
    (bands centred up to ``max_hz``, default :data:`TONAL_BAND_HZ`'s top)."""
    top = TONAL_BAND_HZ[1] if max_hz is None else min(TONAL_BAND_HZ[1], max_hz)
    c = third_octave_centres(TONAL_BAND_HZ[0], min(top, 0.45 * sr))
    f, p = ltas(x, sr)
    return c, 10.0 * np.log10(band_powers(f, p, c) + 1e-20)


def tonal_difference_db(ref: np.ndarray, est: np.ndarray, sr: int,
                        max_hz: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """``(centres, d - offset, offset)``: per-band level difference ``est - ref``
    (dB) after removing the overall level ``offset = median(d)``."""
    c, lr = third_octave_levels(ref, sr, max_hz)
    _, le = third_octave_levels(est, sr, max_hz)
    d = le - lr
    off = float(np.median(d))
    return c, d - off, off


def tonal_balance_error(ref: np.ndarray, est: np.ndarray, sr: int, max_hz: float | None = None) -> float:
    """Mean absolute 1/3-octave long-term level difference (dB) after the best
    overall level offset (``min_c mean |d - c|`` = the median offset)."""
    return float(np.mean(np.abs(tonal_difference_db(ref, est, sr, max_hz)[1])))


def high_band_energy_db(ref: np.ndarray, est: np.ndarray, sr: int, cutoff_hz: float = 8000.0,
                        top_hz: float = SCORE_MAX_HZ) -> float:
    """Energy of ``est`` in ``[cutoff_hz, top_hz)`` relative to ``ref`` (dB), with the
    overall level of ``est`` normalised as in :func:`tonal_balance_error`."""
    _, _, off = tonal_difference_db(ref, est, sr)
    fr, pr = ltas(ref, sr)
    fe, pe = ltas(est, sr)
    er = pr[(fr >= cutoff_hz) & (fr < top_hz)].sum()
    ee = pe[(fe >= cutoff_hz) & (fe < top_hz)].sum()
    return float(10.0 * np.log10((ee + 1e-30) / (er + 1e-30)) - off)


# --------------------------------------------------------------------------
# frame-wise distances (after gain matching)
# --------------------------------------------------------------------------

def _stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``|STFT|`` ``(channels, F, T)`` (periodic Hann, no padding)."""
    x = _2d(x)
    _, _, z = signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary=None,
                          padded=False, axis=-1)
    return np.abs(z)


def log_spectral_distance(ref: np.ndarray, est: np.ndarray, sr: int, n_fft: int = 2048, hop: int = 512,
                          band_hz: tuple[float, float] = (50.0, SCORE_MAX_HZ), floor_db: float = -80.0) -> float:
    """Log-spectral distance (dB): per frame and channel
    ``sqrt(mean_f (10 log10 P_ref - 10 log10 P_est)^2)`` over ``band_hz``, averaged.

    Powers are floored at ``floor_db`` below the reference's largest bin so
    silent bins do not dominate.  Level-sensitive: gain-match first.
    """
    pr = _stft_mag(ref, n_fft, hop) ** 2
    pe = _stft_mag(est, n_fft, hop) ** 2
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    sel = (f >= band_hz[0]) & (f < band_hz[1])
    floor = pr.max() * 10 ** (floor_db / 10.0) + 1e-30
    d = 10.0 * np.log10(np.maximum(pr[:, sel], floor)) - 10.0 * np.log10(np.maximum(pe[:, sel], floor))
    return float(np.mean(np.sqrt(np.mean(d * d, axis=1))))


def mr_stft_distance(ref: np.ndarray, est: np.ndarray, resolutions=MR_STFT_RESOLUTIONS,
                     eps: float = 1e-5, sr: int = 44100, max_hz: float | None = SCORE_MAX_HZ) -> dict:
    """Multi-resolution STFT distance (as in Parallel WaveGAN's loss).

    Per ``(n_fft, hop)``: spectral convergence ``||S_ref - S_est||_F / ||S_ref||_F``
    and log magnitude ``mean |ln(S_ref + eps) - ln(S_est + eps)|`` over the bins
    up to ``max_hz`` (None: all); each is averaged over the resolutions.
    Returns ``{"sc", "log_mag", "total"}`` (``total = sc + log_mag``).
    Level-sensitive: gain-match first.
    """
    sc, lm = [], []
    for n_fft, hop in resolutions:
        k = None if max_hz is None else int(np.floor(max_hz * n_fft / sr)) + 1
        a = _stft_mag(ref, n_fft, hop)[:, :k]
        b = _stft_mag(est, n_fft, hop)[:, :k]
        sc.append(np.linalg.norm(a - b) / (np.linalg.norm(a) + 1e-20))
        lm.append(np.mean(np.abs(np.log(a + eps) - np.log(b + eps))))
    out = {"sc": float(np.mean(sc)), "log_mag": float(np.mean(lm))}
    out["total"] = out["sc"] + out["log_mag"]
    return out


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio (dB), channels concatenated, zero-mean."""
    r = _2d(ref).ravel()
    e = _2d(est).ravel()
    r = r - r.mean()
    e = e - e.mean()
    alpha = float(np.dot(e, r)) / (float(np.dot(r, r)) + 1e-20)
    target = alpha * r
    noise = e - target
    return float(10.0 * np.log10((np.dot(target, target) + 1e-20) / (np.dot(noise, noise) + 1e-20)))


# --------------------------------------------------------------------------
# all together
# --------------------------------------------------------------------------

def score(ref: np.ndarray, est: np.ndarray, sr: int, max_lag: int | None = None,
          max_hz: float = SCORE_MAX_HZ) -> dict:
    """Every metric of ``est`` against ``ref`` after alignment and gain matching.

    ``ref`` is scaled to RMS :data:`SCORE_RMS` and ``est`` (aligned) by its
    least-squares gain onto that.  Returns a dict of floats: ``lag_samples``,
    ``tonal_error_db``, ``lsd_db``, ``mr_stft`` (total), ``mr_stft_sc``,
    ``mr_stft_logmag``, ``si_sdr_db``, ``hf_energy_db``.

    ``max_hz``: highest frequency the spectral scores look at, for references
    whose own content ends lower than :data:`SCORE_MAX_HZ` (a 16 kHz file:
    7.2 kHz); ``hf_energy_db`` is ``None`` when it is under 8.8 kHz (no high
    band to compare).
    """
    ref = _2d(ref)
    est = _2d(est)
    if est.shape[0] != ref.shape[0]:
        est = np.repeat(est.mean(axis=0, keepdims=True), ref.shape[0], axis=0)
    r, e, lag = align(ref, est, int(max_lag if max_lag is not None else sr // 2))
    r = r * (SCORE_RMS / (np.sqrt(np.mean(r * r)) + 1e-20))
    e = e * ls_gain(r, e)
    mr = mr_stft_distance(r, e, sr=sr, max_hz=max_hz)
    return {
        "lag_samples": lag,
        "tonal_error_db": tonal_balance_error(r, e, sr, max_hz),
        "lsd_db": log_spectral_distance(r, e, sr, band_hz=(50.0, max_hz)),
        "mr_stft": mr["total"],
        "mr_stft_sc": mr["sc"],
        "mr_stft_logmag": mr["log_mag"],
        "si_sdr_db": si_sdr(r, e),
        "hf_energy_db": high_band_energy_db(r, e, sr, top_hz=max_hz) if max_hz >= 8800.0 else None,
    }
