"""Restoration evaluation: simulated phone concert recordings -> Resonate -> scores.

For each clean clip in ``../shared/audio`` (the 5 music clips, optionally the
Filosax saxophone + backing mixture) an excerpt of ``--seconds`` is degraded
with :mod:`benchmarks.phone_sim` (a real room impulse response, real crowd
noise at 5-20 dB SNR, phone band 100 Hz - 8 kHz, AGC + soft clipping, AAC
64-128 kbit/s in an .m4a), with parameters drawn per clip from ``--seed``
(deterministic).  The .m4a is restored by ``resonate_stream.runner.process_file``
(the default preset, DSP separator unless ``--separator demucs``).

Both the degraded input (decoded as the pipeline decodes it) and the mastered
output are scored against the clean excerpt with
:mod:`benchmarks.restoration_metrics` after time alignment and gain matching:
tonal-balance error (dB), log-spectral distance (dB), multi-resolution STFT
distance, SI-SDR (dB) and energy above 8 kHz (8-16 kHz) relative to the original
(dB); the spectral scores stop at 16 kHz, where the lossy clean files end.
The master is checked against -14 +- 0.5 LUFS (pyloudnorm) and <= -1 dBTP
(``engine.master.loudness.true_peak_dbtp``).  A per-clip table, the means and
the targets are printed; everything goes to ``benchmarks/results/`` as JSON.

Run::

    python benchmarks/restoration_eval.py                      # 5 clips x 25 s, DSP separator
    python benchmarks/restoration_eval.py --seconds 10 --clips vibe trumpet
    python benchmarks/restoration_eval.py --multitrack         # + Filosax mixture
    python benchmarks/restoration_eval.py --set mix.auto_level=false   # A/B a setting
    python benchmarks/restoration_eval.py --separator demucs --model-repo DIR   # smoke test

Exits 0 with a message when ``../shared/audio`` is absent.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
RESULTS = REPO / "benchmarks" / "results"
SR = 44100

#: (short name, file under music/)
MUSIC_CLIPS: tuple[tuple[str, str], ...] = (
    ("vibe_ace", "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"),
    ("brahms", "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).hq.ogg"),
    ("trumpet", "sorohanro_-_solo-trumpet-06.hq.ogg"),
    ("drum_bass", "admiralbob77_-_Choice_-_Drum-bass.hq.ogg"),
    ("waltz", "147793__setuniman__sweet-waltz-0i-22mi.hq.ogg"),
)
RIRS = ("medium-room1.wav", "bright-hall.wav", "smooth-hall.wav", "cinema-room.wav", "seminar-room-clap.wav")
BITRATES = (64000, 96000, 128000)
METRICS = ("tonal_error_db", "lsd_db", "mr_stft", "si_sdr_db", "hf_energy_db")
#: targets of the issue (DSP separator)
LUFS_TARGET, LUFS_TOL, TP_CEILING = -14.0, 0.5, -1.0
HF_TOL_DB = 4.0


@dataclass
class Degradation:
    """Per-clip phone-recording parameters (drawn from the seed)."""

    rir: str
    wet: float
    snr_db: float
    agc_drive: float
    bitrate: int
    start_s: float
    noise_offset_s: float


def draw_degradation(seed: int, index: int, clip_seconds: float, excerpt_s: float) -> Degradation:
    """Deterministic parameters for clip ``index``: the RIR rotates over the five
    rooms, the rest is drawn from ``numpy.random.default_rng([seed, index])``."""
    rng = np.random.default_rng([seed, index])
    wet = float(rng.uniform(0.4, 0.7))
    snr = float(rng.uniform(5.0, 20.0))
    drive = float(rng.uniform(1.2, 2.2))
    bitrate = int(BITRATES[int(rng.integers(len(BITRATES)))])
    spare = max(clip_seconds - excerpt_s, 0.0)
    start = float(np.round(rng.uniform(0.0, spare), 2)) if spare > 0 else 0.0
    noise_off = float(np.round(rng.uniform(0.0, 10.0), 2))
    return Degradation(RIRS[(index + seed) % len(RIRS)], wet, snr, drive, bitrate, start, noise_off)


def clip_list(names: list[str] | None, multitrack: bool) -> list[tuple[str, Path | None]]:
    """``(name, path)`` of the clips to run (``path`` None = the Filosax mixture)."""
    clips: list[tuple[str, Path | None]] = [(n, AUDIO / "music" / f) for n, f in MUSIC_CLIPS]
    if multitrack:
        clips.append(("filosax_mix", None))
    if names:
        want = [w.lower() for w in names]
        clips = [c for c in clips if any(w in c[0] for w in want)]
    return clips


def load_filosax_mix() -> np.ndarray:
    """Filosax: Participant 1's saxophone + the bass-and-drums backing, takes 01 and 02
    one after the other (about 10 s), ``(2, n)`` float32 (the mono tracks duplicated)."""
    from benchmarks.phone_sim import load_stereo

    folder = AUDIO / "multitrack" / "filosax"
    takes = []
    for take in ("01", "02"):
        sax, backing = folder / "Participant 1" / take / "Sax.wav", folder / "Backing" / take / "Bass_Drums.wav"
        if sax.is_file() and backing.is_file():
            a, b = load_stereo(sax), load_stereo(backing)
            n = min(a.shape[1], b.shape[1])
            takes.append(a[:, :n] + b[:, :n])
    if not takes:
        raise FileNotFoundError(f"no Filosax saxophone/backing pair under {folder}")
    mix = np.concatenate(takes, axis=1)
    return (0.5 * mix / (np.max(np.abs(mix)) + 1e-9)).astype(np.float32)


def load_clean(path: Path | None) -> np.ndarray:
    from benchmarks.phone_sim import load_stereo

    return load_filosax_mix() if path is None else load_stereo(path)


def degrade(clean: np.ndarray, d: Degradation, m4a: Path) -> None:
    """Write the simulated phone recording of ``clean`` to ``m4a``."""
    from benchmarks.phone_sim import add_noise, agc_and_clip, encode_m4a, load_stereo, phone_band, reverberate

    rir = load_stereo(AUDIO / "rir" / d.rir)
    crowd = load_stereo(AUDIO / "noise" / "ibm_max_crowd_cheering.wav")
    crowd = np.roll(crowd, -int(d.noise_offset_s * SR) % crowd.shape[1], axis=1)
    y = reverberate(clean, rir, d.wet)
    y = add_noise(y, crowd, d.snr_db)
    y = phone_band(y)
    y = agc_and_clip(y, drive=d.agc_drive)
    encode_m4a(y, m4a, bitrate=d.bitrate)


def read_audio(path: Path) -> np.ndarray:
    """Decode ``path`` the way the pipeline does: ``(2, n)`` float32 at 44.1 kHz."""
    from engine.io.decode import open_audio

    with open_audio(path, block_seconds=1.0) as dec:
        blocks = list(dec)
    return np.concatenate(blocks, axis=1)


def master_checks(x: np.ndarray) -> dict:
    import pyloudnorm

    from engine.master.loudness import true_peak_dbtp

    lufs = float(pyloudnorm.Meter(SR).integrated_loudness(x.T.astype(np.float64)))
    tp = float(true_peak_dbtp(x))
    return {"lufs": lufs, "true_peak_dbtp": tp,
            "lufs_ok": abs(lufs - LUFS_TARGET) <= LUFS_TOL, "true_peak_ok": tp <= TP_CEILING + 1e-6}


def parse_sets(items: list[str]) -> dict:
    """``SECTION.KEY=VALUE`` (YAML values) -> nested overrides."""
    import yaml

    out: dict = {}
    for item in items:
        key, _, val = item.partition("=")
        if not _:
            raise SystemExit(f"--set needs SECTION.KEY=VALUE, got {item!r}")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(val)
    return out


def build_settings(args):
    from resonate_stream.settings import Settings, deep_merge

    over = {"separation": {"separator": args.separator}}
    if args.model_repo:
        over["separation"]["model_repo"] = str(args.model_repo)
    if args.model:
        over["separation"]["model"] = args.model
    over = deep_merge(over, parse_sets(args.set or []))
    return Settings.from_preset(args.preset, over)


def run_clip(name: str, path: Path | None, index: int, args, settings, workdir: Path) -> dict:
    from benchmarks.restoration_metrics import align, score, third_octave_levels
    from resonate_stream.runner import process_file

    full = load_clean(path)
    d = draw_degradation(args.seed, index, full.shape[1] / SR, args.seconds)
    a = int(d.start_s * SR)
    clean = np.ascontiguousarray(full[:, a:a + int(args.seconds * SR)])
    m4a = workdir / f"{name}.m4a"
    out = workdir / f"{name}.restored.wav"
    degrade(clean, d, m4a)
    t0 = time.perf_counter()
    done = process_file(m4a, out, settings)
    wall = time.perf_counter() - t0
    degraded = read_audio(m4a)
    restored = read_audio(out)
    s_in = score(clean, degraded, SR)
    s_out = score(clean, restored, SR)
    rep = done.report
    bands = {"centres_hz": third_octave_levels(clean, SR)[0].tolist()}
    for side, x in (("clean", clean), ("input", degraded), ("output", restored)):
        lv = third_octave_levels(align(clean, x)[1] if side != "clean" else clean, SR)[1]
        bands[side] = (lv - np.median(lv)).tolist()
    return {
        "clip": name, "source": str(path) if path else "filosax mixture", "seconds": clean.shape[1] / SR,
        "degradation": asdict(d), "input": s_in, "output": s_out, "master": master_checks(restored),
        "bands_db": bands, "mix_gains_db": rep.get("mix_gains_db"),
        "band_limits_hz": rep.get("band_limits_hz"), "separator": rep["separation"].get("separator"),
        "wall_s": wall, "realtime_factor": clean.shape[1] / SR / wall,
    }


def fmt(v: float, w: int = 7, p: int = 2) -> str:
    return f"{v:{w}.{p}f}"


def print_table(rows: list[dict]) -> dict:
    """Print per clip input -> output for every metric, the means; return the means."""
    head = (f"{'clip':12s} {'tonal dB':>15s} {'LSD dB':>15s} {'MR-STFT':>15s} {'SI-SDR dB':>15s} "
            f"{'HF>8k dB':>15s} {'LUFS':>7s} {'dBTP':>6s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = [f"{fmt(r['input'][m], 6)} ->{fmt(r['output'][m], 6)}" for m in METRICS]
        print(f"{r['clip']:12s} " + " ".join(cells)
              + f" {fmt(r['master']['lufs'], 7)} {fmt(r['master']['true_peak_dbtp'], 6)}")
    mean = {side: {m: float(np.mean([r[side][m] for r in rows])) for m in METRICS} for side in ("input", "output")}
    mean["master"] = {k: float(np.mean([r["master"][k] for r in rows])) for k in ("lufs", "true_peak_dbtp")}
    cells = [f"{fmt(mean['input'][m], 6)} ->{fmt(mean['output'][m], 6)}" for m in METRICS]
    print("-" * len(head))
    print(f"{'mean':12s} " + " ".join(cells)
          + f" {fmt(mean['master']['lufs'], 7)} {fmt(mean['master']['true_peak_dbtp'], 6)}")
    print("(each cell: degraded input -> restored output; lower is better except SI-SDR; "
          "HF>8k: 0 dB = as the original)")
    return mean


def check_targets(rows: list[dict], mean: dict) -> dict:
    """The issue's targets (DSP separator); prints one line each."""
    t = {}
    ratio = mean["output"]["tonal_error_db"] / max(mean["input"]["tonal_error_db"], 1e-9)
    t["tonal_mean_at_most_half_of_input"] = {"ok": ratio <= 0.5, "ratio": ratio}
    t["tonal_better_every_clip"] = {"ok": all(r["output"]["tonal_error_db"] < r["input"]["tonal_error_db"]
                                              for r in rows)}
    t["lsd_better_every_clip"] = {"ok": all(r["output"]["lsd_db"] < r["input"]["lsd_db"] for r in rows)}
    t["mr_stft_better_every_clip"] = {"ok": all(r["output"]["mr_stft"] < r["input"]["mr_stft"] for r in rows)}
    worst_hf = max((abs(r["output"]["hf_energy_db"]) for r in rows), default=0.0)
    t["hf_energy_within_4db"] = {"ok": worst_hf <= HF_TOL_DB, "worst_abs_db": worst_hf}
    t["master_lufs"] = {"ok": all(r["master"]["lufs_ok"] for r in rows)}
    t["master_true_peak"] = {"ok": all(r["master"]["true_peak_ok"] for r in rows)}
    print("\ntargets:")
    for k, v in t.items():
        extra = ", ".join(f"{a}={b:.3f}" for a, b in v.items() if a != "ok")
        print(f"  {'PASS' if v['ok'] else 'MISS'}  {k}{'  (' + extra + ')' if extra else ''}")
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=25.0, help="excerpt length per clip (s)")
    ap.add_argument("--clips", nargs="*", help="run only clips whose name contains one of these")
    ap.add_argument("--multitrack", action="store_true", help="add the Filosax saxophone + backing mixture")
    ap.add_argument("--seed", type=int, default=2024, help="seed of the per-clip degradation parameters")
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--separator", default="dsp", choices=("dsp", "demucs", "auto"))
    ap.add_argument("--model", default=None, help="Demucs model name (with --separator demucs)")
    ap.add_argument("--model-repo", type=Path, default=None, help="folder with Demucs weights")
    ap.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="settings override (repeatable)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the degraded .m4a and restored .wav here")
    ap.add_argument("--out", type=Path, default=None, help="JSON results file (default benchmarks/results/...)")
    args = ap.parse_args(argv)

    if not (AUDIO / "music").is_dir():
        print(f"restoration_eval: no development audio at {AUDIO} (see ../shared/audio/README.md); skipping.")
        return 0
    settings = build_settings(args)
    clips = clip_list(args.clips, args.multitrack)
    if not clips:
        print("restoration_eval: no clip matches --clips; choose from "
              + ", ".join(n for n, _ in MUSIC_CLIPS) + " (and filosax_mix with --multitrack)")
        return 2
    if args.separator == "demucs":
        print("note: Demucs without its trained weights (a random-weight model) is a smoke test, not a measurement")

    rows = []
    tmp = None
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="resonate-eval-")
        workdir = Path(tmp.name)
    try:
        index = {n: i for i, (n, _) in enumerate(clip_list(None, True))}
        for name, path in clips:
            print(f"[{name}] degrading + restoring ...", flush=True)
            row = run_clip(name, path, index[name], args, settings, workdir)
            d = row["degradation"]
            print(f"[{name}] {row['seconds']:.1f} s, rir {d['rir']}, wet {d['wet']:.2f}, SNR {d['snr_db']:.1f} dB, "
                  f"drive {d['agc_drive']:.2f}, AAC {d['bitrate'] // 1000} kbit/s; detected band "
                  f"{row['band_limits_hz'][0]:.0f}-{row['band_limits_hz'][1]:.0f} Hz; "
                  f"{row['separator']} separator, {row['realtime_factor']:.2f}x real time", flush=True)
            rows.append(row)
    finally:
        if tmp is not None:
            tmp.cleanup()

    print()
    mean = print_table(rows)
    targets = check_targets(rows, mean)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / f"restoration_eval_{args.separator}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                               "settings": settings.to_dict(), "clips": rows, "mean": mean, "targets": targets},
                              indent=2, default=str))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
