"""The stage contract, checked on every Stage in ``engine`` (auto-discovered).

Every subclass of :class:`engine.stage.Stage` found by importing every module
of the ``engine`` package must have at least one entry in :data:`CASES` (a
factory with representative parameters and the signal it is tested on), so a
new stage cannot escape these checks:

* chunk-size invariance: the whole signal in one block vs random block sizes
  (1-sample, odd, hop-straddling and big blocks), and 1-sample blocks
  throughout: bit-exact for the ``exact`` cases, otherwise below -90 dBFS;
  the whole output has ``output_length(n)`` samples, float32;
* honest latency: a click at sample ``t`` comes out at ``t + latency`` (at
  ``t`` through :class:`~engine.stage.LatencyAligned`, whose output then has
  as many samples as the input);
* ``reset()`` restores the initial state: the same input gives the same
  output twice.
"""
from __future__ import annotations

import functools
import importlib
import math
import pkgutil
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import engine
from engine.audio import STEM_NAMES, db_to_gain
from engine.dsp.spectral_chain import SpectralChain
from engine.dsp.stft import StreamingSTFTStage
from engine.enhance import (BassExciter, Compressor, DeEsser, EQBand, HighPass, LSANoiseSuppressor, NoiseGate,
                            ParametricEQ, SpectralNoiseReducer, StereoWidth, TransientShaper, build_stem_chain)
from resonate_stream.presets import preset_names
from resonate_stream.settings import Settings
from engine.estimators import BandLimitDetector
from engine.generate.profile import ProfileStage
from engine.io.resample import StreamResampler
from engine.master import PreviewMaster, TruePeakLimiter
from engine.mix import MixConfig, StemMixer
from engine.restore import HighBandExtender, OnlineWPE, SpectralReverbSuppressor, SubBassSynth
from engine.restore.chains import build_restore_chain
from engine.restore.declip import DeclipConfig, Declipper
from engine.restore.tonal import BAND_CENTRES_HZ, TonalCorrector
from engine.restore.config import RestoreConfig
from engine.stage import Chain, Delay, Gain, LatencyAligned, Stage
from stage_signals import band_noise, mixed_test_signal, reverberant, white_noise

SR = 44100
TOLERANCE = db_to_gain(-90.0)


# -- signals --------------------------------------------------------------------------------------------
@functools.cache
def make_signal(name: str):
    """The named test signal: float32 ``(2, n)``, or ``{stem: (2, n)}`` for ``"stems"``."""
    if name == "mixed":
        return mixed_test_signal(2.0, seed=3)
    if name == "loud":  # well over the limiter's ceiling
        return 4.0 * mixed_test_signal(2.0, seed=3)
    if name == "clipped":  # hard-clipped music, as a loud concert on a phone
        return np.clip(4.0 * mixed_test_signal(2.0, seed=3), -0.9, 0.9).astype(np.float32)
    if name == "room":  # harmonic notes in a 1 s RT60 room
        return reverberant(1.0, 3.5)[1][:, SR // 2: 2 * SR]
    if name == "silence_then_noise":
        rng = np.random.default_rng(3)
        x = np.concatenate([np.zeros((2, 2 * SR)), 0.1 * rng.standard_normal((2, SR))], axis=1)
        return x[:, int(1.8 * SR):].astype(np.float32)
    if name == "phone_band":
        return np.stack([band_noise(100, 8000, 1.0, seed=4), band_noise(100, 8000, 1.0, seed=5)])
    if name == "bass_tone":
        rng = np.random.default_rng(2)
        t = np.arange(SR) / SR
        x = 0.3 * np.sin(2 * np.pi * 82.0 * t) + 0.1 * np.sin(2 * np.pi * 164.0 * t + 1)
        return (np.stack([x, x]) + 0.01 * rng.standard_normal((2, SR))).astype(np.float32)
    if name == "stems":
        return {s: (g * mixed_test_signal(2.0, seed=10 + i)).astype(np.float32)
                for i, (s, g) in enumerate(zip(STEM_NAMES, (1.0, 0.3, 0.5, 0.05)))}
    raise KeyError(name)


def stems_of(x: np.ndarray) -> dict[str, np.ndarray]:
    """A block turned into the stem mixer's input (the same signal at four levels)."""
    return {s: (g * x).astype(np.float32) for s, g in zip(STEM_NAMES, (1.0, 0.5, 0.25, 0.1))}


# -- the registry -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One representative configuration of a stage.

    factory: builds a fresh stage.  signal: name for :func:`make_signal`.
    exact: output bit-exact under any chunking (else below -90 dBFS).
    as_input: turns a ``(2, n)`` block into the stage's input (the click test).
    seeds: random block-size sequences for the invariance test.
    one_sample / latency / reset: run those checks.  changes: the stage
    audibly changes the signal (so the invariance proves something).
    """

    factory: Callable[[], Stage]
    signal: str = "mixed"
    exact: bool = False
    as_input: Callable | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    one_sample: bool = True
    latency: bool = True
    reset: bool = True
    changes: bool = False


def _chain_cases() -> dict[str, Case]:
    cases = {}
    for preset in preset_names():
        for stem in STEM_NAMES:
            full = preset == "balanced"  # the costly checks on one preset's chains
            cases[f"chain-{preset}-{stem}"] = Case(
                lambda p=preset, s=stem: build_stem_chain(s, Settings.from_preset(p).enhance.stem(s)),
                seeds=(10, 11), one_sample=full, latency=full, reset=full)
    cases["chain-restore-vocals"] = Case(
        lambda: build_restore_chain("vocals", RestoreConfig(dereverb="spectral", high_band=1.0), (100.0, 8000.0)),
        signal="phone_band", seeds=(0,))
    return cases


@functools.cache
def _reference_profiles():
    """(reference, prior) spectrum profiles: band-limited bright noise vs the mixed signal."""
    from engine.master.reference import SpectrumProfile

    ref = np.stack([band_noise(60, 16000, 2.0, seed=6), band_noise(60, 16000, 2.0, seed=7)])
    return SpectrumProfile.measure([ref]), SpectrumProfile.measure([mixed_test_signal(2.0, seed=3)[:, :SR]])


def _reference_match():
    """Reference matching with refinements every second (crossfades inside the 2 s signal)."""
    from engine.master.reference import ReferenceConfig, ReferenceMatch

    ref, prior = _reference_profiles()
    return ReferenceMatch(ref, prior, ReferenceConfig(update_s=1.0, crossfade_s=0.3, min_measure_s=0.5))


def _stem_processor(stem: str, tonal: bool = False):
    """One stem lane of the job graph (enhance + restore, aligned), balanced preset, phone band;
    with ``tonal`` the tonal-balance correction planned from a measured head."""
    from engine.pipeline import StemProcessor, common_stem_latency
    from engine.restore.tonal import TonalProfile

    profile = TonalProfile.from_signal(make_signal("phone_band")) if tonal else None
    cfg = Settings.from_preset("balanced").pipeline_config((100.0, 8000.0), tonal_profile=profile)
    return StemProcessor(stem, cfg, common_stem_latency(cfg))


def _input_restorer():
    """The job graph's input lane (the de-clipper before separation, aligned), balanced + declip auto."""
    from engine.pipeline import InputRestorer

    return InputRestorer(Settings.from_preset("balanced", {"restore": {"declip": "auto"}}).pipeline_config(
        (20.0, 20000.0)))


CASES: dict[str, Case] = {
    # engine.enhance
    "eq": Case(lambda: ParametricEQ([
        EQBand("highpass", 40.0, order=4), EQBand("low_shelf", 120.0, -4.0), EQBand("peak", 1000.0, 6.0, 1.0),
        EQBand("notch", 3000.0, q=4.0), EQBand("high_shelf", 8000.0, 3.0), EQBand("lowpass", 15000.0),
    ]), exact=True, latency=False, changes=True),  # the notch and low-pass smear a click
    "eq_bandpass": Case(lambda: ParametricEQ([EQBand("bandpass", 1000.0, q=2.0)]), exact=True, latency=False,
                        changes=True),
    "eq_gains": Case(lambda: ParametricEQ([EQBand("low_shelf", 120.0, -4.0), EQBand("peak", 1000.0, 6.0),
                                           EQBand("high_shelf", 8000.0, 3.0)]), exact=True, changes=True),
    "highpass": Case(lambda: HighPass(80.0), exact=True, changes=True),
    "compressor": Case(lambda: Compressor(threshold_db=-30.0, ratio=4.0, knee_db=6.0, attack_ms=5.0, release_ms=80.0,
                                          makeup_db=6.0), exact=True, changes=True),
    "gate": Case(lambda: NoiseGate(threshold_db=-12.0, range_db=40.0), exact=True, changes=True),
    "expander_relative": Case(lambda: NoiseGate(threshold_db=-70.0, relative_threshold_db=-3.0, hysteresis_db=1.0,
                                                hold_ms=5.0, ratio=3.0, range_db=30.0), exact=True, changes=True),
    "transient": Case(lambda: TransientShaper(attack_db=6.0, sustain_db=-4.0), exact=True, changes=True),
    "deesser": Case(lambda: DeEsser(depth_db=10.0, relative_threshold_db=-20.0), exact=True, changes=True),
    "noise_reduction": Case(lambda: SpectralNoiseReducer(strength=1.0), changes=True),
    "noise_reduction_small": Case(lambda: SpectralNoiseReducer(strength=0.7, frame_length=1024, hop=256),
                                  changes=True),
    "lsa": Case(lambda: LSANoiseSuppressor(strength=1.0), changes=True),
    "lsa_small": Case(lambda: LSANoiseSuppressor(strength=0.6, max_reduction_db=18.0, frame_length=1024, hop=256),
                      signal="silence_then_noise", changes=True),
    "tonal": Case(lambda: TonalCorrector(np.linspace(-6.0, 6.0, len(BAND_CENTRES_HZ))), changes=True),
    "tonal_identity": Case(lambda: TonalCorrector(None)),
    "spectral_chain": Case(lambda: SpectralChain([LSANoiseSuppressor(strength=0.8),
                                                  TonalCorrector(np.linspace(-6.0, 6.0, len(BAND_CENTRES_HZ))),
                                                  HighBandExtender(8000.0, amount=1.2)]),
                           signal="phone_band", changes=True),
    "width": Case(lambda: StereoWidth(1.5), exact=True, changes=True),
    "exciter": Case(lambda: BassExciter(amount=1.0), exact=True, changes=True),
    **_chain_cases(),
    # engine.restore
    "suppressor": Case(lambda: SpectralReverbSuppressor(0.9), signal="room", seeds=(0,), changes=True),
    "suppressor_online_rt60": Case(lambda: SpectralReverbSuppressor(None), signal="room", seeds=(1,), changes=True),
    "wpe": Case(lambda: OnlineWPE(), signal="silence_then_noise", seeds=(0,)),
    "extender": Case(lambda: HighBandExtender(8000.0, amount=1.2), signal="phone_band", changes=True),
    "declip": Case(lambda: Declipper(DeclipConfig(mode="auto"), SR, 2), signal="clipped", seeds=(0,), changes=True),
    "sub_bass": Case(lambda: SubBassSynth(amount=1.0), signal="bass_tone", exact=True, changes=True),
    # engine.master, engine.mix
    "limiter": Case(lambda: TruePeakLimiter(ceiling_dbtp=-1.0), signal="loud", changes=True),
    "preview": Case(lambda: PreviewMaster(), changes=True),
    "reference_match": Case(_reference_match, changes=True),
    "stem_mixer": Case(lambda: StemMixer(MixConfig(gains_db={"bass": 3.0})), signal="stems", as_input=stems_of,
                       exact=True),
    # engine.dsp, engine.estimators, engine.io, engine.stage
    "stft_identity": Case(lambda: StreamingSTFTStage(512, 128)),
    "band_limit_detector": Case(lambda: BandLimitDetector(SR), exact=True),
    "resampler": Case(lambda: StreamResampler(48000, 44100, 2)),
    "resampler_identity": Case(lambda: StreamResampler(44100, 44100, 2), exact=True),
    # pass-through; profiles each 0.5 s window (the readings' invariance: tests/test_generate_profile.py)
    "profile": Case(lambda: ProfileStage(window_s=0.5, stride_s=0.4), exact=True, one_sample=False, seeds=(0,)),
    "gain": Case(lambda: Gain(-6.0), exact=True, changes=True),
    "delay": Case(lambda: Delay(100), exact=True),
    "latency_aligned_gate": Case(lambda: LatencyAligned(NoiseGate(threshold_db=-12.0, lookahead_ms=2.0)),
                                 exact=True),
    "stem_processor": Case(lambda: _stem_processor("vocals"), changes=True),
    "stem_processor_tonal": Case(lambda: _stem_processor("other", tonal=True), seeds=(0,), changes=True),
    "input_restorer": Case(_input_restorer, signal="clipped", seeds=(0,), changes=True),
    "latency_aligned_spectral": Case(lambda: LatencyAligned(SpectralNoiseReducer(frame_length=1024, hop=256))),
}


def discovered_stages() -> set[type]:
    """Every Stage subclass defined in the engine package (all modules imported)."""
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        importlib.import_module(info.name)
    found, todo = set(), [Stage]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found and sub.__module__.startswith("engine."):
                found.add(sub)
                todo.append(sub)
    return found


def test_every_discovered_stage_has_a_case():
    found = discovered_stages()
    assert {SpectralNoiseReducer, HighBandExtender, StemMixer, LatencyAligned, StreamResampler, Chain} <= found
    covered = {type(case.factory()) for case in CASES.values()}
    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in found - covered)
    assert not missing, f"add a Case to tests/test_stage_contract.py CASES for: {', '.join(missing)}"


# -- driving a stage ------------------------------------------------------------------------------------------
def random_sizes(seed: int, count: int = 60) -> list[int]:
    """Block sizes mixing 1-sample, odd, hop-straddling and big blocks."""
    rng = np.random.default_rng(seed)
    choices = np.array([1, 2, 3, 7, 31, 64, 127, 511, 512, 513, 1000, 2047, 4096, 8191, 44100])
    return [int(v) for v in rng.choice(choices, size=count)]


def _length(x) -> int:
    return next(iter(x.values())).shape[1] if isinstance(x, dict) else x.shape[1]


def _cut(x, a: int, b: int):
    return {k: v[:, a:b] for k, v in x.items()} if isinstance(x, dict) else x[:, a:b]


def run(stage: Stage, x, sizes: list[int] | None = None) -> np.ndarray:
    """``x`` through ``stage`` cut into ``sizes`` (cycled; ``None`` = one block), then ``flush``."""
    n = _length(x)
    outs, pos, i = [], 0, 0
    while pos < n:
        k = n if sizes is None else max(1, sizes[i % len(sizes)])
        outs.append(stage.process(_cut(x, pos, pos + k)))
        pos += k
        i += 1
    outs.append(stage.flush())
    return np.concatenate(outs, axis=1)


def assert_invariant(case: Case, x, sizes: list[int]) -> np.ndarray:
    whole_stage = case.factory()
    whole = run(whole_stage, x)
    parts = run(case.factory(), x, sizes)
    assert whole.dtype == parts.dtype == np.float32
    assert whole.shape == parts.shape == (whole_stage.channels, whole_stage.output_length(_length(x)))
    assert np.all(np.isfinite(whole))
    err = float(np.max(np.abs(whole.astype(np.float64) - parts))) if whole.size else 0.0
    if case.exact:
        assert err == 0.0
    assert err < TOLERANCE, f"max difference {err:.3g} ({20 * math.log10(err):.1f} dBFS)"
    return whole


# -- the checks -----------------------------------------------------------------------------------------------
INVARIANCE = [(name, seed) for name, case in CASES.items() for seed in case.seeds]


@pytest.mark.parametrize("name, seed", INVARIANCE, ids=[f"{n}-{s}" for n, s in INVARIANCE])
def test_chunk_size_invariance(name, seed):
    case = CASES[name]
    x = make_signal(case.signal)
    whole = assert_invariant(case, x, random_sizes(seed))
    if case.changes:  # the stage does something on this signal (otherwise the test would prove little)
        lat = case.factory().latency
        assert np.max(np.abs(whole[:, lat:lat + _length(x)] - x)) > 1e-3


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.one_sample])
def test_one_sample_blocks(name):
    case = CASES[name]
    assert_invariant(case, _cut(make_signal(case.signal), 0, 6000), [1])


def click_signal(position: int, n: int = 60000) -> np.ndarray:
    x = white_noise(n / SR, rms=db_to_gain(-70.0), seed=5)
    x[:, position] += 0.5
    return x


LATENCY = [(name, p) for name, c in CASES.items() if c.latency for p in (30000, 30001 + 511)]


@pytest.mark.parametrize("name, position", LATENCY, ids=[f"{n}-{p}" for n, p in LATENCY])
def test_click_comes_out_at_its_position_plus_latency(name, position):
    case = CASES[name]
    x = click_signal(position)
    inp = case.as_input(x) if case.as_input else x
    stage = case.factory()
    n_out = stage.output_length(x.shape[1]) - stage.latency
    expected = stage.latency + round(position * n_out / x.shape[1])  # re-timing stages change the rate
    y = run(stage, inp, random_sizes(7))
    for c in range(y.shape[0]):
        assert abs(int(np.argmax(np.abs(y[c]))) - expected) <= (0 if n_out == x.shape[1] else 1)
    aligned = run(LatencyAligned(case.factory()), inp, random_sizes(8))
    assert aligned.shape[1] == n_out
    for c in range(aligned.shape[0]):
        assert abs(int(np.argmax(np.abs(aligned[c]))) - (expected - stage.latency)) <= (0 if n_out == x.shape[1]
                                                                                         else 1)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.reset])
def test_reset_restores_the_initial_state(name):
    case = CASES[name]
    x = make_signal(case.signal)
    stage = case.factory()
    first = run(stage, x, [4410])
    stage.reset()
    second = run(stage, x, [4410])
    np.testing.assert_array_equal(first, second)
