"""Quantisation of float audio to 16/24-bit integers with TPDF dither."""
from __future__ import annotations

import numpy as np

INTEGER_BIT_DEPTHS = (16, 24)


class TpdfQuantizer:
    """Round float samples to ``bits``-bit integers with seeded TPDF dither.

    Dither: the difference of two independent uniform variables of 1 LSB
    width each, i.e. triangular on (-1, +1) LSB (variance 1/6 LSB^2), added
    before rounding to the nearest integer.  Output is then clipped to the
    integer range, i.e. to [-1, 1 - 1 LSB] (``[-1, 1)``) in float terms.
    1 LSB = 2**-(bits-1) of full scale (1/32768 at 16 bits).

    The noise comes from a PCG64 generator seeded with ``seed``; one draw per
    sample and channel in time order, so the result depends only on the
    samples and the seed, not on how the stream was cut into blocks: two runs
    with the same seed write identical files.
    """

    def __init__(self, bits: int, seed: int = 0):
        if bits not in INTEGER_BIT_DEPTHS:
            raise ValueError(f"bits must be one of {INTEGER_BIT_DEPTHS}, got {bits}")
        self.bits = bits
        self.scale = float(2 ** (bits - 1))  # integer units per full scale
        self.lsb = 1.0 / self.scale  # one step, in full-scale units
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def quantize(self, block: np.ndarray) -> np.ndarray:
        """``(channels, n)`` float -> ``(n, channels)`` integers ready for libsndfile.

        16 bits: int16 values.  24 bits: int32 values holding the 24-bit sample
        in the top three bytes (``value << 8``), as libsndfile expects for
        24-bit files written from ``int``.
        """
        x = np.asarray(block, dtype=np.float64).T * self.scale  # (n, channels)
        u = self._rng.random(x.shape + (2,))
        x += u[..., 0]
        x -= u[..., 1]
        q = np.floor(x + 0.5)
        np.clip(q, -self.scale, self.scale - 1.0, out=q)
        if self.bits == 16:
            return np.ascontiguousarray(q.astype(np.int16))
        return np.ascontiguousarray(q.astype(np.int32) << 8)
