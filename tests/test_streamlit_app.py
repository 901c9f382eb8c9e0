"""The Streamlit page (clients/streamlit_app.py) driven by Streamlit's AppTest against a
real `resonate serve --in-process` subprocess; skipped when streamlit is not installed."""
from __future__ import annotations

import io

import pytest
import soundfile as sf

pytest.importorskip("streamlit", reason="streamlit is not installed (pip install -e '.[ui]')")

from streamlit.testing.v1 import AppTest  # noqa: E402

from net_fixtures import ROOT, GatewayProcess  # noqa: E402

APP = ROOT / "clients" / "streamlit_app.py"
EXAMPLE = ROOT / "examples" / "concert_phone_clip.m4a"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with GatewayProcess(tmp_path_factory.mktemp("gateway")) as gw:
        yield gw


@pytest.fixture
def app(gateway, monkeypatch):
    monkeypatch.setenv("RESONATE_SERVER", gateway.ws_url)
    at = AppTest.from_file(str(APP), default_timeout=240)
    at.run()
    assert not at.exception
    return at


def test_upload_process_and_export_flac(app, gateway):
    app.file_uploader[0].set_value((EXAMPLE.name, EXAMPLE.read_bytes(), "audio/mp4"))
    app.run()
    app.selectbox(key="format").set_value("flac")
    app.run()
    app.selectbox(key="bit_depth").set_value(16)
    app.button(key="process").click()
    app.run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert "Processing complete" in app.success[0].value
    result = app.session_state["result"]
    info = sf.info(io.BytesIO(result.master))
    assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_16", 44100)
    assert abs(info.duration - 25.02) < 0.05
    server_copy = gateway.output_dir / result.job_id
    assert result.master == next(server_copy.glob("*.restored.flac")).read_bytes()  # the exact final file
    labels = {m.label: m.value for m in app.metric}
    assert labels["Duration"] == "25.0 s" and labels["SNR"].endswith("dB")
    assert [b.label for b in app.get("download_button")] == ["Download restored master"]


def test_a_file_that_is_not_audio_shows_the_servers_error(app):
    app.file_uploader[0].set_value(("notes.wav", b"plain text, not samples\n" * 40, "audio/wav"))
    app.run()
    app.button(key="process").click()
    app.run()
    assert not app.exception
    assert len(app.error) == 1 and "[not_audio]" in app.error[0].value and "notes.wav" in app.error[0].value
    assert "result" not in app.session_state


def test_a_reference_that_is_not_audio_is_refused_with_bad_reference(app):
    """The optional reference uploader: its file goes with the job; one that is not audio ends
    the job with the server's bad_reference, shown as one error line."""
    app.file_uploader[0].set_value((EXAMPLE.name, EXAMPLE.read_bytes(), "audio/mp4"))
    app.run()
    assert [u.label for u in app.get("file_uploader")] == ["Upload phone recording", "Reference (optional)"]
    app.file_uploader(key="reference").set_value(("studio.wav", b"words, not a studio take\n" * 40, "audio/wav"))
    app.run()
    app.button(key="process").click()
    app.run()
    assert not app.exception
    assert len(app.error) == 1 and "[bad_reference]" in app.error[0].value and "reference" in app.error[0].value
    assert "result" not in app.session_state
