"""A streaming estimate of how well a separation went (no reference stems).

Without ground truth, three observable properties are combined:

* **mixture consistency**: the stems should sum back to the mix;
  ``reconstruction_snr_db = 10 log10(E_mix / E_(mix - sum stems))``,
  mapped to ``[0, 1]`` linearly between 0 dB and ``consistency_full_db``.
* **leakage**: stems of a good separation are nearly uncorrelated; for
  each stem the largest absolute zero-lag normalised cross-correlation with
  another (non-silent) stem, ``|<s_i, s_j>| / sqrt(E_i E_j)`` in ``[0, 1]``.
* **energy share**: ``E_i / sum_j E_j``, reported (a silent stem is not an
  error: many songs have no bass).

Stem score = ``consistency * (1 - leakage)``; the overall score is the
energy-share-weighted mean of the stem scores.  All sums are accumulated
block by block, so the result does not depend on how the stream was cut.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..audio import STEM_NAMES

_SILENT_SHARE = 1e-6


class SeparationQualityMeter:
    """Accumulate separation-quality statistics over a stream.

    Args:
        stems: stem names to expect in each update (default the engine's four).
        consistency_full_db: reconstruction SNR (dB) that counts as perfect.
    """

    def __init__(self, stems: Sequence[str] = STEM_NAMES, consistency_full_db: float = 40.0):
        self.stems = tuple(stems)
        self.consistency_full_db = float(consistency_full_db)
        self.reset()

    def reset(self) -> None:
        k = len(self.stems)
        self._gram = np.zeros((k, k), dtype=np.float64)  # <s_i, s_j>
        self._mix_energy = 0.0
        self._residual_energy = 0.0
        self.samples = 0

    def update(self, mix_block: np.ndarray, stems: Mapping[str, np.ndarray]) -> None:
        """Add one aligned block: ``mix_block`` ``(channels, n)``, stems ``{name: (channels, n)}``."""
        mix = np.asarray(mix_block, dtype=np.float64)
        n = mix.shape[-1]
        if n == 0:
            return
        S = np.stack([np.asarray(stems[s], dtype=np.float64).reshape(-1) for s in self.stems])
        if S.shape[1] != mix.size:
            raise ValueError(f"stems hold {S.shape[1]} values per stem, mix block {mix.size}")
        self._gram += S @ S.T
        flat = mix.reshape(-1)
        self._mix_energy += float(flat @ flat)
        res = flat - S.sum(axis=0)
        self._residual_energy += float(res @ res)
        self.samples += n

    def result(self) -> dict:
        """The estimate so far.

        Returns ``{"overall": float 0-1, "reconstruction_snr_db": float,
        "consistency": float, "samples": int, "stems": {name: {"energy_share",
        "level_db", "leakage", "score"}}}``; ``level_db`` is the stem energy
        relative to the mix energy in dB.
        """
        energies = np.diag(self._gram).copy()
        total = float(energies.sum())
        tiny = 1e-30
        if self._mix_energy <= tiny and self._residual_energy <= tiny:
            snr_db = float("inf")
        else:
            snr_db = 10.0 * np.log10((self._mix_energy + tiny) / (self._residual_energy + tiny))
        consistency = float(np.clip(snr_db / self.consistency_full_db, 0.0, 1.0))
        shares = energies / total if total > tiny else np.zeros_like(energies)
        active = shares > _SILENT_SHARE
        stems = {}
        scores = np.zeros(len(self.stems))
        for i, name in enumerate(self.stems):
            leak = 0.0
            if active[i]:
                for j in range(len(self.stems)):
                    if j != i and active[j]:
                        rho = abs(self._gram[i, j]) / np.sqrt(energies[i] * energies[j])
                        leak = max(leak, float(min(rho, 1.0)))
            scores[i] = consistency * (1.0 - leak)
            stems[name] = {
                "energy_share": float(shares[i]),
                "level_db": float(10 * np.log10((energies[i] + tiny) / (self._mix_energy + tiny))),
                "leakage": leak,
                "score": float(scores[i]),
            }
        overall = float((shares * scores).sum()) if total > tiny else 0.0
        return {
            "overall": overall,
            "reconstruction_snr_db": float(snr_db),
            "consistency": consistency,
            "samples": int(self.samples),
            "stems": stems,
        }


def assess_separation_quality(mix: np.ndarray, stems: Mapping[str, np.ndarray],
                              stem_names: Sequence[str] | None = None) -> dict:
    """One-shot version of :class:`SeparationQualityMeter` for whole arrays."""
    meter = SeparationQualityMeter(tuple(stem_names or stems.keys()))
    meter.update(mix, stems)
    return meter.result()
