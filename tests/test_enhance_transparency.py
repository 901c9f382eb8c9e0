"""A stage at zero strength is transparent: bit-exact (or below -120 dBFS), latency aside."""
from __future__ import annotations

import numpy as np
import pytest

from engine.audio import STEM_NAMES, db_to_gain
from engine.enhance import (BassExciter, Compressor, DeEsser, EQBand, NoiseGate, ParametricEQ,
                            SpectralNoiseReducer, StemEnhanceConfig, StereoWidth, TransientShaper, build_stem_chain)
from engine.stage import LatencyAligned, run_in_blocks
from resonate_stream.settings import Settings
from stage_signals import mixed_test_signal

ZERO_STRENGTH = {
    "compressor": (lambda: Compressor(threshold_db=-40.0, ratio=1.0), True),
    "gate": (lambda: NoiseGate(threshold_db=-10.0, range_db=0.0), True),
    "transient": (lambda: TransientShaper(attack_db=0.0, sustain_db=0.0), True),
    "deesser": (lambda: DeEsser(depth_db=0.0, relative_threshold_db=-40.0), True),
    "eq": (lambda: ParametricEQ([EQBand("peak", 1000.0, 6.0).scaled(0.0), EQBand("high_shelf", 8000.0, 0.0)]), True),
    "exciter": (lambda: BassExciter(amount=0.0), True),
    "width": (lambda: StereoWidth(1.0), True),
    "noise_reduction": (lambda: SpectralNoiseReducer(strength=0.0), False),
}


@pytest.mark.parametrize("name", sorted(ZERO_STRENGTH))
def test_zero_strength_is_transparent(name):
    factory, exact = ZERO_STRENGTH[name]
    x = mixed_test_signal(1.0, seed=9)
    y = run_in_blocks(LatencyAligned(factory()), x, [1000, 1, 4097])
    assert y.shape == x.shape
    err = float(np.max(np.abs(y - x)))
    if exact:
        assert err == 0.0
    assert err < db_to_gain(-120)


@pytest.mark.parametrize("stem", STEM_NAMES)
def test_all_off_config_gives_a_bit_exact_chain(stem):
    chain = build_stem_chain(stem, StemEnhanceConfig())
    assert chain.latency == 0
    x = mixed_test_signal(0.5, seed=2)
    np.testing.assert_array_equal(run_in_blocks(chain, x, [333]), x)


@pytest.mark.parametrize("stem", STEM_NAMES)
def test_default_chains_change_the_sound_but_keep_its_level_sane(stem):
    x = mixed_test_signal(2.0, seed=4)
    y = run_in_blocks(LatencyAligned(build_stem_chain(stem, Settings.from_preset().enhance.stem(stem))), x, [44100])
    assert y.shape == x.shape and np.all(np.isfinite(y))
    rms = lambda a: float(np.sqrt(np.mean(a.astype(float) ** 2)))  # noqa: E731
    ratio_db = 20 * np.log10(rms(y) / rms(x))
    assert -9.0 < ratio_db < 6.0
    assert np.max(np.abs(y - x)) > 1e-3
