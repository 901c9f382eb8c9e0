"""One STFT for consecutive spectral stages (:class:`SpectralChain`, :func:`fuse_spectral`).

A stem's chain runs noise suppression, the tonal correction and the high-band
extension one after another, and each is a
:class:`~engine.dsp.stft.StreamingSTFTStage` with the same geometry: run
separately, each analyses the previous one's output again and overlap-adds
its own, so the stem pays three forward and three inverse transforms and
three frames of latency.  :class:`SpectralChain` runs them on **one** STFT:
each frame's spectrum goes through the members' :meth:`process_frames` in
chain order (a member with ``add_to_dry`` adds its correction to the
spectrum it was given), then one inverse transform and overlap-add.  Every
member keeps its own state and :meth:`report`, so the reports are the same
list as before.

The result is not bit-identical to the separate stages: a later member sees
the earlier one's modified spectrum instead of the re-analysis of its
overlap-added output (the two differ where a gain changes fast across frames).
Latency is ``frame_length - 1`` samples for the whole group instead of one
frame per member.  Chunk-size invariance holds as for any STFT stage: the
frames depend only on absolute positions and each member's state advances
frame by frame in time order.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import SettingsError
from ..stage import Stage
from .stft import StreamingSTFTStage


def _geometry(stage: StreamingSTFTStage) -> tuple[int, int, int, int]:
    return stage.frame_length, stage.hop, stage.channels, stage.sample_rate


def fusable(stage: Stage) -> bool:
    """Whether ``stage`` can share an STFT: a :class:`StreamingSTFTStage` (not
    itself a :class:`SpectralChain`) whose STFT sees only its own channels (no
    side-chain :meth:`~engine.dsp.stft.StreamingSTFTStage.analysis_input`)."""
    return (isinstance(stage, StreamingSTFTStage) and not isinstance(stage, SpectralChain)
            and stage.analysis_channels == stage.channels)


class SpectralChain(StreamingSTFTStage):
    """Consecutive spectral ``members`` on one STFT (see the module doc).

    All members must have the same ``frame_length``, ``hop``, ``channels`` and
    ``sample_rate`` and be :func:`fusable`; the shared transform runs in float32
    when every member asks for float32, else in float64.
    """

    name = "spectral_chain"

    def __init__(self, members: Sequence[StreamingSTFTStage]):
        members = list(members)
        if not members:
            raise SettingsError("a spectral chain needs at least one stage")
        first = members[0]
        for m in members:
            if not fusable(m):
                raise SettingsError(f"stage {m.name!r} cannot share an STFT")
            if _geometry(m) != _geometry(first):
                raise SettingsError(f"stage {m.name!r} has a different STFT geometry from {first.name!r}")
        self.stages = members
        self.fft_dtype = (np.float32 if all(np.dtype(m.fft_dtype) == np.float32 for m in members)
                          else np.float64)
        super().__init__(first.frame_length, first.hop, first.channels, first.sample_rate)
        self.name = "+".join(m.name for m in members)
        self._complex = np.complex64 if self.fft_dtype == np.float32 else np.complex128

    def reset_spectral_state(self) -> None:
        for m in self.stages:
            m.reset()

    def process_frames(self, spectra: np.ndarray, frame_ends: np.ndarray) -> np.ndarray:
        s = spectra
        for m in self.stages:
            out = m.process_frames(s, frame_ends)
            if m.add_to_dry:
                np.add(s, out, out=s, casting="same_kind")  # a correction: a new array, never ``s`` itself
            else:
                s = out if out.dtype == self._complex else out.astype(self._complex)
        return s


def fuse_spectral(stages: Sequence[Stage]) -> list[Stage]:
    """``stages`` with every run of two or more consecutive :func:`fusable` stages
    of the same STFT geometry replaced by one :class:`SpectralChain` (order kept)."""
    out: list[Stage] = []
    run: list[StreamingSTFTStage] = []

    def close():
        if len(run) >= 2:
            out.append(SpectralChain(run))
        else:
            out.extend(run)
        run.clear()

    for s in stages:
        if fusable(s) and (not run or _geometry(s) == _geometry(run[0])):
            run.append(s)
            continue
        close()
        if fusable(s):
            run.append(s)
        else:
            out.append(s)
    close()
    return out
