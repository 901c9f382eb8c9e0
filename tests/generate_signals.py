"""Synthetic music with a known profile: a chord progression, a melody line, a drum loop."""
from __future__ import annotations

import numpy as np

SR = 44100
#: (label, MIDI notes of the triad)
PROGRESSION = [("C", (48, 52, 55)), ("Am", (45, 48, 52)), ("F", (41, 45, 48)), ("G", (43, 47, 50))]


def tone(midi: float, seconds: float, sr: int = SR, amp: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f = 440.0 * 2 ** ((midi - 69) / 12)
    return amp * sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3))


def chords(seconds_each: float = 2.0, repeats: int = 1, sr: int = SR) -> np.ndarray:
    parts = []
    for _ in range(repeats):
        for _, notes in PROGRESSION:
            parts.append(sum(tone(m, seconds_each, sr) for m in notes))
    return np.concatenate(parts).astype(np.float32)


def melody(notes, seconds_each: float, sr: int = SR) -> np.ndarray:
    return np.concatenate([tone(m, seconds_each, sr, amp=0.5) for m in notes]).astype(np.float32)


def drums(bpm: float, seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A kick on every beat (decaying 60 Hz burst + click) and hi-hat noise on the off-beats."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n, np.float32)
    beat = 60.0 / bpm
    k = np.arange(int(0.15 * sr)) / sr
    kick = (np.sin(2 * np.pi * 60 * k) * np.exp(-k * 30) + 0.5 * np.exp(-k * 400)).astype(np.float32)
    hat = (rng.standard_normal(int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / sr * 150) * 0.2).astype(np.float32)
    for i in range(int(seconds / beat) + 1):
        for sound, at in ((kick, i * beat), (hat, (i + 0.5) * beat)):
            s = int(at * sr)
            e = min(n, s + len(sound))
            if s < n:
                out[s:e] += sound[:e - s]
    return out


def stereo(x: np.ndarray) -> np.ndarray:
    return np.stack([x, x]).astype(np.float32)
