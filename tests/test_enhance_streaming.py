"""Latency of the default enhancement chains.

Chunk-size invariance, honest latency and ``reset()`` of every enhancement
stage and default chain are checked by ``tests/test_stage_contract.py`` (the
auto-discovered stage-contract test).
"""
from __future__ import annotations

from engine.audio import STEM_NAMES
from engine.enhance import EnhanceConfig, NoiseGate, SpectralNoiseReducer, build_stem_chain
from engine.enhance.config import PRESET_NAMES


def test_chain_latency_is_the_sum_of_its_stages():
    for preset in PRESET_NAMES:
        for stem in STEM_NAMES:
            chain = build_stem_chain(stem, EnhanceConfig.preset(preset).stem(stem))
            assert chain.latency == sum(s.latency for s in chain.stages)
    assert SpectralNoiseReducer().latency == 2047
    assert NoiseGate(lookahead_ms=2.0).latency == 88
