"""Events of a real job that streaming clients rely on: the early input analysis,
and stems streamed alongside the preview (same length, the very stems written to disk)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from resonate_stream.events import AudioChunk, Finished, InfoEvent
from resonate_stream.runner import OutputSpec, check_outputs, run_job
from resonate_stream.settings import Settings
from resonate_stream.sources import FileSource
from audio_fixtures import write_sf
from demucs_fixtures import music_mix

SR = 44100


@pytest.fixture(scope="module")
def streamed_job(tmp_path_factory):
    d = tmp_path_factory.mktemp("job")
    src = write_sf(d / "clip.wav", music_mix(4.0, seed=11) * 0.5, SR, subtype="FLOAT")
    settings = Settings.from_preset("balanced", {"separation": {"separator": "dsp"}, "export": {"bit_depth": 32}})
    outputs = OutputSpec(d / "out.wav", stems_dir=d / "stems", stream_stems=True)
    check_outputs(outputs)
    events: list = []
    run_job(FileSource(src), settings, outputs, emit=events.append)
    return events, outputs


def test_streamed_stems_match_the_preview_blocks_and_the_stem_files(streamed_job):
    events, outputs = streamed_job
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert len(chunks) > 2
    for c in chunks:
        assert set(c.stems) == {"vocals", "drums", "bass", "other"}
        for v in c.stems.values():
            assert v.shape == c.audio.shape  # every block carries its own stems, sample for sample
    done = next(e for e in events if isinstance(e, Finished))
    for name in ("vocals", "drums", "bass", "other"):
        streamed = np.concatenate([c.stems[name] for c in chunks], axis=1)
        on_disk, sr = sf.read(done.outputs[f"stem_{name}"], dtype="float32", always_2d=True)
        assert sr == SR
        np.testing.assert_array_equal(streamed, on_disk.T)


def test_input_analysis_comes_before_the_audio_and_agrees_with_the_report(streamed_job):
    events, _ = streamed_job
    first_audio = next(i for i, e in enumerate(events) if isinstance(e, AudioChunk))
    found = [(i, e) for i, e in enumerate(events) if isinstance(e, InfoEvent) and e.data.get("kind") == "input_analysis"]
    assert len(found) == 1
    i, info = found[0]
    assert i < first_audio
    data = info.data
    assert data["duration_s"] == pytest.approx(4.0, abs=1e-3)
    assert data["partial"] is False and data["analysed_s"] == pytest.approx(4.0, abs=1e-3)  # a short clip: all of it
    assert len(data["band_limits_hz"]) == 2 and data["band_limits_hz"][0] < data["band_limits_hz"][1]
    assert info.message.startswith("input: 4.0 s, SNR ")
    report = next(e for e in events if isinstance(e, Finished)).report
    assert data["metrics"] == report["metrics_before"]  # the same measurement, sent early


def test_provenance_is_announced_before_the_audio_and_written_into_every_file(streamed_job):
    events, outputs = streamed_job
    first_audio = next(i for i, e in enumerate(events) if isinstance(e, AudioChunk))
    found = [(i, e) for i, e in enumerate(events) if isinstance(e, InfoEvent) and e.data.get("kind") == "provenance"]
    assert len(found) == 1 and found[0][0] < first_audio
    assert found[0][1].data["provenance"]["kind"] == "restored" and found[0][1].message == "output: restored"
    done = next(e for e in events if isinstance(e, Finished))
    assert done.report["provenance"] == "restored" and done.report["made_by"]["generative"] is False
    for kind, path in done.outputs.items():
        if kind == "master" or kind.startswith("stem_"):
            meta = sf.SoundFile(path).copy_metadata()
            assert meta["comment"] == "[restored] restored" and "copyright" not in meta, kind
    assert sf.SoundFile(done.outputs["stem_vocals"]).copy_metadata()["title"] == "clip (vocals)"
