"""The restoration benchmark's cases: clean sources x named phone-concert degradations.

Sources (:data:`SOURCES`): every music clip in ``../shared/audio/music`` and
every multitrack mixture in ``../shared/audio/multitrack`` (the four Filosax
saxophone + backing pairs, takes 01 and 02 one after the other, and the
BabySlakh mix, a 16 kHz file whose content ends at 8 kHz: its spectral scores
stop at 7.2 kHz and its energy above 8 kHz is not scored).

Degradations (:data:`PROFILES`): six named phone-recording chains (phone band
3.4 / 5 / 7.5 / 8 kHz, crowd SNR 5-20 dB, five different halls, soft and hard
clipping levels, AAC 64-128 kbit/s).  Every source gets two different
degradations, one from the band-limit group (profiles 0-2) and one from the
hall / clipping group (3-5), the nine pairings rotated over the sources (see
:func:`case_list`): 20 cases, 6 of them hard-clipped.

Everything is deterministic: the excerpt start and the crowd-noise offset come
from ``numpy.random.default_rng([seed, source index, profile index])``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


def _find_audio() -> Path:
    """``$RESONATE_SHARED_AUDIO``, else the first ``shared/audio`` beside a folder
    above this checkout (``../shared/audio`` from the repository, also from a
    worktree one level deeper)."""
    env = os.environ.get("RESONATE_SHARED_AUDIO")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for up in here.parents[1:]:
        if (up / "shared" / "audio").is_dir():
            return up / "shared" / "audio"
    return here.parents[2] / "shared" / "audio"


AUDIO = _find_audio()
SR = 44100


@dataclass(frozen=True)
class Source:
    """A clean reference: ``kind`` ``music`` (``files[0]`` under music/), ``filosax``
    (sax part + backing part) or ``slakh`` (``files[0]`` under multitrack/)."""

    name: str
    kind: str
    files: tuple[str, ...]
    #: highest frequency the clean reference really contains (Hz)
    content_hz: float = 16000.0


SOURCES: tuple[Source, ...] = (
    Source("vibe_ace", "music", ("Kevin_MacLeod_-_Vibe_Ace.hq.ogg",)),
    Source("brahms", "music", ("Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).hq.ogg",)),
    Source("trumpet", "music", ("sorohanro_-_solo-trumpet-06.hq.ogg",)),
    Source("drum_bass", "music", ("admiralbob77_-_Choice_-_Drum-bass.hq.ogg",)),
    Source("waltz", "music", ("147793__setuniman__sweet-waltz-0i-22mi.hq.ogg",)),
    Source("filosax_p1_bd", "filosax", ("Participant 1", "Bass_Drums")),
    Source("filosax_p2_pd", "filosax", ("Participant 2", "Piano_Drums")),
    Source("filosax_p1_pd", "filosax", ("Participant 1", "Piano_Drums")),
    Source("filosax_p2_bd", "filosax", ("Participant 2", "Bass_Drums")),
    Source("slakh_t1", "slakh", ("babyslakh/Track00001/mix.wav",), content_hz=7200.0),
)


@dataclass(frozen=True)
class Profile:
    """One phone-concert degradation chain (see :mod:`benchmarks.phone_sim`)."""

    name: str
    band_hz: float       # phone microphone's upper band edge
    snr_db: float        # crowd noise below the music's power
    rir: str             # hall impulse response under rir/
    wet: float           # reverberant share
    agc_drive: float     # AGC soft-clipping drive (tanh)
    clip_db: float       # hard clipping: dB of overload at full scale (0 = none)
    bitrate: int         # AAC bit rate


PROFILES: tuple[Profile, ...] = (
    Profile("phone3k4", 3400.0, 15.0, "medium-room1.wav", 0.45, 1.4, 0.0, 64000),
    Profile("phone5k_crowd8", 5000.0, 8.0, "smooth-hall.wav", 0.6, 1.6, 0.0, 96000),
    Profile("phone7k5_aac64", 7500.0, 18.0, "cinema-room.wav", 0.4, 1.3, 0.0, 64000),
    Profile("hall_crowd5", 8000.0, 5.0, "bright-hall.wav", 0.7, 1.8, 0.0, 96000),
    Profile("clip6_seminar", 8000.0, 12.0, "seminar-room-clap.wav", 0.5, 1.2, 6.0, 128000),
    Profile("clip10_hall", 7500.0, 20.0, "smooth-hall.wav", 0.55, 1.2, 10.0, 128000),
)


@dataclass(frozen=True)
class Case:
    """One benchmark case: a source excerpt under one profile."""

    source: Source
    profile: Profile
    source_index: int
    profile_index: int

    @property
    def name(self) -> str:
        return f"{self.source.name}/{self.profile.name}"

    def params(self, seed: int, clip_seconds: float, excerpt_s: float) -> dict:
        """The profile plus the seeded excerpt start and noise offset."""
        rng = np.random.default_rng([seed, self.source_index, self.profile_index])
        spare = max(clip_seconds - excerpt_s, 0.0)
        start = float(np.round(rng.uniform(0.0, spare), 2)) if spare > 0 else 0.0
        return {**asdict(self.profile), "start_s": start,
                "noise_offset_s": float(np.round(rng.uniform(0.0, 10.0), 2))}


def case_list(patterns: list[str] | None = None) -> list[Case]:
    """Every case (2 per source), or those whose name contains one of ``patterns``.

    Source ``i`` gets profile ``i mod 3`` (band-limit / noise group) and
    ``3 + (i + i // 3) mod 3`` (hall / clipping group).
    """
    cases = []
    for i, s in enumerate(SOURCES):
        for j in (i % 3, 3 + (i + i // 3) % 3):
            cases.append(Case(s, PROFILES[j], i, j))
    if patterns:
        want = [p.lower() for p in patterns]
        cases = [c for c in cases if any(w in c.name.lower() for w in want)]
    return cases


def _filosax(part: str, backing: str) -> np.ndarray:
    from benchmarks.phone_sim import load_stereo

    folder = AUDIO / "multitrack" / "filosax"
    takes = []
    for take in ("01", "02"):
        a = load_stereo(folder / part / take / "Sax.wav")
        b = load_stereo(folder / "Backing" / take / f"{backing}.wav")
        n = min(a.shape[1], b.shape[1])
        takes.append(a[:, :n] + b[:, :n])
    return np.concatenate(takes, axis=1)


def load_clean(source: Source) -> np.ndarray:
    """The whole clean source, ``(2, n)`` float32 at 44.1 kHz (mixtures peak-normalised to 0.5)."""
    from benchmarks.phone_sim import load_stereo

    if source.kind == "music":
        return load_stereo(AUDIO / "music" / source.files[0])
    x = _filosax(*source.files) if source.kind == "filosax" else load_stereo(AUDIO / "multitrack" / source.files[0])
    return (0.5 * x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def degrade(clean: np.ndarray, p: dict, m4a: Path) -> None:
    """Write the simulated phone recording of ``clean`` under params ``p`` (see
    :meth:`Case.params`) to ``m4a``."""
    from benchmarks.phone_sim import (add_noise, agc_and_clip, encode_m4a, hard_clip, load_stereo, phone_band,
                                      reverberate)

    rir = load_stereo(AUDIO / "rir" / p["rir"])
    crowd = load_stereo(AUDIO / "noise" / "ibm_max_crowd_cheering.wav")
    crowd = np.roll(crowd, -int(p["noise_offset_s"] * SR) % crowd.shape[1], axis=1)
    y = reverberate(clean, rir, p["wet"])
    y = add_noise(y, crowd, p["snr_db"])
    y = phone_band(y, high_hz=p["band_hz"])
    y = agc_and_clip(y, drive=p["agc_drive"])
    y = hard_clip(y, p["clip_db"])
    encode_m4a(y, m4a, bitrate=p["bitrate"])

