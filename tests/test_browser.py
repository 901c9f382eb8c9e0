"""The web page in a real Chromium against a real `resonate serve --in-process`.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright's Python
package: upload the shipped example through the file input, check that
playback starts while the job is still running, that A/B keeps the position,
that stems solo, that a cut connection resumes, that the download is the
exact final file in the chosen format; and that a bad file and a vanished
server give clear messages.  The page is loaded through a TCP relay
(tests/net_fixtures.py) so the tests can cut its connection like a failing
network.  Screenshots go to tests/_artifacts/; with RESONATE_UPDATE_SCREENSHOT=1
the finished-job screenshot also replaces docs/screenshot.png.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import msgpack
import pytest
import soundfile as sf

from net_fixtures import ROOT, CuttingProxy, GatewayProcess, free_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"]
EXAMPLE = ROOT / "examples" / "concert_phone_clip.m4a"
ARTIFACTS = ROOT / "tests" / "_artifacts"
DOC_SHOT = ROOT / "docs" / "screenshot.png"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    pytest.skip("the playwright package is not installed (pip install -e '.[test]')", allow_module_level=True)
if not CHROMIUM.exists():  # pragma: no cover - depends on the machine
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with GatewayProcess(tmp_path_factory.mktemp("gateway")) as gw:
        yield gw


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1300, "height": 1150}, accept_downloads=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.page_errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        ctx.close()


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _r(page, expr: str):
    return page.evaluate(f"() => window.resonate.{expr}")


def test_listen_while_it_restores_ab_stems_resume_and_download(gateway, page, tmp_path):
    with CuttingProxy(gateway.port) as proxy:
        page.goto(f"http://127.0.0.1:{proxy.port}/")
        page.wait_for_function("document.querySelectorAll('#preset option').length === 3")
        page.select_option("#out-format", "flac")
        page.select_option("#out-depth", "16")
        page.check("#send-stems")
        page.set_input_files("#file", str(EXAMPLE))
        page.wait_for_function("window.resonate.originalDecoded", timeout=15000)
        _shot(page, "01-file-chosen.png")
        page.click("#start")

        played_while_running = None  # (position, scheduled blocks) seen while the job ran
        stages_while_running: set[str] = set()
        ab_checked = stems_checked = False
        cut = False
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            st = page.evaluate("""() => ({job: resonate.jobState, pos: resonate.playbackPosition(),
                scheduled: resonate.scheduledBlocks, player: resonate.playerState, received: resonate.receivedSeconds,
                stems: resonate.stemNames, error: resonate.lastError, progress: resonate.progress})""")
            assert st["error"] is None, st["error"]
            if st["job"] in ("done", "failed", "cancelled"):
                break
            if st["job"] == "running":
                stages_while_running |= {k for k, v in st["progress"].items() if v["done"] > 0}
            if st["job"] == "running" and st["scheduled"] > 0 and st["pos"] > 0.3 and played_while_running is None:
                played_while_running = (st["pos"], st["scheduled"])
            if played_while_running and not ab_checked and st["player"] == "playing":
                c1, p1 = page.evaluate("() => [resonate.audioClock(), resonate.playbackPosition()]")
                page.click("#ab-original")
                c2, p2 = page.evaluate("() => [resonate.audioClock(), resonate.playbackPosition()]")
                assert _r(page, "abState") == "original"
                assert _r(page, "gains()")["original"] == 1 and _r(page, "gains()")["restored"] == 0
                # the same place in the music: the position moved on no further than the audio clock did
                # while the click was handled (a loaded machine may take a while to handle it)
                assert 0 <= p2 - p1 <= (c2 - c1) + 0.05, (p1, p2, c1, c2)
                page.wait_for_timeout(400)
                p3 = _r(page, "playbackPosition()")
                assert p3 - p2 > 0.2  # still playing, now the original
                _shot(page, "02-listening-original.png")
                p4 = _r(page, "playbackPosition()")
                page.click("#ab-restored")
                p5 = _r(page, "playbackPosition()")
                assert _r(page, "abState") == "restored" and _r(page, "gains()")["restored"] == 1
                assert 0 <= p5 - p4 < 0.3
                ab_checked = True
            if st["stems"] and not stems_checked:
                page.click("#stem-controls button[data-stem='vocals'][data-act='solo']")
                g = _r(page, "gains()")
                assert g["mix"] == 0 and g["stems"]["vocals"] == 1 and g["stems"]["drums"] == 0
                page.click("#stem-controls button[data-stem='vocals'][data-act='solo']")
                assert _r(page, "gains()")["mix"] == 1
                stems_checked = True
            if not cut and st["received"] > 6.0:
                assert proxy.cut_all() >= 1  # the network drops mid-stream
                cut = True
            page.wait_for_timeout(150)

        state = page.evaluate("""() => ({job: resonate.jobState, timeline: resonate.timeline, progress: resonate.progress,
            reconnects: resonate.reconnects, outputs: resonate.outputs, analysis: resonate.analysis,
            received: resonate.receivedSeconds, error: resonate.lastError})""")
        assert state["job"] == "done", state
        assert played_while_running is not None and played_while_running[1] > 0
        assert {"input", "restore"} <= stages_while_running  # progress shows up while it works
        tl = state["timeline"]
        assert tl["playbackStartedS"] is not None and tl["playbackStartedS"] < tl["jobDoneS"]
        assert ab_checked and stems_checked and cut
        assert state["reconnects"] >= 1 and proxy.cuts >= 1
        # every block arrived exactly once after the resume: the stream covers the whole input
        assert abs(state["received"] - 25.02) < 0.05
        for stage in ("input", "restore", "master"):
            p = state["progress"][stage]
            assert p["total"] and abs(p["done"] - p["total"]) < 1e-6, (stage, p)
        assert abs(state["analysis"]["durationS"] - 25.02) < 0.05
        assert state["analysis"]["metrics"]["snr_db"] is not None
        page.wait_for_timeout(600)
        shot = _shot(page, "03-done.png")
        if os.environ.get("RESONATE_UPDATE_SCREENSHOT") == "1":  # refresh the README's picture on demand
            shutil.copyfile(shot, DOC_SHOT)

        with page.expect_download(timeout=30000) as dl:
            page.click("#downloads button[data-kind='master']")
        target = tmp_path / dl.value.suggested_filename
        dl.value.save_as(str(target))
        assert target.suffix == ".flac"
        info = sf.info(str(target))
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", 44100, 2)
        assert abs(info.duration - 25.02) < 0.05
        assert target.read_bytes() == Path(state["outputs"]["master"]).read_bytes()
        assert {f"stem_{s}" for s in ("vocals", "drums", "bass", "other")} <= set(state["outputs"])

        # the settings survive a reload
        page.reload()
        page.wait_for_function("document.querySelectorAll('#preset option').length === 3")
        assert page.input_value("#out-format") == "flac" and page.input_value("#out-depth") == "16"
        assert page.is_checked("#send-stems")
    assert page.page_errors == []  # type: ignore[attr-defined]


def test_a_text_file_named_wav_gets_a_clear_error(gateway, page, tmp_path):
    bad = tmp_path / "not-really.wav"
    bad.write_text("these are words, not samples\n" * 50)
    page.goto(f"{gateway.http_url}/")
    page.set_input_files("#file", str(bad))
    page.wait_for_function("document.getElementById('file-note').textContent.includes('cannot decode')")
    page.click("#start")
    page.wait_for_function("window.resonate.jobState === 'failed'", timeout=30000)
    err = _r(page, "lastError")
    assert err["code"] == "not_audio"
    assert page.is_visible("#error")
    text = page.inner_text("#error")
    assert "could not be read as audio" in text and "not_audio" in text
    assert "not-really.wav" in text  # named as the user knows it, not as the server stored it
    for jargon in ("libsndfile", "FFmpeg", "ffmpeg", "Errno", "/tmp/", "Traceback"):  # plain words only
        assert jargon not in text, text
    _shot(page, "04-bad-file.png")
    assert page.page_errors == []  # type: ignore[attr-defined]


def test_a_reference_that_is_not_audio_gets_a_clear_error(gateway, page, tmp_path):
    """The optional reference input: its file goes to the server on the reference upload stream;
    one that is not audio ends the job with bad_reference, shown in plain words."""
    bad = tmp_path / "studio-version.wav"
    bad.write_text("a reference made of words\n" * 80)
    page.goto(f"{gateway.http_url}/")
    assert "Reference (optional)" in page.inner_text("#input-section")
    page.set_input_files("#file", str(EXAMPLE))
    page.set_input_files("#reference", str(bad))
    page.wait_for_function("document.getElementById('reference-note').textContent.includes('studio-version.wav')")
    page.wait_for_function("!document.getElementById('start').disabled", timeout=15000)
    page.click("#start")
    page.wait_for_function("window.resonate.jobState === 'failed'", timeout=60000)
    err = _r(page, "lastError")
    assert err["code"] == "bad_reference", err
    text = page.inner_text("#error")
    assert "reference recording could not be used" in text and "bad_reference" in text, text
    for jargon in ("Traceback", "Errno", "/tmp/"):
        assert jargon not in text, text
    assert page.page_errors == []  # type: ignore[attr-defined]


def test_a_server_that_went_away_is_reported(gateway, page):
    with CuttingProxy(gateway.port) as proxy:
        page.goto(f"http://127.0.0.1:{proxy.port}/")
        page.set_input_files("#file", str(EXAMPLE))
        proxy.target_port = free_port()  # nothing listens there any more
        proxy.cut_all()  # and the connection the page opened on load is gone with the server
        page.click("#start")
        page.wait_for_function("window.resonate.lastError !== null", timeout=20000)
    err = _r(page, "lastError")
    assert err["code"] == "server_unreachable"
    assert "Server unreachable" in page.inner_text("#error") and "resonate serve" in page.inner_text("#error")
    _shot(page, "05-server-gone.png")


def test_the_page_msgpack_speaks_the_documented_bytes(gateway, page):
    page.goto(f"{gateway.http_url}/")
    page.wait_for_function("window.resonate !== undefined")
    hello = {"type": "hello", "v": 1, "client": "demo", "token": "s3cret-token", "ack_window": 0}
    js = page.evaluate("(m) => Array.from(window.resonate.msgpack.encode(m))", hello)
    assert bytes(js) == msgpack.packb(hello, use_bin_type=True)  # the 58 bytes of docs/protocol.md
    value = {"b": b"\x00\x01\xff", "f": 0.25, "n": -70000, "big": 2**40, "s": "é" * 40, "l": [None, True, False],
             "m": {"k": list(range(20))}}
    got = page.evaluate("""(bytes) => {
        const v = window.resonate.msgpack.decode(new Uint8Array(bytes));
        return {...v, b: Array.from(v.b)};
    }""", list(msgpack.packb(value, use_bin_type=True)))
    assert got == {**value, "b": [0, 1, 255]}
    refused = page.evaluate("""(bytes) => { try { window.resonate.msgpack.decode(new Uint8Array(bytes)); return null; }
        catch (e) { return String(e); } }""", list(msgpack.packb(msgpack.ExtType(1, b"x"))))
    assert refused is not None and "extension" in refused


def test_server_status_shows_on_load_before_start(gateway, page):
    page.goto(f"{gateway.http_url}/")
    page.wait_for_function("document.getElementById('conn').dataset.state === 'connected'", timeout=15000)
    page.wait_for_function("document.getElementById('conn').textContent.includes('jobs running')", timeout=15000)
    text = page.inner_text("#conn")
    assert text.startswith("server: connected") and "resonate-gateway" in text, text
    assert _r(page, "jobState") == "idle" and page.is_disabled("#start")  # nothing chosen, nothing started
    assert page.page_errors == []  # type: ignore[attr-defined]


def test_the_page_fits_a_phone_and_sliders_use_the_theme(gateway, browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                              has_touch=True)
    try:
        pg = ctx.new_page()
        pg.goto(f"{gateway.http_url}/")
        pg.wait_for_function("document.querySelectorAll('#stem-rows input[type=range]').length === 12")
        pg.set_input_files("#file", str(EXAMPLE))  # a long file name and the metrics must fit too
        pg.set_input_files("#reference", str(EXAMPLE))  # and the optional reference input with its note
        pg.wait_for_function("window.resonate.originalDecoded", timeout=15000)
        widths = pg.evaluate("() => [document.documentElement.scrollWidth, document.body.scrollWidth]")
        assert max(widths) <= 390, widths  # no sideways scrolling
        too_wide = pg.evaluate("""() => [...document.querySelectorAll('main *, header *')]
            .filter(e => e.getBoundingClientRect().right > 390.5).map(e => e.id || e.tagName)""")
        assert too_wide == []
        accent = pg.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--accent').trim()")
        colours = pg.evaluate("""() => [...document.querySelectorAll('input[type=range]')]
            .map(e => getComputedStyle(e).accentColor)""")
        assert accent == "#f0a040" and set(colours) == {"rgb(240, 160, 64)"}, colours
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "06-phone.png"), full_page=True)
    finally:
        ctx.close()


def test_the_clock_shows_the_whole_duration(gateway, page):
    page.goto(f"{gateway.http_url}/")
    page.set_input_files("#file", str(EXAMPLE))
    page.wait_for_function("window.resonate.originalDecoded", timeout=15000)
    page.wait_for_function("document.getElementById('clock').textContent.endsWith('/ 0:25.0')", timeout=5000)
    assert page.inner_text("#clock") == "0:00.0 / 0:25.0"  # position / the recording's length


def test_generation_mode_warns_first_and_is_sent_with_the_job(gateway, page):
    page.goto(f"{gateway.http_url}/")
    page.wait_for_function("document.getElementById('conn').dataset.state === 'connected'", timeout=15000)
    assert page.is_hidden("#generate-warning") and page.is_hidden("#blend-pair")  # restore: no warning
    page.select_option("#mode", "generate")
    assert page.is_visible("#generate-warning")
    warning = page.inner_text("#generate-warning")
    assert "AI" in warning and "not a restoration" in warning and "CC-BY-NC" in warning, warning
    assert page.is_hidden("#blend-pair")
    assert _r(page, "jobSettings")["overrides"]["generate"]["mode"] == "generate"
    page.select_option("#mode", "both")
    assert page.is_visible("#blend-pair") and page.is_visible("#generate-warning")
    page.fill("#blend", "0.25")
    page.dispatch_event("#blend", "input")
    assert _r(page, "jobSettings")["overrides"]["generate"] == {"mode": "both", "blend": 0.25}
    page.select_option("#mode", "")
    assert "generate" not in _r(page, "jobSettings")["overrides"] and page.is_hidden("#generate-warning")
    assert page.page_errors == []  # type: ignore[attr-defined]
