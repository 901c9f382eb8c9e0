"""The sans-I/O protocol: every message round-trips, every malformed frame gets its code,
and the byte-level examples in docs/protocol.md decode as the document says."""
from __future__ import annotations

import re
from pathlib import Path

import msgpack
import numpy as np
import pytest

import resonate_protocol as P
from resonate_protocol import ErrorCode as E

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
JOB = "0123456789abcdef0123456789abcdef"


def _client_messages() -> list[P.Message]:
    return [
        P.Hello(),
        P.Hello(client="test/1.0", token="tok-123456", ack_window=16),
        P.StartJob(input=P.PathInput(path="/music/gig.wav")),
        P.StartJob(
            input=P.UploadInput(format="pcm_s16le", sample_rate=48000, channels=2, filename="gig.raw", size=1000),
            settings={"preset": "concert", "overrides": {"denoise": {"strength": 0.5}, "bands": [1, 2.5, None]}},
            options=P.JobOptions(send_stems=True, output=P.OutputOptions(format="flac", bit_depth=16, sample_rate=48000)),
            ref="r1",
        ),
        P.StartJob(input=P.UploadInput(format="encoded", filename="gig.m4a")),
        P.UploadChunk(job_id=JOB, index=0, data=b"\x00\x01" * 100),
        P.UploadChunk(job_id=JOB, index=7, data=b""),
        P.UploadEnd(job_id=JOB),
        P.UploadEnd(job_id=JOB, chunks=8, size=200),
        P.Cancel(job_id=JOB),
        P.Resume(job_id=JOB, from_seq=12),
        P.Ack(job_id=JOB, seq=11),
        P.Ping(),
        P.Ping(data=42),
        P.Ping(data="hello"),
        P.Fetch(job_id=JOB, kind="master"),
        P.Fetch(job_id=JOB, kind="stem_vocals", offset=262144, ref="f1"),
    ]


def _server_messages() -> list[P.Message]:
    block = np.linspace(-1, 1, 2 * 300, dtype=np.float32).reshape(2, 300)
    return [
        P.Welcome(server="resonate-gateway/0.1", limits=P.Limits().to_dict(), features=("resume", "ack")),
        P.JobAccepted(job_id=JOB, ref="r1"),
        P.JobAccepted(job_id=JOB, resumed_from=5),
        P.Queued(job_id=JOB, position=3, waiting=7),
        P.Queued(job_id=JOB, position=0),
        P.Progress(job_id=JOB, stage="separate", done=12.5, total=7200.0),
        P.Progress(job_id=JOB, stage="decode", done=3.0),
        P.Info(job_id=JOB, message="separator: hpss", data={"weights": False}),
        P.Info(job_id=None, message="server note"),
        P.make_audio(JOB, 3, 132300, 44100, block),
        P.make_audio(JOB, 4, 132600, 44100, block, stems={"vocals": block * 0.5, "other": block * 0.5}),
        P.JobDone(job_id=JOB, report={"lufs": -14.0, "separator": "htdemucs"}, outputs={"mix": "/out/mix.wav"}),
        P.JobDone(job_id=JOB, outputs={"master": "/out/gig.wav"},
                  provenance={"kind": "AI-generated", "generative": True, "models": [{"name": "JASCO"}]}),
        P.Error(code="not_audio", message="not audio", job_id=JOB),
        P.Error(code="unauthorized", message="wrong token", fatal=True, ref="r2"),
        P.Pong(data=42),
        P.FileChunk(job_id=JOB, kind="master", offset=0, data=b"RIFF", size=10, eof=False,
                    filename="gig.restored.wav", mime="audio/wav", ref="f1"),
        P.FileChunk(job_id=JOB, kind="master", offset=4, data=b"\x00" * 6, size=10, eof=True,
                    filename="gig.restored.wav", mime="audio/wav"),
    ]


@pytest.mark.parametrize("msg", _client_messages(), ids=lambda m: m.TYPE)
def test_client_messages_round_trip(msg):
    frame = P.encode(msg)
    assert isinstance(frame, bytes)
    assert P.decode_client_message(frame) == msg


@pytest.mark.parametrize("msg", _server_messages(), ids=lambda m: m.TYPE)
def test_server_messages_round_trip(msg):
    assert P.decode_server_message(P.encode(msg)) == msg


def test_every_message_type_is_covered():
    assert {m.TYPE for m in _client_messages()} == set(P.CLIENT_MESSAGES)
    assert {m.TYPE for m in _server_messages()} == set(P.SERVER_MESSAGES)


def test_audio_bytes_are_interleaved_float32_le():
    block = np.array([[0.5, -0.25, 0.125], [1.0, 0.0, -1.0]], dtype=np.float32)  # (2 channels, 3 frames)
    data = P.audio_to_bytes(block)
    assert data == np.array([0.5, 1.0, -0.25, 0.0, 0.125, -1.0], dtype="<f4").tobytes()
    msg = P.decode_server_message(P.encode_audio(JOB, 0, 0, 44100, block))
    assert (msg.channels, msg.frames, msg.format) == (2, 3, "f32le")
    out = P.decode_audio(msg)
    assert out.dtype == np.float32 and out.shape == (2, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, block)


def test_audio_round_trip_is_bit_exact_with_stems():
    rng = np.random.default_rng(1)
    block = rng.standard_normal((2, 4410)).astype(np.float32)
    stems = {name: rng.standard_normal((2, 4410)).astype(np.float32) for name in ("vocals", "drums", "bass", "other")}
    msg = P.decode_server_message(P.encode_audio(JOB, 9, 44100, 44100, block, stems))
    assert (msg.seq, msg.offset, msg.sample_rate) == (9, 44100, 44100)
    np.testing.assert_array_equal(P.decode_audio(msg), block)
    got = P.decode_stems(msg)
    assert set(got) == set(stems)
    for k in stems:
        np.testing.assert_array_equal(got[k], stems[k])


# --------------------------------------------------------------------------- #
# malformed input
# --------------------------------------------------------------------------- #

def _pack(m) -> bytes:
    return msgpack.packb(m, use_bin_type=True)


def _base(t: str, **fields) -> dict:
    return {"type": t, "v": 1, **fields}


def _nested(depth: int) -> dict:
    d: dict = {}
    for _ in range(depth):
        d = {"x": d}
    return d


MALFORMED = [
    ("not msgpack", b"\xc1\xc1\xc1", E.MALFORMED_FRAME),
    ("truncated map", _pack(_base("ping"))[:-1], E.MALFORMED_FRAME),
    ("trailing bytes", _pack(_base("ping")) + b"\x00", E.MALFORMED_FRAME),
    ("array not map", _pack(["ping", 1]), E.MALFORMED_FRAME),
    ("empty frame", b"", E.MALFORMED_FRAME),
    ("text frame", "{'type': 'ping'}", E.MALFORMED_FRAME),
    ("int map keys", _pack({1: "x", "type": "ping", "v": 1}), E.MALFORMED_FRAME),
    ("ext type", _pack(_base("ping", data=msgpack.ExtType(5, b"abc"))), E.MALFORMED_FRAME),
    ("missing type", _pack({"v": 1}), E.MALFORMED_FRAME),
    ("type not str", _pack({"type": 3, "v": 1}), E.MALFORMED_FRAME),
    ("missing version", _pack({"type": "ping"}), E.BAD_FIELD),
    ("bool version", _pack({"type": "ping", "v": True}), E.BAD_FIELD),
    ("wrong version", _pack({"type": "ping", "v": 2}), E.UNSUPPORTED_VERSION),
    ("unknown type", _pack(_base("rm_rf")), E.UNKNOWN_MESSAGE),
    ("server type from client", _pack(_base("welcome", server="x")), E.UNKNOWN_MESSAGE),
    ("missing field", _pack(_base("cancel")), E.BAD_FIELD),
    ("wrong type str", _pack(_base("cancel", job_id=5)), E.BAD_FIELD),
    ("bad job id", _pack(_base("cancel", job_id="../../etc")), E.BAD_FIELD),
    ("bool as int", _pack(_base("resume", job_id=JOB, from_seq=True)), E.BAD_FIELD),
    ("negative seq", _pack(_base("ack", job_id=JOB, seq=-1)), E.BAD_FIELD),
    ("huge index", _pack(_base("upload_chunk", job_id=JOB, index=2**60, data=b"")), E.BAD_FIELD),
    ("data as str", _pack(_base("upload_chunk", job_id=JOB, index=0, data="abc")), E.BAD_FIELD),
    ("nil required", _pack(_base("upload_chunk", job_id=JOB, index=None, data=b"")), E.BAD_FIELD),
    ("chunk too large", _pack(_base("upload_chunk", job_id=JOB, index=0, data=b"x" * (P.MiB + 1))),
     E.CHUNK_TOO_LARGE),
    ("timestamp in settings", _pack(_base("start_job", input={"kind": "path", "path": "/a"},
                                          settings={"t": msgpack.Timestamp(1, 0)})), E.MALFORMED_FRAME),
    ("bytes in settings", _pack(_base("start_job", input={"kind": "path", "path": "/a"}, settings={"b": b"\x00"})),
     E.BAD_FIELD),
    ("nan in settings", _pack(_base("start_job", input={"kind": "path", "path": "/a"},
                                    settings={"overrides": {"g": float("nan")}})), E.BAD_FIELD),
    ("preset not str", _pack(_base("start_job", input={"kind": "path", "path": "/a"}, settings={"preset": 3})),
     E.BAD_FIELD),
    ("input missing", _pack(_base("start_job")), E.BAD_FIELD),
    ("input kind unknown", _pack(_base("start_job", input={"kind": "url", "url": "http://x"})), E.BAD_FIELD),
    ("pcm without rate", _pack(_base("start_job", input={"kind": "upload", "format": "pcm_f32le", "channels": 2})),
     E.BAD_FIELD),
    ("absurd sample rate", _pack(_base("start_job", input={"kind": "upload", "format": "pcm_f32le",
                                                           "sample_rate": 10**9, "channels": 2})), E.BAD_FIELD),
    ("absurd channels", _pack(_base("start_job", input={"kind": "upload", "format": "pcm_s16le",
                                                        "sample_rate": 44100, "channels": 1000})), E.BAD_FIELD),
    ("zero channels", _pack(_base("start_job", input={"kind": "upload", "format": "pcm_s16le",
                                                      "sample_rate": 44100, "channels": 0})), E.BAD_FIELD),
    ("unknown upload format", _pack(_base("start_job", input={"kind": "upload", "format": "pickle"})), E.BAD_FIELD),
    ("declared upload too large", _pack(_base("start_job", input={"kind": "upload", "format": "encoded",
                                                                  "size": 2**40})), E.UPLOAD_TOO_LARGE),
    ("bad bit depth", _pack(_base("start_job", input={"kind": "path", "path": "/a"},
                                  options={"output": {"bit_depth": 20}})), E.BAD_FIELD),
    ("bad output format", _pack(_base("start_job", input={"kind": "path", "path": "/a"},
                                      options={"output": {"format": "exe"}})), E.BAD_FIELD),
    ("path with NUL", _pack(_base("start_job", input={"kind": "path", "path": "/a\x00b"})), E.BAD_FIELD),
    ("ack window too big", _pack(_base("hello", ack_window=10**6)), E.BAD_FIELD),
    ("deeply nested settings", _pack(_base("start_job", input={"kind": "path", "path": "/a"},
                                           settings=_nested(40))), E.BAD_FIELD),
]


@pytest.mark.parametrize("name,frame,code", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_client_frames_raise_typed_errors(name, frame, code):
    with pytest.raises(P.ProtocolError) as info:
        P.decode_client_message(frame)
    assert info.value.code == code, info.value
    assert isinstance(info.value.code, str) and info.value.code  # typed, with a stable code
    assert info.value.message  # a message a person can act on


def test_frame_too_large_is_refused_before_unpacking():
    limits = P.Limits(max_frame_bytes=8192, max_chunk_bytes=4096)
    frame = P.encode(P.UploadChunk(job_id=JOB, index=0, data=b"x" * 9000))
    with pytest.raises(P.ProtocolError) as info:
        P.decode_client_message(frame, limits)
    assert info.value.code == E.FRAME_TOO_LARGE
    # the frame is refused unread, but its job is still named so the server can end that job
    assert info.value.job_id == JOB and info.value.msg_type == "upload_chunk"


def test_errors_name_the_job_when_readable():
    frame = _pack(_base("upload_chunk", job_id=JOB, index="zero", data=b""))
    with pytest.raises(P.ProtocolError) as info:
        P.decode_client_message(frame)
    assert info.value.job_id == JOB and info.value.msg_type == "upload_chunk"
    frame = _pack(_base("start_job", ref="r9", input={"kind": "nope"}))
    with pytest.raises(P.ProtocolError) as info:
        P.decode_client_message(frame)
    assert info.value.ref == "r9"


def test_unknown_extra_fields_are_ignored():
    frame = _pack(_base("cancel", job_id=JOB, future_field={"x": 1}))
    assert P.decode_client_message(frame) == P.Cancel(job_id=JOB)


def test_audio_with_wrong_data_length_is_refused():
    m = P.make_audio(JOB, 0, 0, 44100, np.zeros((2, 10), np.float32)).to_map()
    m["data"] = m["data"][:-4]
    with pytest.raises(P.ProtocolError) as info:
        P.decode_server_message(_pack(m))
    assert info.value.code == E.BAD_FIELD
    m = P.make_audio(JOB, 0, 0, 44100, np.zeros((2, 10), np.float32), {"vocals": np.zeros((2, 10))}).to_map()
    m["stems"]["vocals"] = b"\x00" * 8
    with pytest.raises(P.ProtocolError):
        P.decode_server_message(_pack(m))


def test_server_frames_are_checked_too():
    with pytest.raises(P.ProtocolError) as info:
        P.decode_server_message(_pack(_base("hello")))
    assert info.value.code == E.UNKNOWN_MESSAGE
    with pytest.raises(P.ProtocolError) as info:
        P.decode_server_message(_pack(_base("progress", job_id=JOB, stage="x", done=float("inf"))))
    assert info.value.code == E.BAD_FIELD


def test_limits_validate_and_round_trip():
    lim = P.Limits(max_frame_bytes=P.MiB, max_chunk_bytes=256 * 1024, max_upload_bytes=10, max_jobs=2)
    assert P.Limits.from_dict({**lim.to_dict(), "future": 1}) == lim
    with pytest.raises(ValueError):
        P.Limits(max_frame_bytes=P.MiB, max_chunk_bytes=P.MiB)


# --------------------------------------------------------------------------- #
# docs/protocol.md examples
# --------------------------------------------------------------------------- #

def _doc_frames() -> dict[str, bytes]:
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"<!-- example-frame: (\w+) -->\s*```hex\n(.*?)```", text, flags=re.S)
    return {name: bytes.fromhex(" ".join(body.split())) for name, body in found}


def test_doc_example_frames_decode_as_documented():
    frames = _doc_frames()
    assert set(frames) == {"hello", "audio"}

    hello = frames["hello"]
    assert len(hello) == 58
    expected_hello = P.Hello(client="demo", token="s3cret-token", ack_window=0)
    assert P.decode_client_message(hello) == expected_hello
    assert P.encode(expected_hello) == hello  # the document shows exactly what we send

    audio = frames["audio"]
    assert len(audio) == 118
    msg = P.decode_server_message(audio)
    assert isinstance(msg, P.Audio)
    assert (msg.job_id, msg.seq, msg.offset, msg.sample_rate, msg.channels, msg.frames, msg.stems) == (
        "7f3a9c", 0, 0, 44100, 2, 2, None)
    np.testing.assert_array_equal(P.decode_audio(msg), np.array([[0.5, -0.25], [1.0, 0.0]], np.float32))
    assert P.encode_audio("7f3a9c", 0, 0, 44100, P.decode_audio(msg)) == audio


def test_doc_lists_every_message_type_and_error_code():
    text = DOC.read_text(encoding="utf-8")
    for t in [*P.CLIENT_MESSAGES, *P.SERVER_MESSAGES]:
        assert f"### `{t}`" in text, t
    codes = [v for k, v in vars(E).items() if k.isupper()]
    internal_only = {E.BAD_SEQUENCE, E.CONNECTION_LOST}  # client-side codes, never on the wire
    for code in codes:
        if code not in internal_only:
            assert f"`{code}`" in text, code
    for key in P.Limits().to_dict():
        assert f"`{key}`" in text, key


def _file_chunk(**over) -> dict:
    m = _base("file_chunk", job_id=JOB, kind="master", offset=0, data=b"abcd", size=4, eof=True,
              filename="gig.wav", mime="audio/wav")
    m.update(over)
    return m


@pytest.mark.parametrize("over", [
    {"eof": False},  # the piece ends the file: eof must say so
    {"size": 8},  # eof true but bytes remain
    {"offset": 2},  # runs past the end
    {"filename": "../gig.wav"},  # a folder in a name a client saves under
    {"filename": "C:\\gig.wav"},
    {"filename": ".."},
    {"kind": "a/b"},
    {"data": "abcd"},  # str, not bin
])
def test_file_chunk_invariants_are_checked(over):
    with pytest.raises(P.ProtocolError) as err:
        P.decode_server_message(_pack(_file_chunk(**over)))
    assert err.value.code == E.BAD_FIELD


def test_fetch_fields_are_checked():
    for bad in ({"kind": ""}, {"kind": "x" * 65}, {"kind": "../master"}, {"offset": -1}, {"offset": True},
                {"job_id": "no/slash"}):
        m = _base("fetch", job_id=JOB, kind="master", offset=0)
        m.update(bad)
        with pytest.raises(P.ProtocolError) as err:
            P.decode_client_message(_pack(m))
        assert err.value.code == E.BAD_FIELD, bad


@pytest.mark.parametrize("shape", ["flat", "nested"])
def test_frames_of_millions_of_empty_maps_are_refused_while_unpacking(shape):
    """An 8 MiB ping of 8 M empty maps must not be built in memory (issue 10)."""
    head = b"\x83\xa4type\xa4ping\xa1v\x01\xa4data"
    if shape == "flat":
        n = 8_000_000
        frame = head + b"\xdd" + n.to_bytes(4, "big") + b"\x80" * n  # one array of 8 M maps
    else:
        inner = b"\xdc" + (60_000).to_bytes(2, "big") + b"\x80" * 60_000  # arrays below the length cap
        frame = head + b"\xdc" + (130).to_bytes(2, "big") + inner * 130
    limits = P.Limits(max_frame_bytes=16 * P.MiB)
    with pytest.raises(P.ProtocolError) as info:
        P.decode_client_message(frame, limits)
    assert info.value.code == E.MALFORMED_FRAME
    assert "max_array_len" in info.value.message or "maps and arrays" in info.value.message
