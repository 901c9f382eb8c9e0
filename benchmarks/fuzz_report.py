"""Fuzz figures for issue 10: odd/malformed audio files through `resonate process`, malformed
frames through a real gateway socket; prints the counts.

    PYTHONPATH=. python benchmarks/fuzz_report.py                 # 220 files, 240 frames
    PYTHONPATH=. python benchmarks/fuzz_report.py --files 30 --frames 60 --json out.json

Files: each one through the entry point (``python -m resonate_stream process FILE -o OUT -q
--no-cache --separator dsp``, a subprocess with a timeout).  Outcomes:

* refusal: exit 2 and exactly one stderr line ``error [code]: message``;
* result: exit 0, nothing on stderr, an output that reads back with finite samples (and, for a
  valid odd recording, the input's length at the output rate);
* crash: anything else (exit 1, a traceback, extra stderr lines, a missing or broken output);
* hang: no exit within ``--timeout``.

Frames: a `resonate serve --in-process` subprocess; per frame a new websocket connection,
hello/welcome, the frame, then a probe ``ping``.  Outcomes:

* refusal: an ``error`` message with a code (then the probe's pong, or a close if the error is
  fatal), or a websocket close 1009 for a frame above the hard size cap;
* result: the normal answer (pong, job_accepted ...) and the probe's pong, no error;
* crash: the connection dropped with no error message, a 1011 close, the server died, or a
  traceback in its log;
* hang: no answer to the probe within ``--frame-timeout``.

The corpora and the classification are tests/fuzz_corpus.py (the test suite runs the same ones,
the files in a slice).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import fuzz_corpus as F  # noqa: E402
from net_fixtures import GatewayProcess  # noqa: E402

def frames_report(cases: list[F.FrameCase], timeout: float, work: Path) -> tuple[list[dict], str]:
    rows: list[dict] = []
    log = ""
    i = 0
    while i < len(cases):
        with GatewayProcess(work / f"gateway{i}") as gw:
            while i < len(cases):
                row = asyncio.run(F.run_frame(gw.ws_url, cases[i], timeout))
                if gw.proc.poll() is not None:
                    row = {**row, "outcome": "crash", "detail": f"the server exited ({gw.proc.returncode})"}
                rows.append(row)
                i += 1
                if gw.proc.poll() is not None:
                    break  # start a new server for the rest
            log += gw.log()
    return rows, log


def summary(rows: list[dict]) -> dict:
    c = collections.Counter(r["outcome"] for r in rows)
    mismatch = [r["name"] for r in rows if (r["expect"] in ("result", "reply") and r["outcome"] == "refusal")
                or (r["expect"] in ("refusal", "error") and r["outcome"] == "result")]
    return {"total": len(rows), "refusals": c["refusal"], "results": c["result"], "crashes": c["crash"],
            "hangs": c["hang"], "codes": dict(collections.Counter(r.get("code") for r in rows if r.get("code"))),
            "not_as_expected": mismatch}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=220, help="audio files (default: %(default)s)")
    ap.add_argument("--frames", type=int, default=240, help="protocol frames (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per file (default: %(default)s)")
    ap.add_argument("--frame-timeout", type=float, default=10.0, help="seconds per frame (default: %(default)s)")
    ap.add_argument("--json", metavar="FILE", help="also write every row and the counts as JSON")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="resonate-fuzz-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("RESONATE_CACHE_DIR", str(work / "cache"))
        file_rows: list[dict] = []
        if args.files:
            cases = F.audio_corpus(work / "corpus", args.files, args.seed)
            (work / "out").mkdir()
            t0 = time.monotonic()
            for n, case in enumerate(cases, 1):
                file_rows.append(F.run_file(case, work / "out", args.timeout))
                if n % 20 == 0:
                    print(f"files: {n}/{len(cases)} ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
        frame_rows: list[dict] = []
        server_log = ""
        if args.frames:
            frame_rows, server_log = frames_report(F.frame_corpus(args.frames, args.seed), args.frame_timeout, work)
    tracebacks = server_log.count("Traceback")
    report = {"files": summary(file_rows), "frames": summary(frame_rows), "server_log_tracebacks": tracebacks,
              "rows": {"files": file_rows, "frames": frame_rows}}
    for kind in ("files", "frames"):
        s = report[kind]
        if not s["total"]:
            continue
        print(f"{kind:>6}: {s['total']} cases: {s['refusals']} clean refusals, {s['results']} correct results, "
              f"{s['crashes']} crashes, {s['hangs']} hangs")
        print(f"        refusal codes: {', '.join(f'{k} {v}' for k, v in sorted(s['codes'].items()))}")
        if s["not_as_expected"]:
            print(f"        not as expected (no crash): {', '.join(s['not_as_expected'])}")
        for r in report["rows"][kind]:
            if r["outcome"] in ("crash", "hang"):
                print(f"        {r['outcome']}: {r['name']}: {r.get('detail', '')[:300]!r}")
    if args.frames:
        print(f"server log: {tracebacks} tracebacks")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    bad = sum(report[k]["crashes"] + report[k]["hangs"] for k in ("files", "frames")) + tracebacks
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
