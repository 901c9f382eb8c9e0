"""Streaming contract of every enhancement stage and default chain.

* Chunk-size invariance: whole signal vs random block sizes (1-sample blocks
  included) - difference below -90 dBFS (most stages are in fact bit-exact).
* Latency: a click at sample t comes out at t through ``LatencyAligned``, and
  the aligned output has as many samples as the input.
* ``reset()`` really starts a new stream.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.audio import STEM_NAMES
from stage_signals import mixed_test_signal, white_noise
from engine.enhance import (BassExciter, Compressor, DeEsser, EnhanceConfig, EQBand, HighPass, NoiseGate,
                            ParametricEQ, SpectralNoiseReducer, StereoWidth, TransientShaper, build_stem_chain)
from engine.enhance.config import PRESET_NAMES
from engine.stage import LatencyAligned, run_in_blocks

TOLERANCE = 10 ** (-90 / 20)

STAGES = {
    "eq": lambda: ParametricEQ([
        EQBand("highpass", 40.0, order=4), EQBand("low_shelf", 120.0, -4.0), EQBand("peak", 1000.0, 6.0, 1.0),
        EQBand("notch", 3000.0, q=4.0), EQBand("high_shelf", 8000.0, 3.0), EQBand("lowpass", 15000.0),
    ]),
    "eq_bandpass": lambda: ParametricEQ([EQBand("bandpass", 1000.0, q=2.0)]),
    "highpass": lambda: HighPass(80.0),
    "compressor": lambda: Compressor(threshold_db=-30.0, ratio=4.0, knee_db=6.0, attack_ms=5.0, release_ms=80.0,
                                     makeup_db=6.0),
    "gate": lambda: NoiseGate(threshold_db=-12.0, range_db=40.0),
    "expander_relative": lambda: NoiseGate(threshold_db=-70.0, relative_threshold_db=-3.0, hysteresis_db=1.0,
                                           hold_ms=5.0, ratio=3.0, range_db=30.0),
    "transient": lambda: TransientShaper(attack_db=6.0, sustain_db=-4.0),
    "deesser": lambda: DeEsser(depth_db=10.0, relative_threshold_db=-20.0),
    "noise_reduction": lambda: SpectralNoiseReducer(strength=1.0),
    "noise_reduction_small": lambda: SpectralNoiseReducer(strength=0.7, frame_length=1024, hop=256),
    "width": lambda: StereoWidth(1.5),
    "exciter": lambda: BassExciter(amount=1.0),
}

#: stages whose output must be bit-exact under any chunking (time-domain, sequential)
BIT_EXACT = {"eq", "eq_bandpass", "highpass", "compressor", "gate", "expander_relative", "transient", "deesser",
             "width", "exciter"}

CHAINS = {f"{preset}-{stem}": (lambda p=preset, s=stem: build_stem_chain(s, EnhanceConfig.preset(p).stem(s)))
          for preset in PRESET_NAMES for stem in STEM_NAMES}


def random_sizes(seed: int, count: int = 60) -> list[int]:
    """Block sizes mixing 1-sample, odd, hop-straddling and big blocks."""
    rng = np.random.default_rng(seed)
    choices = np.array([1, 2, 3, 7, 31, 64, 127, 511, 512, 513, 1000, 2047, 4096, 8191, 44100])
    return [int(v) for v in rng.choice(choices, size=count)]


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return mixed_test_signal(2.0, seed=3)


def assert_invariant(factory, x, sizes, exact=False):
    whole = run_in_blocks(factory(), x, None)
    stage = factory()
    blocks = run_in_blocks(stage, x, sizes)
    assert blocks.dtype == np.float32 and whole.shape == blocks.shape == (x.shape[0], x.shape[1] + stage.latency)
    assert np.all(np.isfinite(whole))
    err = float(np.max(np.abs(whole - blocks)))
    if exact:
        assert err == 0.0
    assert err < TOLERANCE, f"max difference {err:.3g} ({20 * math.log10(err):.1f} dBFS)"
    return whole


@pytest.mark.parametrize("name", sorted(STAGES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stage_chunk_invariance(name, seed, signal):
    whole = assert_invariant(STAGES[name], signal, random_sizes(seed), exact=name in BIT_EXACT)
    # the stage does something on this signal (otherwise the test would prove little)
    aligned = whole[:, STAGES[name]().latency:]
    assert np.max(np.abs(aligned - signal)) > 1e-3


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_one_sample_blocks(name, signal):
    assert_invariant(STAGES[name], signal[:, :6000], [1], exact=name in BIT_EXACT)


@pytest.mark.parametrize("name", sorted(CHAINS))
@pytest.mark.parametrize("seed", [0, 1])
def test_chain_chunk_invariance(name, seed, signal):
    assert_invariant(CHAINS[name], signal, random_sizes(seed + 10))


@pytest.mark.parametrize("stem", STEM_NAMES)
def test_chain_one_sample_blocks(stem, signal):
    assert_invariant(CHAINS[f"balanced-{stem}"], signal[:, :5000], [1])


@pytest.mark.parametrize("name", sorted(STAGES))
def test_reset_starts_a_new_stream(name, signal):
    stage = STAGES[name]()
    first = run_in_blocks(stage, signal, [4410])
    stage.reset()
    second = run_in_blocks(stage, signal, [3000, 17])
    np.testing.assert_array_equal(first, second)


# -- latency ------------------------------------------------------------------------------------------
LATENCY_STAGES = {k: v for k, v in STAGES.items() if k not in ("eq", "eq_bandpass")}
LATENCY_STAGES["eq_gains"] = lambda: ParametricEQ([EQBand("low_shelf", 120.0, -4.0), EQBand("peak", 1000.0, 6.0),
                                                    EQBand("high_shelf", 8000.0, 3.0)])


def click_signal(position: int, n: int = 60000) -> np.ndarray:
    x = white_noise(n / 44100, rms=10 ** (-70 / 20), seed=5)
    x[:, position] += 0.5
    return x


@pytest.mark.parametrize("name", sorted(LATENCY_STAGES) + sorted(f"chain-{s}" for s in STEM_NAMES))
@pytest.mark.parametrize("position", [30000, 30001 + 511])
def test_click_comes_out_at_its_position(name, position):
    factory = LATENCY_STAGES.get(name) or CHAINS[f"balanced-{name[6:]}"]
    stage = factory()
    x = click_signal(position)
    y = run_in_blocks(LatencyAligned(stage), x, random_sizes(7))
    assert y.shape == x.shape
    assert int(np.argmax(np.abs(y[0]))) == position
    assert int(np.argmax(np.abs(y[1]))) == position


def test_chain_latency_is_the_sum_of_its_stages():
    for preset in PRESET_NAMES:
        for stem in STEM_NAMES:
            chain = build_stem_chain(stem, EnhanceConfig.preset(preset).stem(stem))
            assert chain.latency == sum(s.latency for s in chain.stages)
    assert SpectralNoiseReducer().latency == 2047
    assert NoiseGate(lookahead_ms=2.0).latency == 88
