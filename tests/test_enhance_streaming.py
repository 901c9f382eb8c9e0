"""Latency of the default enhancement chains.

Chunk-size invariance, honest latency and ``reset()`` of every enhancement
stage and default chain are checked by ``tests/test_stage_contract.py`` (the
auto-discovered stage-contract test).
"""
from __future__ import annotations

from engine.audio import STEM_NAMES
from engine.enhance import NoiseGate, SpectralNoiseReducer, build_stem_chain
from resonate_stream.presets import preset_names
from resonate_stream.settings import Settings


def test_chain_latency_is_the_sum_of_its_stages():
    for preset in preset_names():
        for stem in STEM_NAMES:
            chain = build_stem_chain(stem, Settings.from_preset(preset).enhance.stem(stem))
            assert chain.latency == sum(s.latency for s in chain.stages)
    assert SpectralNoiseReducer().latency == 2047
    assert NoiseGate(lookahead_ms=2.0).latency == 88
