"""Sub-bass synthesis: an octave below the bass stem's fundamental (module 04).

Phone microphones lose almost everything below ~100 Hz.  :class:`SubBassSynth`
rebuilds a sub-octave the classic analogue way (an "octaver"):

1. band-pass the channel mean 40-160 Hz (4th-order Butterworth): the bass
   fundamental;
2. a flip-flop divider: a Schmitt trigger (thresholds +/- ``hysteresis`` x the
   running peak envelope) toggles a +/-1 square wave on every positive-going
   crossing, i.e. once per fundamental period, so the square runs at f0 / 2;
3. multiply the band-passed fundamental by that square: a signal with a
   strong component at f0 / 2 whose amplitude follows the bass note;
4. band-limit to ``[low_hz, high_hz]`` (20-80 Hz, 4th-order low-pass and
   2nd-order high-pass) and add ``amount`` times it, identically to every
   channel (sub-bass is mono).

Zero latency, all IIR/sample-recursive state carried across blocks, so the
stage is bit-exactly chunk-size invariant; ``amount = 0`` is transparent.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..audio import CHANNELS, SAMPLE_RATE
from ..dsp.filters import butter_sos, sosfilt
from ..errors import SettingsError
from ..stage import Stage


@njit(cache=True, nogil=True)
def _flip_flop(x, state, decay, hysteresis, gate):  # pragma: no cover - compiled
    """Octave divider.  ``x`` (n,) float64 band-passed fundamental;
    ``state`` = [sign, armed, envelope] (updated in place).  Returns x * square."""
    sign = state[0]
    armed = state[1]
    env = state[2]
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        v = x[i]
        a = abs(v)
        env = a if a > env else env * decay
        thr = hysteresis * env
        if env > gate:
            if v < -thr:
                armed = 1.0
            elif armed > 0.5 and v > thr:
                sign = -sign
                armed = 0.0
        out[i] = v * sign
    state[0] = sign
    state[1] = armed
    state[2] = env
    return out


class SubBassSynth(Stage):
    """Octave-down sub-bass generator for the bass stem.

    Parameters
    ----------
    amount: 0..2, linear gain of the synthesised sub-octave (1 gives a
        sub-octave of about the fundamental's amplitude).
    low_hz, high_hz: pass band of the generated signal (Hz).
    sample_rate: Hz.  channels: block channel count.
    hysteresis: Schmitt threshold as a fraction of the peak envelope.

    Blocks are ``(channels, n)`` float32; latency 0.
    """

    name = "sub_bass_synth"
    #: gain that makes the generated f0/2 component about as loud as f0 at amount 1
    _makeup = 1.6

    def __init__(self, amount: float = 0.5, low_hz: float = 20.0, high_hz: float = 80.0,
                 sample_rate: int = SAMPLE_RATE, channels: int = CHANNELS, hysteresis: float = 0.2,
                 track_band_hz: tuple[float, float] = (40.0, 160.0)):
        if not (0.0 <= amount <= 2.0):
            raise SettingsError(f"amount must be in [0, 2], got {amount}")
        if not (5.0 <= low_hz < high_hz <= 250.0):
            raise SettingsError(f"need 5 <= low_hz < high_hz <= 250 Hz, got {low_hz}, {high_hz}")
        self.amount = float(amount)
        self.low_hz = float(low_hz)
        self.high_hz = float(high_hz)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.hysteresis = float(hysteresis)
        self._sos_track = butter_sos(2, list(track_band_hz), "bandpass", self.sample_rate)
        lp = butter_sos(4, self.high_hz, "lowpass", self.sample_rate)
        hp = butter_sos(2, self.low_hz, "highpass", self.sample_rate)
        self._sos_out = np.concatenate([lp, hp], axis=0)
        self._decay = float(np.exp(-1.0 / (0.05 * self.sample_rate)))  # 50 ms envelope release
        self._gate = 1e-5  # no toggling below -100 dBFS
        self.reset()

    def reset(self) -> None:
        self._zi_track = np.zeros((self._sos_track.shape[0], 2))
        self._zi_out = np.zeros((self._sos_out.shape[0], 2))
        self._ff_state = np.array([1.0, 0.0, 0.0])

    def sub_signal(self, block: np.ndarray) -> np.ndarray:
        """The generated sub-octave (before ``amount``) for ``block``, ``(n,)`` float64; advances state."""
        mono = np.asarray(block, dtype=np.float64).mean(axis=0)
        fund, self._zi_track = sosfilt(self._sos_track, mono, zi=self._zi_track)
        divided = _flip_flop(fund, self._ff_state, self._decay, self.hysteresis, self._gate)
        sub, self._zi_out = sosfilt(self._sos_out, divided, zi=self._zi_out)
        return sub * self._makeup

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float32)
        if self.amount == 0.0:
            return x.copy()
        sub = self.sub_signal(x)
        return (x + (self.amount * sub)[None, :]).astype(np.float32)
