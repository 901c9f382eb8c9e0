"""`resonate stream`'s console: option help with defaults, bars in the order the job runs, plain
lines (no cursor movement) when stderr is not a terminal - through the entry point against a real
`resonate serve --in-process` subprocess."""
from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from net_fixtures import ROOT, GatewayProcess
from clients.python_client import Progress
from clients.stream_cli import _Console
from resonate_stream.cli import build_parser


def _stream_parser():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices["stream"]


def test_every_stream_option_states_its_default_and_help_has_examples():
    p = _stream_parser()
    missing = [a.option_strings for a in p._actions
               if a.option_strings and "--help" not in a.option_strings and not a.required
               and "default" not in (a.help or "")]
    assert missing == []
    assert all(a.help for a in p._actions)  # -o and the input are explained too
    text = p.format_help()
    assert "default: ws://127.0.0.1:8765" in text and "examples:" in text and "resonate stream gig.m4a" in text


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_stack_in_job_order_whatever_order_progress_arrives_in():
    """Progress is latest-value per job: `restore` or even `master` may be the first one seen."""
    out = _Tty()
    console = _Console(quiet=False, stream=out)
    assert not console.plain
    console.on_event(Progress(job_id="j", stage="restore", done=2.0, total=10.0))
    assert list(console.bars) == ["input", "restore"] and console.bars["input"].n == 2.0  # input >= output
    console.on_event(Progress(job_id="j", stage="input", done=5.0, total=10.0))
    console.on_event(Progress(job_id="j", stage="restore", done=1.0, total=10.0))  # a stale value
    assert console.bars["input"].n == 5.0 and console.bars["restore"].n == 2.0
    console.on_event(Progress(job_id="j", stage="master", done=1.0, total=10.0))
    assert console.bars["input"].n == 10.0 and console.bars["restore"].n == 10.0  # the stream has ended
    console.download_bar("download")(100, 1000)
    assert list(console.bars) == ["input", "restore", "master", "download"]
    assert [b.pos for b in console.bars.values()] in ([0, 1, 2, 3], [0, -1, -2, -3])
    console.close()


def test_plain_console_writes_lines_only():
    out = io.StringIO()
    console = _Console(quiet=False, stream=out)
    assert console.plain
    for done in (0.0, 3.0, 6.0, 10.0):
        console.on_event(Progress(job_id="j", stage="restore", done=done, total=10.0))
    console.download_bar("download")(1_000_000, 1_000_000)
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert text.splitlines()[-1] == "progress: download 100% (1.0/1.0 MB)"
    assert "progress: input 30% (3.0/10.0 s)" in text  # the input is at least as far as the output
    assert text.index("progress: input") < text.index("progress: restore")


@pytest.mark.slow
def test_stream_through_the_entry_point_prints_plain_progress_in_job_order(tmp_path):
    rng = np.random.default_rng(3)
    t = np.arange(4 * 44100) / 44100
    music = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)
    src = tmp_path / "clip.wav"
    sf.write(str(src), np.stack([music, music], 1).astype(np.float32), 44100)
    out = tmp_path / "mine" / "restored.wav"
    out.parent.mkdir()
    with GatewayProcess(tmp_path / "server") as server:
        res = subprocess.run([sys.executable, "-m", "resonate_stream", "stream", str(src), "--server",
                              f"127.0.0.1:{server.port}", "-o", str(out), "--separator", "dsp"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        log = server.log()
    assert res.returncode == 0, (res.stderr, log)
    assert out.is_file() and f"wrote {out}" in res.stdout
    err = res.stderr
    assert "\x1b[" not in err and "\r" not in err  # no cursor movement in a log
    lines = [l for l in err.splitlines() if l.startswith("progress: ")]
    firsts = {}
    for i, line in enumerate(lines):
        stage = line.split()[1]
        firsts.setdefault(stage, i)
    assert sorted(firsts, key=firsts.get) == ["input", "restore", "master", "download"], lines
    for stage in firsts:  # every stage ends complete
        assert any(re.fullmatch(rf"progress: {stage} 100% \(.*\)", l) for l in lines), (stage, lines)
