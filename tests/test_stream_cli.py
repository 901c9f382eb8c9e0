"""`resonate stream` end to end against a real `resonate serve --in-process` subprocess.

The streamed job's downloaded master must be byte-identical to what
`resonate process` writes for the same input and settings (both default;
no weights exist here, so both fall back to the DSP separator), also when the
network drops mid-stream (a TCP relay cuts the connection once).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from net_fixtures import ROOT, CuttingProxy, GatewayProcess, free_port
from clients.stream_cli import job_settings, stem_path, websocket_url
from resonate_stream.settings import Settings

EXAMPLE = ROOT / "examples" / "concert_phone_clip.m4a"

pytestmark = pytest.mark.slow


def _resonate(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resonate_stream", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """`resonate process` of the shipped example with default settings."""
    out = tmp_path_factory.mktemp("ref") / "restored.wav"
    res = _resonate("process", str(EXAMPLE), "-o", str(out), "-q")
    assert res.returncode == 0, res.stderr
    return out


def test_streamed_master_equals_resonate_process_even_after_a_dropped_connection(reference, tmp_path):
    out_dir = tmp_path / "mine"
    out_dir.mkdir()
    out = out_dir / "restored.wav"
    with GatewayProcess(tmp_path / "server") as server, \
            CuttingProxy(server.port, cut_after_bytes=3_000_000) as proxy:
        res = _resonate("stream", str(EXAMPLE), "--server", f"ws://127.0.0.1:{proxy.port}", "-o", str(out),
                        "--send-stems", "-q")
        log = server.log()
    assert res.returncode == 0, (res.stdout, res.stderr, log)
    assert proxy.cuts == 1  # the network really dropped once, mid-stream
    assert out.read_bytes() == reference.read_bytes()
    assert "1 reconnect" in res.stdout and "first audio after" in res.stdout
    assert f"wrote {out}" in res.stdout
    # the stems came along, as long as the master; the preview file is gone
    n = sf.info(str(out)).frames
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == sorted(["restored.wav", *(f"restored.{s}.wav" for s in ("vocals", "drums", "bass", "other"))])
    for s in ("vocals", "drums", "bass", "other"):
        assert sf.info(str(out_dir / f"restored.{s}.wav")).frames == n


def test_stream_to_a_server_that_is_not_there_says_so(tmp_path):
    port = free_port()
    res = _resonate("stream", str(EXAMPLE), "--server", f"127.0.0.1:{port}", "-o", str(tmp_path / "x.wav"), "-q",
                    timeout=60)
    assert res.returncode == 2
    assert "error [server_unreachable]" in res.stderr and f"ws://127.0.0.1:{port}/ws" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_addresses_and_settings_are_sent_as_the_server_needs_them():
    assert websocket_url("ws://127.0.0.1:8765") == "ws://127.0.0.1:8765/ws"
    assert websocket_url("http://box:9000/") == "ws://box:9000/ws"
    assert websocket_url("https://box/ws?token=x") == "wss://box/ws?token=x"
    assert websocket_url("box:1") == "ws://box:1/ws"
    s = Settings.from_preset("aggressive", {"mix": {"gains_db": {"vocals": 2.0}}, "export": {"format": "flac"}})
    sent = job_settings(s)
    assert Settings.from_preset(sent["preset"], sent["overrides"]) == s  # what the server rebuilds
    assert stem_path(Path("/o/gig.flac"), "stem_vocals", "/srv/x/gig.vocals.flac") == Path("/o/gig.vocals.flac")


def test_stream_with_a_reference_equals_resonate_process_with_it(tmp_path):
    """`resonate stream --reference R` uploads R on the reference stream; the downloaded master is
    byte-identical to `resonate process --reference R`, and says it was matched."""
    from reference_signals import SR, coloured, music_like

    track = music_like(10.0, seed=4)
    gig, studio = tmp_path / "gig.wav", tmp_path / "studio.flac"
    sf.write(str(gig), coloured(track[:, :5 * SR]).T, SR, subtype="FLOAT")
    sf.write(str(studio), track[:, 5 * SR:].T, SR, subtype="PCM_24")
    local = tmp_path / "local.wav"
    res = _resonate("process", str(gig), "-o", str(local), "--reference", str(studio), "-q")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "streamed.wav"
    with GatewayProcess(tmp_path / "server") as server:
        res = _resonate("stream", str(gig), "--server", server.ws_url, "-o", str(out), "--reference", str(studio),
                        "-q")
        log = server.log()
    assert res.returncode == 0, (res.stdout, res.stderr, log)
    assert "matched to the reference studio.flac" in res.stdout
    assert out.read_bytes() == local.read_bytes()


def test_stream_with_a_missing_reference_fails_before_connecting(tmp_path):
    port = free_port()  # nothing listens: the reference is checked first
    res = _resonate("stream", str(EXAMPLE), "--server", f"127.0.0.1:{port}", "-o", str(tmp_path / "x.wav"),
                    "--reference", str(tmp_path / "nope.flac"), "-q", timeout=60)
    assert res.returncode == 2
    assert "error [bad_reference]" in res.stderr and "nope.flac" in res.stderr
    assert list(tmp_path.iterdir()) == []
