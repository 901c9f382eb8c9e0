"""JASCO generation mode without the model: profile extraction on synthetic music, the crossfade lane, settings."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from engine.errors import SettingsError
from engine.generate.config import GenerateConfig
from engine.generate.profile import (MELODY_BINS, MELODY_MIDI_LOW, ProfileStage, build_description, detect_chords,
                                     detect_key, detect_tempo, melody_salience)
from engine.generate.streaming import (CrossfadeStitcher, GenerationGeometry, StreamingGeneration, crossfade_gains)
from engine.separation.streaming import InlineWindows
from generate_signals import PROGRESSION, SR, chords, drums, melody, stereo

def _mapping() -> Path:
    from resonate_stream.audiocraft_install import vendor_dirs

    found = [d / "chord_to_index_mapping.pkl" for d in vendor_dirs() if (d / "chord_to_index_mapping.pkl").is_file()]
    return found[0] if found else Path("chord_to_index_mapping.pkl-not-found")


MAPPING = _mapping()


def test_chords_of_a_progression_with_their_start_times():
    found = detect_chords(chords(2.0, repeats=2))
    assert [c for c, _ in found] == [c for c, _ in PROGRESSION] * 2
    starts = [t for _, t in found]
    np.testing.assert_allclose(starts, np.arange(8) * 2.0, atol=0.1)


@pytest.mark.skipif(not MAPPING.is_file(), reason="needs ../shared/vendor/audiocraft/chord_to_index_mapping.pkl")
def test_every_chord_label_is_in_jascos_mapping():
    from engine.generate.profile import ROOTS

    mapping = pickle.load(open(MAPPING, "rb"))
    for r in ROOTS:
        assert r in mapping and r + "m" in mapping
    assert "N" in mapping


def test_silence_is_no_chord():
    x = np.concatenate([np.zeros(SR, np.float32), chords(1.0)[:SR]])
    found = detect_chords(x)
    assert found[0] == ("N", 0.0) and found[1][0] == "C"


@pytest.mark.parametrize("bpm", [96.0, 120.0, 141.0])
def test_tempo_of_a_drum_loop_within_two_percent(bpm):
    assert detect_tempo(drums(bpm, 10.0)) == pytest.approx(bpm, rel=0.02)


def test_key_of_the_progression():
    assert detect_key(chords(2.0)) == "C major"
    assert build_description("lo-fi piano", "C major", 120.4) == "lo-fi piano, in C major, 120 bpm"
    assert build_description("", None, None) == "music"


def test_melody_salience_bins_and_frames():
    notes = [60, 64, 67, 72, 43, 95]
    s = melody_salience(melody(notes, 0.5))
    assert s.shape == (MELODY_BINS, 150)  # 3 s at 50 frames/s
    assert set(np.unique(s)) <= {0.0, 1.0} and np.all(s.sum(axis=0) <= 1)
    for i, note in enumerate(notes):
        mid = s[:, i * 25 + 5:i * 25 + 20]  # away from the note changes
        assert np.all(np.argmax(mid, axis=0) + MELODY_MIDI_LOW == note), note
    assert not melody_salience(np.zeros(SR, np.float32)).any()


def test_profile_stage_windows_do_not_depend_on_block_sizes():
    x = stereo(chords(1.0, repeats=2))  # 8 s
    results = []
    for block in (SR, 12345, 3 * SR + 7):
        stage = ProfileStage(window_s=3.0, stride_s=2.0)
        out = [stage.process(x[:, i:i + block]) for i in range(0, x.shape[1], block)]
        stage.flush()
        np.testing.assert_array_equal(np.concatenate(out, axis=1), x)  # passes its input through
        results.append(stage.pop())
    first = results[0]
    assert [(p.seq, p.offset, p.length) for p in first] == [(0, 0, 3 * SR), (1, 2 * SR, 3 * SR),
                                                          (2, 4 * SR, 3 * SR), (3, 6 * SR, 2 * SR)]
    for other in results[1:]:
        assert [(p.chords, p.key) for p in other] == [(p.chords, p.key) for p in first]
        for a, b in zip(other, first):
            np.testing.assert_array_equal(a.melody, b.melody)
    assert first[0].chords[0][0] == "C" and first[0].melody.shape == (MELODY_BINS, 150)


class _Tones:
    """A window 'generator' for the stitcher: each window a sine of its own frequency and phase (not a model)."""

    def __init__(self, geometry):
        self.geometry = geometry

    def run(self, window):
        t = np.arange(window.profile.length) / SR
        y = 0.5 * np.sin(2 * np.pi * (200 + 37 * window.seq) * t + window.seq)
        return np.stack([y, y]).astype(np.float32)


def test_crossfade_is_equal_power():
    out, into = crossfade_gains(4410)
    np.testing.assert_allclose(out ** 2 + into ** 2, 1.0, atol=1e-6)
    assert out[0] > 0.999 and into[-1] > 0.999


@pytest.mark.parametrize("block", [SR, 7777])
def test_generation_lane_is_continuous_and_as_long_as_its_input(block):
    g = GenerationGeometry(int(2.0 * SR), int(1.5 * SR))
    lane = StreamingGeneration(InlineWindows(_Tones(g), run=_Tones(g).run))
    n = int(6.3 * SR)
    x = stereo(chords(0.8, repeats=2))[:, :n]
    stems = {"vocals": x * 0.3, "bass": x * 0.3, "other": x * 0.4, "drums": stereo(drums(120, 6.3))[:, :n]}
    parts = [lane.process({k: v[:, i:i + block] for k, v in stems.items()}) for i in range(0, n, block)]
    parts += list(lane.drain())
    y = np.concatenate(parts, axis=1)
    assert y.shape == (2, n) and np.all(np.isfinite(y))
    # no gap, no click: the biggest sample-to-sample step stays that of the sines themselves
    sine_step = 0.5 * 2 * np.pi * (200 + 37 * 4) / SR
    assert np.abs(np.diff(y[0])).max() < 1.5 * sine_step
    # away from the joins each window's own sine is there unchanged
    t = np.arange(int(1.2 * SR)) / SR
    np.testing.assert_allclose(y[0, :len(t)], 0.5 * np.sin(2 * np.pi * 200 * t), atol=1e-6)
    t1 = np.arange(int(1.5 * SR)) / SR
    np.testing.assert_allclose(y[0, int(2.0 * SR):3 * SR],
                               (0.5 * np.sin(2 * np.pi * 237 * t1 + 1))[int(0.5 * SR):], atol=1e-6)
    assert [p.offset for p in lane.profiles] == [0, int(1.5 * SR), 3 * SR, int(4.5 * SR)]


def test_stitcher_takes_windows_in_any_order():
    g = GenerationGeometry(100, 80)
    a = CrossfadeStitcher(g)
    w = [np.full((2, 100), float(k + 1), np.float32) for k in range(3)]
    a.add(1, w[1])
    assert a.pop().shape[1] == 0  # window 1 waits for window 0
    a.add(0, w[0])
    parts = [a.pop()]
    assert parts[0].shape[1] == 160
    a.add(2, w[2])
    parts += [a.pop(), a.finish()]
    y = np.concatenate(parts, axis=1)[0]
    assert a.emitted == 260 and y.shape == (260,)
    out, into = crossfade_gains(20)
    np.testing.assert_array_equal(y[:80], 1.0)
    np.testing.assert_allclose(y[80:100], out * 1.0 + into * 2.0, rtol=1e-6)
    np.testing.assert_array_equal(y[100:160], 2.0)
    np.testing.assert_allclose(y[160:180], out * 2.0 + into * 3.0, rtol=1e-6)
    np.testing.assert_array_equal(y[180:], 3.0)


def test_generate_settings():
    cfg = GenerateConfig.from_dict({"mode": "both", "steps": 4, "text": "jazz trio"})
    assert cfg.enabled and cfg.stride_s == 9.0
    assert not GenerateConfig().enabled and GenerateConfig().mode == "restore"
    with pytest.raises(SettingsError, match="generate.mode"):
        GenerateConfig.from_dict({"mode": "remix"})
    with pytest.raises(SettingsError, match="crossfade_s"):
        GenerateConfig.from_dict({"window_s": 2.0, "crossfade_s": 1.5})


def test_graph_in_generate_and_both_modes_labels_and_blends(tmp_path):
    """The job graph with a generation lane (its windows from the tone stand-in above, not a model):
    generate -> the master input is the generated stream; both -> the blend; stems stay restored."""
    import dataclasses

    from engine.graph import GraphPipeline, JobGraph, LocalLane
    from engine.provenance import job_provenance
    from engine.separation.streaming import StreamingSeparation
    from resonate_stream.runner import build_separator_for
    from resonate_stream.settings import Settings

    settings = Settings.from_preset("balanced", {"separation": {"separator": "dsp", "segment_s": 1.0}})
    x = stereo(chords(0.6, repeats=1))[:, :int(2.3 * SR)] * 0.5
    g = GenerationGeometry(int(1.0 * SR), int(0.8 * SR))
    outs = {}
    for mode, blend in (("restore", 0.0), ("generate", 1.0), ("both", 0.25)):
        cfg = settings.pipeline_config((20.0, 20000.0))
        cfg = dataclasses.replace(cfg, generate=GenerateConfig(mode=mode, blend=blend if mode == "both" else 0.5))
        sep = build_separator_for(settings)[0]
        tones = _Tones(g)
        gen = None if mode == "restore" else StreamingGeneration(InlineWindows(tones, run=tones.run),
                                                                 {"name": "JASCO", "model": "tones (test)"})
        p = GraphPipeline(JobGraph(cfg), StreamingSeparation(sep), LocalLane, sep.description, generation=gen)
        blocks = []
        for i in range(0, x.shape[1], 30000):
            blocks += p.process(x[:, i:i + 30000])
        blocks += list(p.flush())
        outs[mode] = (np.concatenate([b.mix for b in blocks], axis=1),
                      np.concatenate([b.stems["vocals"] for b in blocks if b.stems], axis=1), p)
    restored, vocals, plain = outs["restore"]
    generated, gen_vocals, p_gen = outs["generate"]
    both, _, p_both = outs["both"]
    assert restored.shape == generated.shape == both.shape == x.shape
    np.testing.assert_array_equal(gen_vocals, vocals)  # the stems are the restored ones
    assert p_gen.mode == "generate" and p_both.mode == "both" and plain.mode == "restore"
    t = np.arange(int(0.7 * SR)) / SR
    np.testing.assert_allclose(generated[0, :len(t)], 0.5 * np.sin(2 * np.pi * 200 * t), atol=1e-6)
    np.testing.assert_allclose(both, 0.75 * restored + 0.25 * generated, atol=1e-6)
    made = job_provenance(p_gen.polish_description, p_gen.generator_description, p_gen.mode)
    assert made.kind == "AI-generated" and "JASCO" in made.summary()
    assert job_provenance(None, p_both.generator_description, "both").kind == "restored+AI-generated"


def test_cli_generate_without_jasco_is_model_unavailable(tmp_path, capsys, monkeypatch):
    """``resonate process --mode generate`` with no JASCO: one line, model_unavailable, exit 2, no file."""
    import soundfile as sf

    from resonate_stream.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = tmp_path / "in.wav"
    sf.write(str(src), np.zeros((SR, 2), np.float32) + 0.01, SR)
    empty = tmp_path / "jasco"
    empty.mkdir()
    rc = main(["process", str(src), "-o", str(tmp_path / "o.wav"), "-q", "--separator", "dsp", "--mode", "generate",
               "--set", f"generate.model={empty}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error [model_unavailable]: "), err
    assert "fetch jasco" in err[0] or "AudioCraft" in err[0]
    assert not (tmp_path / "o.wav").exists()


def test_models_lists_jasco_with_the_licence(capsys, monkeypatch, tmp_path):
    from resonate_stream.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "--model-repo", str(tmp_path)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("jasco ")]
    assert len(rows) == 1 and "JASCO" in rows[0] and "CC-BY-NC" in rows[0]
