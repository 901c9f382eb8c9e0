"""Restoration evaluation: simulated phone concert recordings -> Resonate -> scores.

The cases (:mod:`benchmarks.restoration_cases`): every music clip and every
multitrack mixture in ``../shared/audio`` (10 sources), each under two
different named phone-concert degradations (phone band 3.4 / 5 / 7.5 / 8 kHz,
crowd SNR 5-20 dB, five halls, hard clipping 6 / 10 dB, AAC 64-128 kbit/s):
20 cases, deterministic from ``--seed``.  Each excerpt of ``--seconds`` is
degraded into an .m4a and restored by ``resonate_stream.runner.process_file``
(``--preset``, DSP separator unless ``--separator demucs``).

Both the degraded input (decoded as the pipeline decodes it) and the master
are scored against the clean excerpt with :mod:`benchmarks.restoration_metrics`
after time alignment and gain matching: tonal-balance error (dB), log-spectral
distance (dB), multi-resolution STFT distance, SI-SDR (dB) and energy above
8 kHz relative to the original (dB).  The written master's integrated loudness
and true peak are measured by ffmpeg's ``ebur128=peak=true`` and by the
project's own meter (:mod:`benchmarks.loudness_meters`); without ffmpeg the
table says so and the targets fall back to the project's meter, labelled.

``--loo FITTER`` runs leave-one-source-out: for each source, FITTER (see
:data:`FITTERS`) is fitted on the other sources' cases and returns settings
overrides, which are applied to the held-out source's cases only, so every
figure printed is a held-out figure.

``--loo tonal`` fits the tonal-balance model (:class:`engine.restore.tonal.TonalModel`)
on the other sources' (degraded head, clean) pairs; ``--write-tonal-model JSON`` fits it on
every selected case (``engine/restore/tonal_model.json`` is that fit on all 20 cases, the
model a plain run uses, so only ``--loo tonal`` figures are held-out).

``--declip-only`` skips the pipeline and scores the degraded input processed
by the de-clipper alone (:class:`engine.restore.declip.Declipper`) against
the clean excerpt, on the clipped cases unless ``--cases`` says otherwise.

Run::

    python benchmarks/restoration_eval.py --jobs 1 --json /tmp/balanced.json
    python benchmarks/restoration_eval.py --preset aggressive --cases clip --seconds 10
    python benchmarks/restoration_eval.py --loo none               # the LOO harness, nothing fitted
    python benchmarks/restoration_eval.py --declip-only --json /tmp/declip.json

Exits 0 with a message when ``../shared/audio`` is absent.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.restoration_cases import AUDIO, SR, Case, case_list, degrade, load_clean  # noqa: E402

METRICS = ("tonal_error_db", "lsd_db", "mr_stft", "si_sdr_db", "hf_energy_db")
LUFS_TARGET, LUFS_TOL, TP_CEILING = -14.0, 0.5, -1.0
HF_TOL_DB = 4.0
TONAL_RATIO = 0.6
SI_SDR_TOL_DB = 1.0


# --------------------------------------------------------------------------
# fitted parts: leave-one-source-out
# --------------------------------------------------------------------------

#: a fitter gets the training cases and a loader ``pair(case) -> (clean, degraded)``
#: (both ``(2, n)`` float32 at 44.1 kHz, aligned as degraded) and returns settings
#: overrides (nested dict, as ``--set`` builds) for the held-out cases
Fitter = Callable[[list[Case], Callable[[Case], tuple[np.ndarray, np.ndarray]]], dict]


def fit_nothing(train: list[Case], pair, workdir: Path | None = None) -> dict:
    """The identity fitter: no overrides (exercises the harness)."""
    return {}


_PROFILES: dict[str, tuple] = {}


def tonal_training_row(case: Case, pair) -> tuple:
    """``(degraded head profile, clean profile, detected (low, high) band)`` of a case, measured
    as the runner measures a recording (its first ``BAND_DETECT_SECONDS``); memoised."""
    if case.name not in _PROFILES:
        from engine.restore.tonal import TonalProfile
        from resonate_stream.runner import BAND_DETECT_SECONDS, detect_band_limits

        clean, degraded = pair(case)
        head = degraded[:, :int(BAND_DETECT_SECONDS * SR)]
        blocks = [head[:, i:i + SR] for i in range(0, head.shape[1], SR)]
        _PROFILES[case.name] = (TonalProfile.measure(blocks), TonalProfile.from_signal(clean),
                                detect_band_limits(blocks))
    return _PROFILES[case.name]


def fit_tonal(train: list[Case], pair, workdir: Path | None = None) -> dict:
    """The tonal-balance model (:class:`engine.restore.tonal.TonalModel`) fitted on the
    training cases only, written as JSON; returns ``restore.tonal_model`` pointing at it."""
    from engine.restore.tonal import TonalModel

    rows = [tonal_training_row(c, pair) for c in train]
    model = TonalModel.fit([r[0] for r in rows], [r[1] for r in rows], [r[2][1] for r in rows],
                           low_edges_hz=[r[2][0] for r in rows])
    folder = Path(workdir or tempfile.gettempdir())
    path = folder / f"tonal_model_{abs(hash(tuple(sorted(c.name for c in train)))) % 10 ** 10}.json"
    model.save(path)
    return {"restore": {"tonal_model": str(path)}}


FITTERS: dict[str, Fitter] = {"none": fit_nothing, "tonal": fit_tonal}


def loo_folds(cases: list[Case]) -> list[tuple[str, list[Case], list[Case]]]:
    """``(held-out source, training cases, held-out cases)`` per source: no case of
    the held-out source is ever in its training set."""
    sources = list(dict.fromkeys(c.source.name for c in cases))
    return [(s, [c for c in cases if c.source.name != s], [c for c in cases if c.source.name == s])
            for s in sources]


# --------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------

def excerpt(case: Case, seed: int, seconds: float) -> tuple[np.ndarray, dict]:
    """The clean excerpt of ``case`` and its degradation parameters."""
    full = load_clean(case.source)
    p = case.params(seed, full.shape[1] / SR, seconds)
    a = int(p["start_s"] * SR)
    return np.ascontiguousarray(full[:, a:a + int(seconds * SR)]), p


def read_audio(path: Path) -> np.ndarray:
    """Decode ``path`` the way the pipeline does: ``(2, n)`` float32 at 44.1 kHz."""
    from engine.io.decode import open_audio

    with open_audio(path, block_seconds=1.0) as dec:
        return np.concatenate(list(dec), axis=1)


def training_pair(case: Case, seed: int, seconds: float, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(clean, degraded)`` of a training case, for fitters."""
    clean, p = excerpt(case, seed, seconds)
    m4a = workdir / f"train_{case.name.replace('/', '__')}.m4a"
    degrade(clean, p, m4a)
    return clean, read_audio(m4a)


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


def build_settings(opts: dict, fitted: dict | None = None):
    from resonate_stream.settings import Settings, deep_merge

    over = {"separation": {"separator": opts["separator"]}}
    if opts.get("model_repo"):
        over["separation"]["model_repo"] = str(opts["model_repo"])
    if opts.get("model"):
        over["separation"]["model"] = opts["model"]
    over = deep_merge(over, fitted or {})
    over = deep_merge(over, parse_sets(opts.get("set") or []))
    return Settings.from_preset(opts["preset"], over)


def master_meters(path: Path) -> dict:
    from benchmarks.loudness_meters import measure_file

    m = measure_file(path)
    for v in m.values():
        if v is not None:
            v["lufs_ok"] = abs(v["lufs"] - LUFS_TARGET) <= LUFS_TOL
            v["true_peak_ok"] = v["true_peak_dbtp"] <= TP_CEILING + 1e-9
    return m


def run_case(case: Case, opts: dict, workdir: str, fitted: dict | None = None) -> dict:
    """Degrade, restore (or only de-clip) and score one case; returns its row."""
    from benchmarks.restoration_metrics import score

    work = Path(workdir)
    stem = case.name.replace("/", "__")
    clean, p = excerpt(case, opts["seed"], opts["seconds"])
    m4a = work / f"{stem}.m4a"
    degrade(clean, p, m4a)
    degraded = read_audio(m4a)
    max_hz = min(16000.0, case.source.content_hz)
    row = {"case": case.name, "source": case.source.name, "profile": case.profile.name,
           "seconds": clean.shape[1] / SR, "degradation": p, "fitted": fitted or {}}
    t0 = time.perf_counter()
    if opts.get("declip_only"):
        from engine.restore.declip import Declipper, DeclipConfig

        st = Declipper(DeclipConfig(mode="auto"), channels=degraded.shape[0])
        y = np.concatenate([st.process(degraded), st.flush()], axis=1)[:, st.latency:]
        restored = y[:, :degraded.shape[1]]
        row.update(master=None, declip=st.report())
    else:
        from resonate_stream.runner import process_file

        out = work / f"{stem}.restored.wav"
        done = process_file(m4a, out, build_settings(opts, fitted), use_cache=False)
        restored = read_audio(out)
        rep = done.report
        row.update(master=master_meters(out), master_report=rep.get("master"),
                   band_limits_hz=rep.get("band_limits_hz"), mix_gains_db=rep.get("mix_gains_db"),
                   stages=rep.get("stages"), governor=rep.get("governor"))
    wall = time.perf_counter() - t0
    row.update(input=score(clean, degraded, SR, max_hz=max_hz), output=score(clean, restored, SR, max_hz=max_hz),
               wall_s=wall, realtime_factor=clean.shape[1] / SR / wall)
    return row


# --------------------------------------------------------------------------
# table and targets
# --------------------------------------------------------------------------

def _f(v, w: int = 6, p: int = 2) -> str:
    return f"{'-':>{w}s}" if v is None else f"{v:{w}.{p}f}"


def _mean(vals) -> float | None:
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def meter_of(row: dict) -> tuple[str, dict] | None:
    """``(label, readings)`` of the master: ffmpeg when it ran, else the project's meter."""
    m = row.get("master")
    if not m:
        return None
    return ("ffmpeg", m["ffmpeg"]) if m.get("ffmpeg") else ("own", m["project"])


def summarise(rows: list[dict]) -> dict:
    mean = {side: {m: _mean(r[side][m] for r in rows) for m in METRICS} for side in ("input", "output")}
    if rows and rows[0].get("master"):
        for meter in ("ffmpeg", "project"):
            got = [r["master"][meter] for r in rows if r["master"].get(meter)]
            if got:
                mean[meter] = {k: _mean(g[k] for g in got) for k in ("lufs", "true_peak_dbtp")}
    return mean


def print_table(rows: list[dict], mean: dict) -> None:
    has_master = bool(rows and rows[0].get("master"))
    head = f"{'case':30s} " + " ".join(f"{h:>15s}" for h in ("tonal dB", "LSD dB", "MR-STFT", "SI-SDR dB",
                                                             "HF>8k dB"))
    if has_master:
        head += f" {'LUFS ff':>7s} {'TP ff':>6s} {'LUFS own':>8s} {'TP own':>6s}"
    print(head)
    print("-" * len(head))

    def line(label, i, o, master):
        s = f"{label:30s} " + " ".join(f"{_f(i[m])} ->{_f(o[m])}" for m in METRICS)
        if has_master:
            ff, own = master.get("ffmpeg") or {}, master.get("project") or {}
            s += (f" {_f(ff.get('lufs'), 7, 1)} {_f(ff.get('true_peak_dbtp'), 6, 1)}"
                  f" {_f(own.get('lufs'), 8, 2)} {_f(own.get('true_peak_dbtp'), 6, 2)}")
        print(s)

    for r in rows:
        line(r["case"], r["input"], r["output"], r.get("master") or {})
    print("-" * len(head))
    line("mean", mean["input"], mean["output"], {"ffmpeg": mean.get("ffmpeg"), "project": mean.get("project")})
    print("(each cell: degraded input -> output; lower is better except SI-SDR; HF>8k: 0 dB = as the original;"
          " ff = ffmpeg ebur128=peak=true, own = the project's meter)")


def check_targets(rows: list[dict], mean: dict) -> dict:
    """The issue's 'done when' targets; prints one line each."""
    t: dict = {}
    ratio = mean["output"]["tonal_error_db"] / max(mean["input"]["tonal_error_db"], 1e-9)
    t["tonal_mean_at_most_0.6_of_input"] = {"ok": ratio <= TONAL_RATIO, "ratio": ratio}

    def every(name, bad):
        worse = [r["case"] for r in rows if bad(r)]
        t[name] = {"ok": not worse, "failing": worse}

    every("tonal_not_worse_any_case", lambda r: r["output"]["tonal_error_db"] > r["input"]["tonal_error_db"])
    every("lsd_not_worse_any_case", lambda r: r["output"]["lsd_db"] > r["input"]["lsd_db"])
    every("mr_stft_not_worse_any_case", lambda r: r["output"]["mr_stft"] > r["input"]["mr_stft"])
    every("si_sdr_within_1db_of_input", lambda r: r["output"]["si_sdr_db"] < r["input"]["si_sdr_db"] - SI_SDR_TOL_DB)
    every("hf_energy_within_4db", lambda r: r["output"]["hf_energy_db"] is not None
          and abs(r["output"]["hf_energy_db"]) > HF_TOL_DB)
    if rows and rows[0].get("master"):
        label = meter_of(rows[0])[0]
        every(f"master_lufs_-14+-0.5_by_{label}", lambda r: not meter_of(r)[1]["lufs_ok"])
        every(f"master_true_peak_<=-1_by_{label}", lambda r: not meter_of(r)[1]["true_peak_ok"])
        every("master_true_peak_<=-1_by_own", lambda r: not r["master"]["project"]["true_peak_ok"])
    print("\ntargets:")
    for k, v in t.items():
        extra = f"  (ratio {v['ratio']:.3f})" if "ratio" in v else (
            f"  ({len(v['failing'])} failing: {', '.join(v['failing'][:6])}{' ...' if len(v['failing']) > 6 else ''})"
            if v.get("failing") else "")
        print(f"  {'PASS' if v['ok'] else 'MISS'}  {k}{extra}")
    return t


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def _jobs_for(cases: list[Case], opts: dict, workdir: Path, args) -> list[tuple[Case, dict]]:
    """``(case, fitted overrides)`` to run: one fold per source with ``--loo``."""
    if not args.loo:
        return [(c, {}) for c in cases]
    fit = FITTERS[args.loo]
    out = []
    for held, train, test in loo_folds(cases):
        fitted = fit(train, lambda c: training_pair(c, opts["seed"], opts["seconds"], workdir), workdir)
        print(f"[loo] held out {held}: fitted on {len(train)} cases -> {fitted or 'no overrides'}", flush=True)
        out += [(c, fitted) for c in test]
    return out


def _progress(i: int, n: int, row: dict, t0: float) -> None:
    o, inp = row["output"], row["input"]
    m = meter_of(row)
    tail = f", {m[0]} {m[1]['lufs']:.1f} LUFS {m[1]['true_peak_dbtp']:.1f} dBTP" if m else ""
    print(f"[{i}/{n}] {row['case']}: tonal {inp['tonal_error_db']:.2f} -> {o['tonal_error_db']:.2f} dB, "
          f"SI-SDR {inp['si_sdr_db']:.1f} -> {o['si_sdr_db']:.1f} dB{tail}; {row['realtime_factor']:.1f}x real time "
          f"({time.perf_counter() - t0:.0f} s so far)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--cases", nargs="*", help="run only cases whose name (source/profile) contains one of these")
    ap.add_argument("--seconds", type=float, default=20.0, help="excerpt length per case (s)")
    ap.add_argument("--jobs", type=int, default=1, help="cases run in parallel processes")
    ap.add_argument("--json", type=Path, default=None, help="write every row, the means and the targets here")
    ap.add_argument("--seed", type=int, default=2024, help="seed of the excerpt starts and noise offsets")
    ap.add_argument("--loo", choices=sorted(FITTERS), default=None, help="leave-one-source-out with this fitter")
    ap.add_argument("--declip-only", action="store_true", help="score the de-clipper alone (no pipeline)")
    ap.add_argument("--separator", default="dsp", choices=("dsp", "demucs", "auto"))
    ap.add_argument("--model", default=None, help="Demucs model name (with --separator demucs)")
    ap.add_argument("--model-repo", type=Path, default=None, help="folder with Demucs weights")
    ap.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="settings override (repeatable)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the degraded .m4a and restored .wav here")
    ap.add_argument("--write-tonal-model", type=Path, default=None, metavar="JSON",
                    help="fit the tonal model on every selected case, write it here and exit "
                         "(engine/restore/tonal_model.json is the shipped one)")
    args = ap.parse_args(argv)

    if not (AUDIO / "music").is_dir():
        print(f"restoration_eval: no development audio at {AUDIO} (see ../shared/audio/README.md); skipping.")
        return 0
    cases = case_list(args.cases or (["clip"] if args.declip_only else None))
    if not cases:
        print("restoration_eval: no case matches --cases; cases: " + ", ".join(c.name for c in case_list()))
        return 2
    if args.write_tonal_model:
        with tempfile.TemporaryDirectory(prefix="resonate-tonal-") as wd:
            fitted = fit_tonal(cases, lambda c: training_pair(c, args.seed, args.seconds, Path(wd)), Path(wd))
            from engine.restore.tonal import TonalModel

            TonalModel.load(fitted["restore"]["tonal_model"]).save(args.write_tonal_model)
        print(f"tonal model fitted on {len(cases)} cases: {args.write_tonal_model}")
        return 0
    from benchmarks.loudness_meters import have_ffmpeg

    if not args.declip_only and not have_ffmpeg():
        print("WARNING: ffmpeg is not installed: LUFS / dBTP come only from the project's own meter "
              "(labelled 'own'); install it (apt-get install ffmpeg) for the independent check.")
    if args.separator == "demucs":
        print("note: Demucs without its trained weights (a random-weight model) is a smoke test, not a measurement")
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    build_settings(opts)  # fail early on bad settings

    tmp = None
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="resonate-eval-")
        workdir = Path(tmp.name)
    t0 = time.perf_counter()
    try:
        todo = _jobs_for(cases, opts, workdir, args)
        print(f"{len(todo)} cases x {args.seconds:g} s, preset {args.preset}, {args.jobs} job(s)", flush=True)
        rows: list[dict] = []
        if args.jobs <= 1:
            for i, (c, fitted) in enumerate(todo, 1):
                rows.append(run_case(c, opts, str(workdir), fitted))
                _progress(i, len(todo), rows[-1], t0)
        else:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                futs = [pool.submit(run_case, c, opts, str(workdir), fitted) for c, fitted in todo]
                for i, f in enumerate(futs, 1):
                    rows.append(f.result())
                    _progress(i, len(todo), rows[-1], t0)
    finally:
        if tmp is not None:
            tmp.cleanup()

    print()
    mean = summarise(rows)
    print_table(rows, mean)
    targets = check_targets(rows, mean)
    print(f"\n{len(rows)} cases in {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": opts, "settings": build_settings(opts).to_dict(),
                                         "ffmpeg": have_ffmpeg(), "rows": rows, "mean": mean, "targets": targets},
                                        indent=2, default=str))
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
