"""A thin Streamlit page for Resonate (optional ``ui`` extra).

    pip install -e '.[ui]'
    resonate serve --in-process &          # or any running gateway
    streamlit run clients/streamlit_app.py

It follows the page structure of the original design (upload, analyse,
settings, process, results, export) and talks to a running gateway only
through :mod:`clients.python_client` (the documented protocol): it uploads
the file, follows the job's progress, downloads the exact final master (and
stems) with ``fetch``, and shows before/after measurements and plots.  For
listening *while* the job runs, use the gateway's own web page instead.
The gateway address comes from ``$RESONATE_SERVER`` (default
``ws://127.0.0.1:8765/ws``) and can be changed in the sidebar.
"""
from __future__ import annotations

import asyncio
import io
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from clients.python_client import AudioBlock, ConnectionLost, Error, Info, JobDone, Progress, ResonateClient
from resonate_protocol import ProtocolError

DEFAULT_SERVER = "ws://127.0.0.1:8765/ws"
STEMS = ("vocals", "drums", "bass", "other")
PRESETS = ("conservative", "balanced", "aggressive")
STAGES = ("input", "restore", "master")
MIME = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}


def job_settings(preset: str, quality: str, noise_reduction: Optional[float] = None,
                 eq_intensity: Optional[float] = None) -> dict:
    """``start_job.settings``: the preset plus overrides; ``noise_reduction`` / ``eq_intensity``
    (0..1, None: the preset's own per-stem values) apply to every stem."""
    overrides: dict = {"separation": {"quality": quality}}
    enhance = {}
    for stem in STEMS:
        knobs = {}
        if noise_reduction is not None:
            knobs["noise_reduction"] = float(noise_reduction)
        if eq_intensity is not None:
            knobs["eq_intensity"] = float(eq_intensity)
        if knobs:
            enhance[stem] = knobs
    if enhance:
        overrides["enhance"] = enhance
    return {"preset": preset, "overrides": overrides}


@dataclass
class JobResult:
    """A finished job as the page keeps it: the final files' bytes and the report."""

    job_id: str
    report: dict
    master: bytes
    master_name: str
    stems: dict = field(default_factory=dict)  # stem name -> (file name, bytes)
    first_audio_s: Optional[float] = None


async def restore(url: str, token: Optional[str], source: Path, settings: dict, output: dict, *,
                  stems: bool = False, on_event: Optional[Callable] = None,
                  reference: Optional[Path] = None) -> JobResult:
    """Upload ``source`` (and the optional ``reference`` recording to match it to), follow the job
    (resuming after a dropped connection), then download its final master (and stems). Raises
    ``ProtocolError`` with the server's code on failure."""
    async with ResonateClient(url, token, client_name="resonate-streamlit") as client:
        job = await client.start_job(settings, upload_path=source, send_stems=stems, output=output,
                                     reference=reference)
        await client.upload_done(job)
        done: Optional[JobDone] = None
        first_audio: Optional[float] = None
        t0 = client.started_at(job) or time.monotonic()
        reconnects = 0
        while done is None:
            try:
                async for ev in client.events(job):
                    if isinstance(ev, AudioBlock) and first_audio is None:
                        first_audio = ev.received_at - t0
                    elif isinstance(ev, Error):
                        raise ev.to_exception()
                    elif isinstance(ev, JobDone):
                        done = ev
                    if on_event is not None and not isinstance(ev, AudioBlock):
                        on_event(ev)
            except ConnectionLost:
                reconnects += 1
                if reconnects > 5:
                    raise
                await client.reconnect()
                await client.resume(job)
        with tempfile.TemporaryDirectory() as tmp:
            got = await client.download(job, "master", Path(tmp) / "master")
            master = got.path.read_bytes()
            stem_files = {}
            for kind in sorted(done.outputs):
                if kind.startswith("stem_"):
                    s = await client.download(job, kind, Path(tmp) / kind)
                    stem_files[kind[5:]] = (s.filename, s.path.read_bytes())
        return JobResult(job_id=job, report=done.report, master=master, master_name=got.filename,
                         stems=stem_files, first_audio_s=first_audio)


def decode_for_plot(data: bytes, name: str, max_points: int = 2_000_000) -> Optional[tuple[np.ndarray, int]]:
    """Mono float32 samples and rate of an audio file's bytes, for plotting (soundfile, else PyAV);
    None when neither can read it. Long files are decimated to about ``max_points`` samples."""
    mono, sr = None, None
    try:
        import soundfile as sf

        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        mono = x.mean(axis=1)
    except Exception:
        try:
            import av

            with av.open(io.BytesIO(data)) as container:
                stream = container.streams.audio[0]
                resampler = av.AudioResampler(format="flt", layout="mono")
                parts = []
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        parts.append(out.to_ndarray().reshape(-1))
                sr = stream.rate
                mono = np.concatenate(parts) if parts else None
        except Exception:
            return None
    if mono is None or not len(mono):
        return None
    step = max(1, len(mono) // max_points)
    return np.ascontiguousarray(mono[::step], dtype=np.float32), int(sr // step)


def comparison_figure(before: Optional[tuple], after: Optional[tuple]):
    """Waveforms (top) and spectrograms (bottom) of before/after, as one matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 5), sharex="col")
    for col, (title, sig) in enumerate((("Before", before), ("After", after))):
        wave_ax, spec_ax = axes[0, col], axes[1, col]
        wave_ax.set_title(title)
        if sig is None:
            wave_ax.text(0.5, 0.5, "cannot decode", ha="center", va="center", transform=wave_ax.transAxes)
            continue
        x, sr = sig
        t = np.arange(len(x)) / sr
        wave_ax.plot(t, x, linewidth=0.3, color="#f0a040" if col else "#7f9bb3")
        wave_ax.set_ylim(-1, 1)
        spec_ax.specgram(x, NFFT=1024, Fs=sr, noverlap=512, cmap="magma", vmin=-120, vmax=-10)
        spec_ax.set_ylabel("Hz")
        spec_ax.set_xlabel("s")
    fig.tight_layout()
    return fig


def _metric_row(st, title: str, m: dict) -> None:
    st.caption(title)
    c1, c2, c3, c4 = st.columns(4)
    fmt = lambda v, spec, unit: "–" if v is None else f"{v:{spec}} {unit}"  # noqa: E731
    c1.metric("Duration", fmt(m.get("duration_s"), ".1f", "s"))
    c2.metric("SNR", fmt(m.get("snr_db"), ".1f", "dB"))
    c3.metric("Loudness", fmt(m.get("integrated_lufs"), ".1f", "LUFS"))
    c4.metric("Brightness", fmt(m.get("spectral_centroid_hz"), ".0f", "Hz"))


def main() -> None:
    import streamlit as st

    st.title("Resonate: Live Music Reconstruction")
    st.caption("Transform phone recordings of concerts into studio quality")
    server = st.sidebar.text_input("Gateway", os.environ.get("RESONATE_SERVER", DEFAULT_SERVER))
    token = st.sidebar.text_input("Token", os.environ.get("RESONATE_TOKEN", ""), type="password") or None

    # Step 1: upload
    uploaded = st.file_uploader("Upload phone recording", type=["mp3", "m4a", "wav", "flac", "ogg"])
    if uploaded is None:
        st.info("Choose a recording to begin.")
        return
    data = uploaded.getvalue()
    if st.session_state.get("original", (None,))[0] != uploaded.name:
        st.session_state.pop("result", None)  # results belong to the previous recording
    st.audio(data)
    reference = st.file_uploader("Reference (optional)", type=["mp3", "m4a", "wav", "flac", "ogg"], key="reference",
                                 help="A studio version of the song, or a record you like: the result is matched "
                                      "to its tonal balance, stereo width and loudness.")
    st.caption("Reference (optional): a studio version of the song or a record you like; the result is matched "
               "to its tonal balance, width and loudness.")

    # Step 2: settings
    st.divider()
    st.subheader("Processing Settings")
    preset = st.selectbox("Preset", PRESETS, index=PRESETS.index("balanced"))
    quality = st.radio("Quality", ["Preview (fast)", "Render (best)"], horizontal=True)
    with st.expander("Advanced Settings"):
        own_nr = st.checkbox("Set noise reduction for every stem (else the preset's)")
        noise_reduction = st.slider("Noise Reduction", 0.0, 1.0, 0.5, disabled=not own_nr)
        own_eq = st.checkbox("Set EQ intensity for every stem (else the preset's)")
        eq_intensity = st.slider("EQ Intensity", 0.0, 1.0, 0.7, disabled=not own_eq)
        fmt = st.selectbox("File format", ["wav", "flac", "mp3"], key="format")
        depth = st.selectbox("Bit depth", [24, 16] + ([32] if fmt == "wav" else []), key="bit_depth")
        want_stems = st.checkbox("Also export the stems", key="stems")
    settings = job_settings(preset, "render" if quality.startswith("Render") else "preview",
                            noise_reduction if own_nr else None, eq_intensity if own_eq else None)

    # Step 3: process
    if st.button("Process Audio", type="primary", key="process"):
        st.session_state.pop("result", None)
        bars = {s: st.progress(0.0, text=s) for s in STAGES}
        notes = st.empty()

        def on_event(ev) -> None:
            if isinstance(ev, Progress) and ev.stage in bars and ev.total:
                bars[ev.stage].progress(min(1.0, ev.done / ev.total), text=f"{ev.stage}: {ev.done:.1f} / {ev.total:.1f} s")
            elif isinstance(ev, Info):
                notes.caption(ev.message)

        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / Path(uploaded.name).name
            src.write_bytes(data)
            ref = None
            if reference is not None:
                (Path(tmp) / "reference").mkdir()
                ref = Path(tmp) / "reference" / Path(reference.name).name
                ref.write_bytes(reference.getvalue())
            try:
                result = asyncio.run(restore(server, token, src, settings, {"format": fmt, "bit_depth": int(depth)},
                                             stems=want_stems, on_event=on_event, reference=ref))
            except ProtocolError as exc:
                st.error(f"Processing failed [{exc.code}]: {exc.message}")
                return
        st.session_state["result"] = result
        st.session_state["original"] = (uploaded.name, data)

    result: Optional[JobResult] = st.session_state.get("result")
    if result is None:
        return

    # Step 4: results
    st.success("✅ Processing complete!")
    st.subheader("Results")
    rep = result.report
    _metric_row(st, "Before", rep.get("metrics_before") or {})
    _metric_row(st, "After", rep.get("metrics_after") or {})
    sep = (rep.get("separation") or {}).get("separator", "?")
    ttfa = f"; first audio after {result.first_audio_s:.1f} s" if result.first_audio_s is not None else ""
    st.caption(f"separator: {sep}{ttfa}")
    if isinstance(rep.get("reference"), dict):
        st.caption(f"matched to the reference {rep['reference'].get('name', '?')}")
    made_by = rep.get("made_by") or {}
    if made_by.get("generative"):  # a generated file can never be mistaken for a restoration
        st.warning(f"This output is {made_by.get('label')}: {made_by.get('summary')}")
    col1, col2 = st.columns(2)
    with col1:
        st.caption("Before")
        st.audio(data)
    with col2:
        st.caption("After")
        st.audio(result.master, format=MIME.get(Path(result.master_name).suffix.lstrip("."), "audio/wav"))
    st.subheader("Waveform and Frequency Content")
    st.pyplot(comparison_figure(decode_for_plot(data, uploaded.name),
                                decode_for_plot(result.master, result.master_name)))

    # Step 5: export
    st.subheader("Export")
    ext = Path(result.master_name).suffix.lstrip(".")
    st.download_button("Download restored master", result.master, file_name=result.master_name,
                       mime=MIME.get(ext, "application/octet-stream"), key="download_master")
    for name, (filename, blob) in result.stems.items():
        st.download_button(f"Download {name} stem", blob, file_name=filename, key=f"download_{name}")


main()
