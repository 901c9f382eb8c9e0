"""``start_job.reference`` in the sans-I/O protocol: the reference's form, its own upload stream
(``stream: "reference"``) with its own order and size rules, and the client's checks."""
from __future__ import annotations

import msgpack
import pytest

import resonate_protocol as P
from resonate_protocol import ErrorCode as E

JOB = "0123456789abcdef0123456789abcdef"
LIMITS = P.Limits(max_frame_bytes=64 * 1024, max_chunk_bytes=1024, max_upload_bytes=4096,
                  max_reference_bytes=2048)


def decode(msg: P.Message) -> P.Message:
    return P.decode_client_message(P.encode(msg), LIMITS)


def raw(m: dict) -> P.Message:
    return P.decode_client_message(msgpack.packb({"v": 1, **m}, use_bin_type=True), LIMITS)


def test_start_job_carries_an_uploaded_or_a_server_reference():
    up = P.StartJob(input=P.PathInput(path="gig.wav"), ref="r",
                    reference=P.UploadInput(format="encoded", filename="studio.flac", size=2000))
    got = decode(up)
    assert got.reference == P.UploadInput(format="encoded", filename="studio.flac", size=2000)
    got = decode(P.StartJob(input=P.PathInput(path="gig.wav"), reference=P.PathInput(path="studio.wav")))
    assert got.reference == P.PathInput(path="studio.wav")
    assert decode(P.StartJob(input=P.PathInput(path="gig.wav"))).reference is None
    # format may be left out: a reference is always an encoded file
    got = raw({"type": "start_job", "input": {"kind": "path", "path": "a"},
               "reference": {"kind": "upload", "filename": "x.wav"}})
    assert got.reference.format == "encoded" and got.reference.size is None


@pytest.mark.parametrize("reference,code,where", [
    ({"kind": "upload", "format": "pcm_f32le", "sample_rate": 44100, "channels": 2}, E.BAD_FIELD, "format"),
    ({"kind": "upload", "size": 2049}, E.UPLOAD_TOO_LARGE, "size"),  # more than max_reference_bytes
    ({"kind": "stream"}, E.BAD_FIELD, "kind"),
    ("studio.wav", E.BAD_FIELD, "reference"),
])
def test_a_bad_reference_form_refuses_the_start_job_with_its_ref(reference, code, where):
    with pytest.raises(P.ProtocolError) as err:
        raw({"type": "start_job", "ref": "r7", "input": {"kind": "path", "path": "a"}, "reference": reference})
    assert err.value.code == code and err.value.ref == "r7" and where in err.value.message


def test_upload_chunks_name_their_stream_and_default_to_the_input():
    got = decode(P.UploadChunk(job_id=JOB, index=0, data=b"ab", stream="reference"))
    assert got.stream == "reference"
    assert raw({"type": "upload_chunk", "job_id": JOB, "index": 0, "data": b"ab"}).stream == "input"
    assert raw({"type": "upload_end", "job_id": JOB}).stream == "input"
    assert decode(P.UploadEnd(job_id=JOB, chunks=1, size=2, stream="reference")).stream == "reference"
    with pytest.raises(P.ProtocolError) as err:
        raw({"type": "upload_chunk", "job_id": JOB, "index": 0, "data": b"ab", "stream": "stems"})
    assert err.value.code == E.BAD_FIELD and err.value.job_id == JOB  # names the job: it fails


def test_a_malformed_reference_chunk_breaks_its_job_in_the_server_session():
    s = P.ServerSession(LIMITS, server_name="t")
    s.receive_frame(P.encode(P.Hello()))
    s.data_to_send()
    frame = msgpack.packb({"type": "upload_chunk", "v": 1, "job_id": JOB, "index": 0, "data": 3,
                           "stream": "reference"})
    (ev,) = s.receive_frame(frame)
    assert isinstance(ev, P.UploadBroken) and ev.job_id == JOB and ev.error.code == E.BAD_FIELD


def _chunk(i: int, n: int) -> P.UploadChunk:
    return P.UploadChunk(job_id=JOB, index=i, data=b"x" * n, stream="reference")


def test_the_reference_stream_has_its_own_size_limit():
    u = P.UploadState(LIMITS, stream="reference")  # 2048 bytes, not the input's 4096
    u.chunk(_chunk(0, 1024))
    u.chunk(_chunk(1, 1024))
    with pytest.raises(P.ProtocolError) as err:
        u.chunk(_chunk(2, 1))
    assert err.value.code == E.UPLOAD_TOO_LARGE and "reference" in err.value.message
    inp = P.UploadState(LIMITS)
    for i in range(3):
        inp.chunk(P.UploadChunk(job_id=JOB, index=i, data=b"x" * 1024))  # 3072 > 2048: fine for the input


def test_the_reference_stream_keeps_the_order_and_end_rules():
    u = P.UploadState(LIMITS, declared_size=30, stream="reference")
    with pytest.raises(P.ProtocolError) as err:
        u.chunk(_chunk(1, 10))
    assert err.value.code == E.BAD_UPLOAD
    u.chunk(_chunk(0, 30))
    assert u.end(P.UploadEnd(job_id=JOB, chunks=1, size=30, stream="reference")) is True
    v = P.UploadState(LIMITS, declared_size=30, stream="reference")
    v.chunk(_chunk(0, 10))
    with pytest.raises(P.ProtocolError) as err:
        v.end(P.UploadEnd(job_id=JOB, stream="reference"))
    assert err.value.code == E.BAD_UPLOAD


def _welcomed(features=("upload", "reference")) -> P.ClientSession:
    c = P.ClientSession()
    c.hello()
    c.receive_frame(P.encode(P.Welcome(server="t", limits=LIMITS.to_dict(), features=features)))
    return c


def test_the_client_sends_a_reference_only_to_a_server_that_does_it():
    inp, ref = P.PathInput(path="a.wav"), P.UploadInput(format="encoded", filename="s.wav", size=100)
    with pytest.raises(P.ProtocolError) as err:
        _welcomed(("upload",)).start_job(inp, reference=ref)  # an older server would ignore the field
    assert err.value.code == E.UNEXPECTED_MESSAGE
    c = _welcomed()
    _, frame = c.start_job(inp, reference=ref)
    assert P.decode_client_message(frame, LIMITS).reference == ref
    with pytest.raises(P.ProtocolError) as err:
        c.start_job(inp, reference=P.UploadInput(format="encoded", size=4000))
    assert err.value.code == E.UPLOAD_TOO_LARGE
    chunk = P.decode_client_message(c.upload_chunk(JOB, 0, b"abc", stream="reference"), LIMITS)
    assert chunk.stream == "reference" and chunk.data == b"abc"
    end = P.decode_client_message(c.upload_end(JOB, 1, 3, stream="reference"), LIMITS)
    assert (end.stream, end.chunks, end.size) == ("reference", 1, 3)


def test_old_limits_maps_without_max_reference_bytes_still_load():
    old = {k: v for k, v in LIMITS.to_dict().items() if k != "max_reference_bytes"}
    assert P.Limits.from_dict(old).max_reference_bytes == P.Limits().max_reference_bytes
