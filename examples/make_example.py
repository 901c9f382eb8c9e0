"""Rebuild ``examples/concert_phone_clip.m4a`` from the development audio.

Needs ``../shared/audio`` (not shipped).  The clip: 25 s of "Vibe Ace" by Kevin
MacLeod (CC-BY 3.0) in a medium room (Apache-2.0 impulse response), with crowd
cheering (CC0) at 12 dB SNR, phone band, AGC and clipping, AAC 96 kbit/s.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.phone_sim import encode_m4a, load_stereo, simulate_phone_concert  # noqa: E402

SHARED = ROOT.parent / "shared" / "audio"


def main() -> None:
    clean = load_stereo(SHARED / "music" / "Kevin_MacLeod_-_Vibe_Ace.hq.ogg", seconds=25.0, start_s=10.0)
    rir = load_stereo(SHARED / "rir" / "medium-room1.wav")
    crowd = load_stereo(SHARED / "noise" / "ibm_max_crowd_cheering.wav")
    phone = simulate_phone_concert(clean, rir, crowd, snr_db=12.0)
    encode_m4a(phone, ROOT / "examples" / "concert_phone_clip.m4a", bitrate=96000)


if __name__ == "__main__":
    main()
