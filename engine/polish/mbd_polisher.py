"""MBD polish of one window: the stateless window function of the polish lane.

For a window of ``k`` stereo signals (``(2k, n)`` at 44.1 kHz: every stem's
L, R, or the mix's):

1. **mid/side**, not L/R: each stereo pair becomes ``M = (L+R)/2``,
   ``S = (L-R)/2``.  MBD is mono and samples its own noise per signal; run on
   L and R separately, a centred source (the vocal) would be regenerated
   twice with independent noise and its phantom centre would smear.  On M/S it
   lives in M alone and stays centred; S (often near silent) keeps its own
   level through ``re_eq``, and an exactly silent S (mono content) is skipped;
2. resample to 24 kHz (julius), ``mbd.regenerate`` all signals as one batch,
   the sampler noise seeded from ``(seed, window.seq)`` (``torch.manual_seed``
   inside ``torch.random.fork_rng``: AudioCraft draws from torch's global RNG
   and takes no generator, so the global state is saved and restored
   around the call; one window at a time per process);
3. ``re_eq`` each signal against its own 24 kHz input (32 bands) with the
   stem's ``strictness`` (vocals gentler: closer to the input);
4. back to 44.1 kHz; the *correction* ``MBD - input`` back to L/R and
   low-passed at the crossover (linear-phase FIR): MBD at 24 kHz has nothing
   above 12 kHz, so above the crossover nothing of MBD is used and the input
   passes untouched.  (The seed's claim that MBD restores missing highs does
   not hold for the 24 kHz model: it can only rebuild what lies below 12 kHz.)

The window's result is that correction over the window's own samples; the
lane overlap-adds the corrections and adds ``blend`` times the stitched
correction to its input (:mod:`engine.polish.streaming`), so ``blend = 0``
returns the input bit-for-bit.
"""
from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE
from ..separation.base import WindowGeometry
from .config import PolishConfig

MBD_RATE = 24000
RE_EQ_BANDS = 32
#: FIR taps of the crossover low-pass (at 44.1 kHz; linear phase, delay compensated)
CROSSOVER_TAPS = 511


def window_seed(seed: int, seq: int) -> int:
    """The sampler seed of window ``seq`` in a job seeded ``seed`` (a 63-bit integer)."""
    return int(np.random.SeedSequence([int(seed), int(seq)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def crossover_lowpass(crossover_hz: float, transition_hz: float, taps: int = CROSSOVER_TAPS) -> np.ndarray:
    """Linear-phase low-pass FIR (float64 ``(taps,)``): pass below ``crossover_hz``,
    stop (Kaiser, about -100 dB) above ``crossover_hz + transition_hz``."""
    from scipy.signal import firwin

    edge = crossover_hz + transition_hz / 2
    return firwin(taps, edge, width=transition_hz, window=("kaiser", 10.0), fs=SAMPLE_RATE)


class MBDPolisher:
    """Polish windows of ``(2 * len(signals), n)`` audio with a loaded ``MultiBandDiffusion``.

    Args:
        mbd: an ``audiocraft.models.MultiBandDiffusion`` (see :mod:`engine.polish.mbd_loader`).
        cfg: the :class:`PolishConfig`.
        signals: the names of the stereo signals, in channel order (stems, or
            ``("mix",)``): they choose each pair's ``re_eq`` strictness.
        description: what ran, for the report.
    """

    def __init__(self, mbd, cfg: PolishConfig, signals: tuple[str, ...], description: dict | None = None):
        self.mbd = mbd
        self.cfg = cfg
        self.signals = tuple(signals)
        self.description = dict(description or {})
        self.segment_samples = int(round(cfg.segment_s * SAMPLE_RATE))
        self.context_samples = int(round(cfg.context_s * SAMPLE_RATE))
        self.lowpass = crossover_lowpass(cfg.crossover_hz, cfg.transition_hz)

    @property
    def geometry(self) -> WindowGeometry:
        """Windows of ``2 * len(signals)`` channels; one "source": the correction."""
        return WindowGeometry(("correction",), self.segment_samples, float(self.cfg.overlap),
                              self.context_samples, channels=2 * len(self.signals))

    def polish(self, window) -> np.ndarray:
        """The low-passed MBD correction of ``window``: float32 ``(1, channels, window.length)``."""
        C = self.context_samples
        x = window.context_span(C, C).astype(np.float64)  # (2k, C + length + C)
        ms = np.empty_like(x)
        ms[0::2], ms[1::2] = (x[0::2] + x[1::2]) / 2, (x[0::2] - x[1::2]) / 2
        strict = [self.cfg.strictness_for(None if s == "mix" else s) for s in self.signals for _ in (0, 1)]
        active = [i for i in range(ms.shape[0]) if np.any(ms[i])]
        d_ms = np.zeros_like(ms)
        if active:
            d_ms[active] = self._regenerate(ms[active], [strict[i] for i in active], window.seq) - ms[active]
        d = np.empty_like(d_ms)
        d[0::2], d[1::2] = d_ms[0::2] + d_ms[1::2], d_ms[0::2] - d_ms[1::2]
        d = self._lowpass(d)
        out = d[:, C:C + window.length]
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)[None]

    def _regenerate(self, mono: np.ndarray, strictness: list[float], seq: int) -> np.ndarray:
        """MBD of mono signals ``(B, n)`` at 44.1 kHz, re-EQ'd to each input; ``(B, n)`` float64."""
        import julius
        import torch

        dev = self.mbd.device
        n = mono.shape[1]
        with torch.no_grad():
            x = torch.from_numpy(mono.astype(np.float32)).to(dev)
            x24 = julius.resample_frac(x, SAMPLE_RATE, MBD_RATE)  # (B, n24)
            devices = [dev] if dev.type == "cuda" else []
            with torch.random.fork_rng(devices=devices, device_type=dev.type if devices else "cuda"):
                torch.manual_seed(window_seed(self.cfg.seed, seq))
                y24 = self.mbd.regenerate(x24[:, None, :], MBD_RATE)[:, 0]
            y24 = torch.stack([
                self.mbd.re_eq(wav=y24[i][None, None], ref=x24[i][None, None], n_bands=RE_EQ_BANDS,
                               strictness=strictness[i])[0, 0]
                for i in range(y24.shape[0])])
            y = julius.resample_frac(y24, MBD_RATE, SAMPLE_RATE, output_length=n)
        return y.double().cpu().numpy()

    def _lowpass(self, d: np.ndarray) -> np.ndarray:
        from scipy.signal import fftconvolve

        return fftconvolve(d, self.lowpass[None, :], mode="same", axes=1)
