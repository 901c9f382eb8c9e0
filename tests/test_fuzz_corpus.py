"""The fuzz corpora of tests/fuzz_corpus.py in the suite (issue 10); benchmarks/fuzz_report.py
runs the full ones and prints the counts.

Frames: all 240 through a real `resonate serve --in-process` socket, one connection each: a
typed error (or the normal answer), never a dropped connection, a server traceback or a hang.
Files: every named odd/malformed case and a slice of the damaged ones through the `resonate
process` entry point (one subprocess, several inputs into a folder): each is refused with one
`error [code]` line or restored to a file of the right length; nothing crashes.
"""
from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

import fuzz_corpus as F
from net_fixtures import ROOT, GatewayProcess

pytestmark = pytest.mark.slow


def test_the_corpora_are_large_and_deterministic(tmp_path):
    a = F.frame_corpus(240, seed=0)
    assert len(a) == 240 and len({c.name for c in a}) == 240
    assert [c.payload for c in a] == [c.payload for c in F.frame_corpus(240, seed=0)]
    files = F.audio_corpus(tmp_path / "a", 200, seed=0)
    again = F.audio_corpus(tmp_path / "b", 200, seed=0)
    assert len(files) == 200 and [c.name for c in files] == [c.name for c in again]
    differ = [c.name for c, d in zip(files, again) if c.path.read_bytes() != d.path.read_bytes()]
    assert all(n.endswith(".ogg") for n in differ), differ  # only Ogg serial numbers differ between runs
    names = {c.name for c in files}
    for named in ("bits0.wav", "float16.wav", "s64.wav", "nan.wav", "inf.wav", "zero_length.wav",
                  "huge_1e30.wav", "header_cut_10.wav", "data_size_huge.wav", "random_bytes.wav"):
        assert named in names


def test_every_frame_is_refused_or_answered_and_the_server_survives(tmp_path):
    cases = F.frame_corpus(240, seed=0)
    with GatewayProcess(tmp_path / "gw") as gw:

        async def run_all():
            return [await F.run_frame(gw.ws_url, c, 10.0) for c in cases]

        rows = asyncio.run(run_all())
        alive = gw.proc.poll() is None
        log = gw.log()
    assert alive, log
    bad = [(r["name"], r["outcome"], r.get("detail")) for r in rows if r["outcome"] not in ("refusal", "result")]
    assert bad == []
    by_name = {r["name"]: r for r in rows}
    for c in cases:
        if c.expect == "error":
            assert by_name[c.name]["outcome"] == "refusal", by_name[c.name]
        elif c.expect == "reply":
            assert by_name[c.name]["outcome"] == "result", by_name[c.name]
    assert "Traceback" not in log, log


def test_odd_and_malformed_files_through_resonate_process(tmp_path):
    cases = F.audio_corpus(tmp_path / "corpus", 220, seed=0)
    named = [c for c in cases if not c.name.startswith(("damaged_", "random_"))]
    results = [c for c in named if c.expect == "result"]
    # every refusal and 'either' case, every 3rd valid odd file (the rest: benchmarks/fuzz_report.py)
    chosen = [c for c in named if c.expect != "result"] + results[::3] + \
        [c for c in cases if c.name.startswith(("damaged_", "random_"))][:24]
    stems: set = set()
    chosen = [c for c in chosen if not (c.path.stem in stems or stems.add(c.path.stem))]  # one output name each
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "resonate_stream", "process", *[str(c.path) for c in chosen],
                        "-o", f"{out}/", "--no-cache", "--separator", "dsp", "-y"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode in (0, 1), r.stderr[-3000:]
    n = len(chosen)
    errors = {}
    for line in r.stderr.splitlines():
        m = re.match(rf"^\[(\d+)/{n}\] (.+?): error \[([a-z_]+)\]: \S", line)
        if m:
            errors[m.group(2)] = m.group(3)
    for c in chosen:
        written = out / f"{c.path.stem}.restored.wav"
        if c.name in errors:
            assert c.expect != "result", (c.name, errors[c.name])
            assert not written.exists()
        else:
            assert c.expect != "refusal", c.name
            assert F.check_output(c, written) is None, (c.name, F.check_output(c, written))
    assert f"{n - len(errors)} of {n} files restored" in r.stdout
