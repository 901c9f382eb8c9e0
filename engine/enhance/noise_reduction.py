"""Streaming spectral noise reduction (non-stationary spectral gating).

The idea follows noisereduce's non-stationary mode (Sainburg et al.): compare
each time-frequency bin with a running noise estimate of its own frequency and
attenuate the bins that do not rise clearly above it, with a soft mask
smoothed over time and frequency.  noisereduce itself works on whole arrays
(a centred STFT of the full signal and a non-causal mask smoothing filter), so
it cannot run on a stream block by block; this stage re-implements the method
causally on :class:`engine.dsp.stft.StreamingSTFTStage`:

1. Power per bin, averaged over channels (one mask for all channels keeps the
   stereo image), smoothed over frames (``smoothing_ms``).
2. Noise estimate per bin = the lower of

   * a continuous minimum tracker over time that falls instantly and rises at
     most ``floor_rise_db_per_s`` (follows a changing noise floor, ignores
     notes and hits), scaled by a bias correction; and
   * the median of the smoothed power across neighbouring frequencies
     (``spectral_floor_hz`` wide), scaled likewise: a tonal peak sits far above
     its neighbourhood's median, so sustained notes are never mistaken for
     noise however long they last.

3. Gain per bin, from the power averaged across ``freq_smoothing_hz`` (an
   isolated noise bin is diluted by its neighbours, the bins around a strong
   partial all stay open): ``-reduction_db`` when less than ``threshold_db``
   above the noise estimate, 0 dB when more than ``threshold_db +
   threshold_width_db`` above, smooth in between; then smoothed over time
   (instant opening, closing with ``release_ms``) against musical noise.

``reduction_db = strength * max_reduction_db``: at ``strength = 0`` every gain
is exactly 1 and the stage only delays the signal (reconstruction error at
float32 rounding, below -120 dBFS).  Latency: ``frame_length - 1`` samples (2047 at the defaults,
46 ms at 44.1 kHz).

Limits: the trackers need about half a second after the start (or after
digital silence) to settle; a noise floor that rises faster than
``floor_rise_db_per_s`` is followed with that delay; a dense, broadband
sound held unchanged for many seconds (no tonal peaks, no pauses) is slowly
taken for noise, at most ``reduction_db`` deep.
"""
from __future__ import annotations

import numpy as np

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.envelope import time_constant_coeff
from ..dsp.noise_floor import recursive_smooth, running_median, spectral_gate_gains, track_minimum
from ..dsp.stft import StreamingSTFTStage
from ..errors import SettingsError

#: bias corrections (dB) from the trackers' statistics to the mean noise power,
#: measured on white and pink noise with the default frame/smoothing settings
#: (the tracker sits ~2.9 dB, the median ~0.3 dB below the mean power)
MINIMUM_TRACKER_BIAS_DB = 3.0
SPECTRAL_MEDIAN_BIAS_DB = 0.3


class SpectralNoiseReducer(StreamingSTFTStage):
    """Streaming non-stationary spectral gate on ``(channels, samples)`` blocks.

    Parameters (units):
        strength: 0..1, fraction of ``max_reduction_db`` applied (0 = transparent).
        max_reduction_db: largest attenuation of a noise bin, dB (> 0).
        threshold_db: SNR (dB over the noise estimate) below which a bin gets
            the full reduction.
        threshold_width_db: the gain reaches 0 dB at ``threshold_db + threshold_width_db``.
        smoothing_ms: time constant of the power smoothing, ms.
        floor_rise_db_per_s: fastest rise of the minimum tracker, dB/s.
        spectral_floor_hz: width of the across-frequency median, Hz.
        freq_smoothing_hz: width of the triangular averaging of the power across
            bins before the SNR decision, Hz.
        release_ms: time constant with which a bin's gain closes, ms.
        silence_dbfs: frames whose RMS is below this (dBFS) do not move the
            noise trackers (digital silence would pin them at zero).
        frame_length, hop: STFT geometry in samples (latency = frame_length - 1).
    """

    name = "noise_reduction"

    def __init__(self, strength: float = 1.0, max_reduction_db: float = 12.0, threshold_db: float = 4.0,
                 threshold_width_db: float = 8.0, smoothing_ms: float = 30.0, floor_rise_db_per_s: float = 4.0,
                 spectral_floor_hz: float = 600.0, freq_smoothing_hz: float = 130.0, release_ms: float = 80.0,
                 silence_dbfs: float = -100.0, frame_length: int = 2048, hop: int = 512,
                 channels: int = CHANNELS, sample_rate: int = SAMPLE_RATE):
        if not 0.0 <= float(strength) <= 1.0:
            raise SettingsError(f"noise reduction strength must be in [0, 1], not {strength!r}")
        if not float(max_reduction_db) > 0.0:
            raise SettingsError(f"max_reduction_db must be positive, not {max_reduction_db!r}")
        if not float(threshold_width_db) > 0.0:
            raise SettingsError("threshold_width_db must be positive")
        self.strength = float(strength)
        self.max_reduction_db = float(max_reduction_db)
        self.reduction_db = self.strength * self.max_reduction_db
        self.threshold_db = float(threshold_db)
        self.threshold_width_db = float(threshold_width_db)
        self.smoothing_ms = float(smoothing_ms)
        self.floor_rise_db_per_s = float(floor_rise_db_per_s)
        self.spectral_floor_hz = float(spectral_floor_hz)
        self.freq_smoothing_hz = float(freq_smoothing_hz)
        self.release_ms = float(release_ms)
        self.silence_dbfs = float(silence_dbfs)
        super().__init__(frame_length=frame_length, hop=hop, channels=channels, sample_rate=sample_rate)
        hop_s = self.hop
        self._alpha = time_constant_coeff(self.smoothing_ms, self.sample_rate, hop_s)
        self._release = time_constant_coeff(self.release_ms, self.sample_rate, hop_s)
        self._rise = 10.0 ** (self.floor_rise_db_per_s * self.hop / self.sample_rate / 10.0)
        self._median_bins = 2 * max(1, int(round(0.5 * self.spectral_floor_hz / self.bin_hz))) + 1
        half = max(1, int(round(0.5 * self.freq_smoothing_hz / self.bin_hz)))
        self._freq_kernel = np.concatenate([np.arange(1, half + 2), np.arange(half, 0, -1)]).astype(np.float64)
        # power normalisation: mean over bins of |X|^2 / sum(w^2) ~ mean square of the frame
        self._power_scale = 1.0 / float(np.sum(self.analysis_window ** 2))
        self._silence_power = 10.0 ** (self.silence_dbfs / 10.0)
        self._tracker_bias = 10.0 ** (MINIMUM_TRACKER_BIAS_DB / 10.0)
        self._median_bias = 10.0 ** (SPECTRAL_MEDIAN_BIAS_DB / 10.0)
        self.reset_spectral_state()

    def reset_spectral_state(self) -> None:
        k = self.bins
        self._smoothed = np.zeros(k, dtype=np.float64)
        self._smoothed_ready = np.zeros(1, dtype=np.float64)
        self._floor = np.full(k, np.inf, dtype=np.float64)
        self._gain_db = np.zeros(k, dtype=np.float64)

    def noise_estimate(self, smoothed: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """Noise power per bin ``(frames, bins)`` from the trackers (see module doc)."""
        median = running_median(smoothed, self._median_bins)
        return np.minimum(floor * self._tracker_bias, median * self._median_bias)

    def process_frames(self, spectra: np.ndarray, frame_ends: np.ndarray) -> np.ndarray:
        power = (spectra.real ** 2 + spectra.imag ** 2).mean(axis=1) * self._power_scale  # (F, K)
        active = power.mean(axis=1) > self._silence_power
        smoothed = recursive_smooth(power, self._alpha, active, self._smoothed, self._smoothed_ready)
        # frames that still contain the zeros before the stream start do not move the floor
        update = active & (frame_ends >= self.frame_length)
        floor = track_minimum(smoothed, self._rise, update, self._floor)
        noise = self.noise_estimate(smoothed, floor)
        gains = spectral_gate_gains(smoothed, noise, self.reduction_db, self.threshold_db,
                                    self.threshold_db + self.threshold_width_db, self._freq_kernel,
                                    self._release, self._gain_db)
        if self.reduction_db == 0.0:
            return spectra
        return spectra * gains[:, None, :]
