"""Bring any channel count to the engine's working stereo.

Matrix (rows: output L, R; one column per input channel), built from channel
names (FFmpeg / WAVE names such as ``FL``, ``FC``, ``LFE``, ``SL``):

* mono: duplicated to both sides, gain 1 (no level change);
* stereo: identity;
* front left/right (``FL``/``FR``, also ``FLC``/``FRC`` and wide/top fronts):
  gain 1 to their own side;
* centre channels (``FC``, ``BC``, ``TC``, ...): 0.7071 (-3 dB) to both sides;
* surround / back / side / top-back left and right: 0.7071 to their own side;
* LFE channels: dropped (0) - phone or desktop playback of a downmix should
  not carry the sub channel, and it is mostly rumble in live recordings;
* channels with unknown names: 0.5 to both sides.

Finally both rows are divided by the same factor ``max(1, largest row sum of
gains)``, so a full-scale signal in every channel cannot clip the downmix (the
later loudness stage restores the level).  Example, 5.1 (``FL FR FC LFE BL
BR``): ``L = (FL + 0.7071 FC + 0.7071 BL) / 2.414``.

When a container does not name its channels (WAV without a channel mask, raw
PCM), the usual WAVE / SMPTE order is assumed for 3 to 8 channels
(:data:`DEFAULT_LAYOUTS`); above 8 channels (microphone arrays), even-indexed
channels go left and odd-indexed channels go right, equally weighted.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from engine.audio import CHANNELS

_MINUS_3DB = float(np.sqrt(0.5))

#: channel names assumed when the source does not say (WAVE / SMPTE order)
DEFAULT_LAYOUTS: dict[int, tuple[str, ...]] = {
    1: ("FC",),
    2: ("FL", "FR"),
    3: ("FL", "FR", "FC"),
    4: ("FL", "FR", "BL", "BR"),
    5: ("FL", "FR", "FC", "BL", "BR"),
    6: ("FL", "FR", "FC", "LFE", "BL", "BR"),
    7: ("FL", "FR", "FC", "LFE", "BC", "SL", "SR"),
    8: ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"),
}

_FRONT_LEFT = {"FL", "FLC", "WL", "TFL", "FLW"}
_FRONT_RIGHT = {"FR", "FRC", "WR", "TFR", "FRW"}
_CENTRE = {"FC", "BC", "TC", "TFC", "TBC", "BFC", "C"}
_SIDE_LEFT = {"BL", "SL", "TBL", "SDL", "TSL", "BFL", "LS", "LB"}
_SIDE_RIGHT = {"BR", "SR", "TBR", "SDR", "TSR", "BFR", "RS", "RB"}


def _gains_for(name: str) -> tuple[float, float]:
    n = name.upper()
    if n.startswith("LFE"):
        return 0.0, 0.0
    if n in _FRONT_LEFT:
        return 1.0, 0.0
    if n in _FRONT_RIGHT:
        return 0.0, 1.0
    if n in _CENTRE:
        return _MINUS_3DB, _MINUS_3DB
    if n in _SIDE_LEFT:
        return _MINUS_3DB, 0.0
    if n in _SIDE_RIGHT:
        return 0.0, _MINUS_3DB
    return 0.5, 0.5


def downmix_matrix(channels: int, names: Sequence[str] | None = None) -> np.ndarray:
    """The ``(2, channels)`` float32 matrix taking ``channels`` inputs to stereo.

    ``names`` are the source's channel names when it has them (ignored if
    their count does not match ``channels``).  See the module docstring for the
    coefficients.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if channels == 1:
        return np.ones((CHANNELS, 1), dtype=np.float32)
    if names is None or len(names) != channels or all(not n for n in names):
        names = DEFAULT_LAYOUTS.get(channels)
    if names is None:  # > 8 unnamed channels: alternate left / right
        m = np.zeros((CHANNELS, channels), dtype=np.float64)
        m[0, 0::2] = 1.0
        m[1, 1::2] = 1.0
    else:
        m = np.array([_gains_for(n) for n in names], dtype=np.float64).T
    if channels == 2 and np.array_equal(m, np.eye(2)):
        return np.eye(2, dtype=np.float32)
    scale = max(1.0, float(np.abs(m).sum(axis=1).max()))
    return (m / scale).astype(np.float32)


class StereoDownmixer:
    """Map ``(channels, n)`` blocks to the engine's channels (stateless).

    Mono is kept as ``(1, n)`` when ``keep_mono`` (so a resampler after it has
    half the work); call :func:`upmix_mono` afterwards.  Otherwise every block
    becomes ``(2, n)`` float32.
    """

    def __init__(self, channels: int, names: Sequence[str] | None = None, keep_mono: bool = False):
        self.in_channels = int(channels)
        self.matrix = downmix_matrix(self.in_channels, names)
        self.keep_mono = keep_mono and self.in_channels == 1
        self.out_channels = 1 if self.keep_mono else CHANNELS
        self._identity = self.in_channels == 2 and np.array_equal(self.matrix, np.eye(2))

    def process(self, block: np.ndarray) -> np.ndarray:
        """``(in_channels, n)`` -> ``(out_channels, n)`` float32."""
        if block.shape[0] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels, got block of shape {block.shape}")
        block = block.astype(np.float32, copy=False)
        if self.keep_mono or self._identity:
            return np.ascontiguousarray(block)
        if self.in_channels == 1:
            return upmix_mono(block)
        return (self.matrix @ block).astype(np.float32, copy=False)


def upmix_mono(block: np.ndarray) -> np.ndarray:
    """``(1, n)`` -> ``(2, n)``: the same signal on both sides (copy, float32)."""
    return np.ascontiguousarray(np.repeat(block[:1].astype(np.float32, copy=False), CHANNELS, axis=0))
