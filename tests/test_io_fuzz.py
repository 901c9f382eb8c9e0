"""Fuzz corpus for the decoder (issue 10): 210 damaged files, generated here from real ones.

Every file must either decode to finite float32 blocks or be refused with a
typed :class:`ResonateError`; no other exception, no hang.  Mutations: bit
flips, truncation, random header bytes, absurd 32-bit header fields,
inserted garbage; over WAV (16/24-bit, float), FLAC, MP3, Ogg and M4A.
"""
from __future__ import annotations

import collections
import struct
from pathlib import Path

import numpy as np

from engine.errors import ResonateError
from engine.io.decode import open_audio
from audio_fixtures import sine, write_m4a, write_sf

SR = 44100
N_FILES = 210


def _seeds(folder: Path) -> dict[str, bytes]:
    x = sine([440, 1000], 0.5, amp=0.4)
    seeds = {}
    for name, kw in [("a.wav", dict(subtype="PCM_16")), ("b.wav", dict(subtype="FLOAT")), ("c.flac", {}),
                     ("d.mp3", {}), ("e.ogg", {}), ("f.wav", dict(subtype="PCM_24"))]:
        seeds[name] = write_sf(folder / f"seed_{name}", x, SR, **kw).read_bytes()
    seeds["g.m4a"] = write_m4a(folder / "seed_g.m4a", x, SR).read_bytes()
    return seeds


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    d = bytearray(data)
    kind = int(rng.integers(0, 5))
    if kind == 0:  # bit flips anywhere
        for j in rng.integers(0, len(d), int(rng.integers(1, 50))):
            d[j] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # cut off
        d = d[: int(rng.integers(0, len(d)))]
    elif kind == 2:  # random header bytes
        for j in rng.integers(0, min(64, len(d)), int(rng.integers(1, 8))):
            d[j] = int(rng.integers(0, 256))
    elif kind == 3:  # absurd 32-bit header fields (sizes, rates, counts)
        for _ in range(3):
            j = int(rng.integers(0, max(1, min(60, len(d) - 4))))
            d[j:j + 4] = struct.pack("<I", int(rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, int(rng.integers(0, 2 ** 32))])))
    else:  # garbage inserted
        pos = int(rng.integers(0, len(d)))
        d = d[:pos] + bytes(rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8)) + d[pos:]
    return bytes(d)


def test_damaged_files_decode_or_are_refused_with_a_code(tmp_path):
    seeds = _seeds(tmp_path)
    rng = np.random.default_rng(0)
    outcomes: collections.Counter = collections.Counter()
    crashes = []
    for i in range(N_FILES):
        name = list(seeds)[i % len(seeds)]
        path = tmp_path / f"fuzz_{i:03d}_{name}"
        path.write_bytes(_mutate(seeds[name], rng))
        try:
            with open_audio(path) as dec:
                for block in dec:
                    assert block.dtype == np.float32 and block.shape[0] == 2 and np.all(np.isfinite(block))
            outcomes["decoded"] += 1
        except ResonateError as e:
            outcomes[e.code] += 1
        except Exception as e:  # noqa: BLE001 - what the test is looking for
            crashes.append(f"{path.name}: {e!r}")
    assert crashes == []
    assert sum(outcomes.values()) == N_FILES
    assert outcomes["decoded"] > 0 and len(outcomes) >= 4  # the corpus exercises several refusals
