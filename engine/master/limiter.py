"""Look-ahead true-peak limiter (a streaming :class:`~engine.stage.Stage`).

How the gain is made, per input sample (all in one numba kernel with explicit
state, so the output is bit-identical whatever the block sizes):

1. **Peak detection.**  The stereo block is oversampled 4x by the same
   polyphase FIR the true-peak meter uses (:func:`~.true_peak.polyphase_taps`);
   ``tp[m]`` is the largest absolute oversampled value, over both channels,
   between input samples ``m`` and ``m + 1`` (stereo-linked).  It is known
   ``Li = 10`` samples after ``x[m]`` arrived (the interpolator's delay).
2. **Required gain** ``r[m] = min(1, ceiling / tp[m])``.
3. **Hold.** ``t[m] = min(r[m - H + 1 .. m])`` with ``H = A + 2 L`` (a sliding
   minimum over a monotonic deque): the reduction needed by a peak starts
   early enough for the attack and covers the ``L = 10`` samples either side
   that the interpolator mixes into the peak.
4. **Release.** ``e[m]`` follows ``t`` down instantly and back up
   exponentially (time constant ``release_ms``).
5. **Attack.** ``s[m]`` = mean of ``e`` over the last ``A`` samples: a linear
   ramp of ``A`` samples that reaches the required gain exactly when the peak
   (and its interpolation neighbourhood) arrives.
6. ``out[n] = x[n - D] * s`` with ``D = Li + A - 1 + L`` (the stage's delay).

**Safety stage.**  A gain that varies within the interpolator's span can in
principle leave a sliver of overshoot between samples (the FIR has negative
taps), so the same kernel runs a second time on the main stage's output with
``A = H - 2 L = 2 L + 1`` and no release: wherever the output's true peak
still exceeds the ceiling, ``ceiling / peak`` is held over the ``2 L + 1``
samples around it and ramped in over ``2 L + 1`` samples (``D = 40``).
Finally samples are clipped at the ceiling (a sample peak never exceeds the
true peak, so this only catches rounding).

**Latency.** The two delays add up to :attr:`TruePeakLimiter.latency`, which
equals the look-ahead, ``round(lookahead_ms * fs / 1000)`` samples: 220 at
5 ms / 44.1 kHz, of which 40 are the safety stage's, leaving the main attack
ramp ``A = 161`` samples (3.7 ms).

**Margins.** The main stage aims ``margin_db`` (0.005 dB) under the ceiling,
the safety stage 0.001 dB under it, so float32 rounding cannot push the
measured true peak over the ceiling.  Measured: the main stage alone already
keeps the true peak within float rounding of its target on noise, squares,
clicks, bursts and high sines driven 12-20 dB over; the safety stage is
insurance.  Cost: about 0.4 s of CPU per 100 s of stereo audio: the peaks of a block are
computed in one pass before the gain recursion, and the FIR is skipped wherever the
input is too quiet for any phase to reach the ceiling (``ceiling / max_phase_l1``;
``peaks`` and the output are bit-identical to computing it everywhere).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..audio import CHANNELS, SAMPLE_RATE, db_to_gain, gain_to_db
from ..errors import SettingsError
from ..stage import Stage
from .true_peak import interpolation_delay, polyphase_taps


@njit(cache=True, nogil=True)
def _oversampled_peaks(ext, taps, quiet_level, peaks):  # pragma: no cover - numba
    """``peaks[i]``: the largest absolute oversampled value, over channels and phases, of the
    interpolator's output when input sample ``i`` arrived; ``ext`` (C, K - 1 + n) float64 is the
    last ``K - 1`` input samples then the block, ``taps`` (up, K) the polyphase filter (each
    phase summed ``k = 0..K-1`` as :func:`~.true_peak.push_oversampled_peak` does).

    Where every one of the ``K`` input samples a value mixes is at most ``quiet_level`` (so no
    phase can reach ``quiet_level * max_phase_l1``) the FIR is skipped and ``peaks[i] = 0``:
    the caller only needs the peaks above a ceiling it chose ``quiet_level`` under.
    """
    C = ext.shape[0]
    up, K = taps.shape
    n = peaks.shape[0]
    last_loud = -K - 1
    for j in range(K - 1):
        for c in range(C):
            if abs(ext[c, j]) > quiet_level:
                last_loud = j
    for i in range(n):
        base = i + K - 1
        for c in range(C):
            if abs(ext[c, base]) > quiet_level:
                last_loud = base
        peak = 0.0
        if last_loud >= i:
            for c in range(C):
                if up == 4:
                    a0 = 0.0
                    a1 = 0.0
                    a2 = 0.0
                    a3 = 0.0
                    for k in range(K):
                        v = ext[c, base - k]
                        a0 += taps[0, k] * v
                        a1 += taps[1, k] * v
                        a2 += taps[2, k] * v
                        a3 += taps[3, k] * v
                    peak = max(peak, abs(a0), abs(a1), abs(a2), abs(a3))
                else:
                    for ph in range(up):
                        acc = 0.0
                        for k in range(K):
                            acc += taps[ph, k] * ext[c, base - k]
                        peak = max(peak, abs(acc))
        peaks[i] = peak
    return 0


@njit(cache=True, nogil=True)
def _limit(x, out, peaks, ceiling, H, A, alpha,
           dq_idx, dq_val, dq_state, rel, box, box_state, delay, dpos, counter, gmin):  # pragma: no cover
    """One look-ahead gain stage over ``x`` (C, n) float32 into ``out``; ``peaks`` (n,) from
    :func:`_oversampled_peaks` (values at or under ``ceiling`` all mean "no reduction").

    State (all arrays, updated in place):
    ``dq_idx`` / ``dq_val`` (H + 1,) ring deque of (r index, r value),
    ``dq_state`` = [head, size]; ``rel`` (1,) release state ``e``;
    ``box`` (A,) ring of ``e``, ``box_state`` = [pos] plus the running sum in
    ``rel[1]``; ``delay`` (C, D) ring delay line, ``dpos`` (1,);
    ``counter`` (1,) absolute index of the next r value; ``gmin`` (1,) the
    smallest gain applied so far.
    """
    C = x.shape[0]
    n = x.shape[1]
    cap = dq_idx.shape[0]
    D = delay.shape[1]
    for i in range(n):
        # --- 1. oversampled peak of the newest interpolated points --------
        peak = peaks[i]
        # --- 2. required gain ---------------------------------------------
        r = 1.0
        if peak > ceiling:
            r = ceiling / peak
        m = counter[0]
        counter[0] = m + 1
        # --- 3. sliding minimum over H values (monotonic deque) -----------
        head = dq_state[0]
        size = dq_state[1]
        while size > 0:
            last = head + size - 1
            if last >= cap:
                last -= cap
            if dq_val[last] >= r:
                size -= 1
            else:
                break
        slot = head + size
        if slot >= cap:
            slot -= cap
        dq_idx[slot] = m
        dq_val[slot] = r
        size += 1
        while dq_idx[head] <= m - H:
            head += 1
            if head >= cap:
                head = 0
            size -= 1
        dq_state[0] = head
        dq_state[1] = size
        t = dq_val[head]
        # --- 4. instant attack, exponential release ------------------------
        e = rel[0]
        if t < e:
            e = t
        else:
            e = t - (t - e) * alpha
        rel[0] = e
        # --- 5. attack ramp: mean of e over the last A values --------------
        bp = box_state[0]
        rel[1] += e - box[bp]
        box[bp] = e
        bp += 1
        if bp >= A:
            bp = 0
            # re-sum exactly once per lap (absolute positions) so rounding
            # in the running sum can never drift
            s_exact = 0.0
            for k in range(A):
                s_exact += box[k]
            rel[1] = s_exact
        box_state[0] = bp
        g = rel[1] / A
        if g > 1.0:
            g = 1.0
        if g < gmin[0]:
            gmin[0] = g
        # --- 6. delayed sample times gain ----------------------------------
        dp = dpos[0]
        for c in range(C):
            out[c, i] = np.float32(delay[c, dp] * g)
            delay[c, dp] = x[c, i]
        dp += 1
        if dp >= D:
            dp = 0
        dpos[0] = dp
    return 0


class _GainStage:
    """State of one look-ahead gain stage (see :func:`_limit`)."""

    def __init__(self, channels: int, taps: np.ndarray, ceiling: float, hold: int, attack: int,
                 release_alpha: float, delay: int):
        self.channels, self.taps, self.ceiling = channels, taps, float(ceiling)
        # under this sample level no phase of the interpolator can exceed the ceiling (with a
        # margin far above the float64 round-off of a 21-tap sum)
        self.quiet_level = self.ceiling / (float(np.max(np.abs(taps).sum(axis=1))) * (1.0 + 1e-9))
        self.H, self.A, self.alpha, self.D = int(hold), int(attack), float(release_alpha), int(delay)
        self.reset()

    def reset(self) -> None:
        k = self.taps.shape[1]
        self.history = np.zeros((self.channels, k - 1), dtype=np.float64)  # last K - 1 input samples
        self.dq_idx = np.zeros(self.H + 1, dtype=np.int64)
        self.dq_val = np.ones(self.H + 1, dtype=np.float64)
        self.dq_state = np.zeros(2, dtype=np.int64)
        self.rel = np.array([1.0, float(self.A)], dtype=np.float64)
        self.box = np.ones(self.A, dtype=np.float64)
        self.box_state = np.zeros(1, dtype=np.int64)
        self.delay = np.zeros((self.channels, max(self.D, 1)), dtype=np.float32)
        self.dpos = np.zeros(1, dtype=np.int64)
        self.counter = np.zeros(1, dtype=np.int64)
        self.gmin = np.ones(1, dtype=np.float64)

    def run(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        ext = np.concatenate([self.history, x], axis=1)
        self.history = ext[:, ext.shape[1] - self.history.shape[1]:]
        peaks = np.empty(x.shape[1], dtype=np.float64)
        _oversampled_peaks(ext, self.taps, self.quiet_level, peaks)
        _limit(x, out, peaks, self.ceiling, self.H, self.A, self.alpha,
               self.dq_idx, self.dq_val, self.dq_state, self.rel, self.box, self.box_state,
               self.delay, self.dpos, self.counter, self.gmin)
        return out


class TruePeakLimiter(Stage):
    """Stereo-linked look-ahead limiter that keeps the true peak under a ceiling.

    Parameters
    ----------
    ceiling_dbtp : ceiling in dBTP (true peak, 4x oversampled, as
        :func:`~engine.master.true_peak.true_peak_dbtp` measures it).
    lookahead_ms : look-ahead in ms; equals :attr:`latency` (samples
        ``round(lookahead_ms * sample_rate / 1000)``, at least 2 ms).
    release_ms : exponential release time constant, ms.
    oversample : oversampling factor of the peak detector.
    margin_db : how far below the ceiling the gain computer aims, dB.
    sample_rate : Hz.  channels : channels of the ``(channels, n)`` blocks.

    ``process(block)`` returns float32 ``(channels, n)`` delayed by
    :attr:`latency`; ``flush()`` returns the last ``latency`` samples.
    :attr:`max_reduction_db` is the deepest gain reduction so far (dB, <= 0).
    """

    name = "true_peak_limiter"

    def __init__(self, ceiling_dbtp: float = -1.0, lookahead_ms: float = 5.0, release_ms: float = 80.0,
                 oversample: int = 4, margin_db: float = 0.005, sample_rate: int = SAMPLE_RATE,
                 channels: int = CHANNELS):
        if not (-60.0 <= ceiling_dbtp <= 0.0):
            raise SettingsError(f"limiter ceiling must lie between -60 and 0 dBTP, got {ceiling_dbtp}")
        if release_ms <= 0:
            raise SettingsError(f"limiter release must be positive, got {release_ms} ms")
        if oversample < 1 or oversample > 16:
            raise SettingsError(f"oversample must be 1..16, got {oversample}")
        self.ceiling_dbtp = float(ceiling_dbtp)
        self.lookahead_ms = float(lookahead_ms)
        self.release_ms = float(release_ms)
        self.oversample = int(oversample)
        self.margin_db = float(margin_db)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.ceiling = db_to_gain(self.ceiling_dbtp)

        taps = polyphase_taps(self.oversample)
        li = interpolation_delay(self.oversample)  # 10 samples
        span = li  # L: samples either side that the interpolator mixes
        # safety stage: hold 2L+1, ramp 2L+1 -> latency li + (2L+1) - 1 + L
        a2 = 2 * span + 1
        lat2 = li + a2 - 1 + span
        self.latency = int(round(self.lookahead_ms * self.sample_rate / 1000.0))
        a1 = self.latency - lat2 - li - span + 1
        if a1 < 8:
            min_ms = (lat2 + li + span + 7) * 1000.0 / self.sample_rate
            raise SettingsError(f"limiter look-ahead must be at least {min_ms:.2f} ms, got {lookahead_ms}")
        alpha = math.exp(-1.0 / (self.release_ms * 1e-3 * self.sample_rate))
        target = self.ceiling * db_to_gain(-self.margin_db)
        self._main = _GainStage(self.channels, taps, target, a1 + 2 * span, a1, alpha, li + a1 - 1 + span)
        # the safety stage aims 0.001 dB under the ceiling (so float32 rounding
        # cannot cross it) and releases as soon as its hold ends
        safety_target = min(target, self.ceiling * db_to_gain(-0.001))
        self._safety = _GainStage(self.channels, taps, safety_target, a2 + 2 * span, a2, 0.0, lat2)
        self.attack_samples = a1
        assert self._main.D + self._safety.D == self.latency

    def reset(self) -> None:
        self._main.reset()
        self._safety.reset()

    @property
    def max_reduction_db(self) -> float:
        """Deepest gain reduction applied so far, dB (0 when never limiting)."""
        g = float(self._main.gmin[0]) * float(self._safety.gmin[0])
        return gain_to_db(g, floor=1e-12)

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(block, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ValueError(f"{self.name}: expected a ({self.channels}, n) block, got shape {x.shape}")
        y = self._safety.run(self._main.run(x))
        np.clip(y, -self.ceiling, self.ceiling, out=y)
        return y
