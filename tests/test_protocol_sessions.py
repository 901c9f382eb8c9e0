"""The sans-I/O sessions of resonate_protocol, driven message by message with no socket:
hello first, auth, the ack window, upload order and size, resume and seq gaps, fetch
offsets, errors; plus, over a real socket, what cancelling an ended job answers."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest

import resonate_protocol as P
from resonate_protocol import ErrorCode as E
from resonate_stream.gateway.server import GatewayServer
from test_gateway_support import GainBackend, RawClient, make_signal

JOB = "0123456789abcdef0123456789abcdef"
LIMITS = P.Limits(max_frame_bytes=64 * 1024, max_chunk_bytes=1024, max_upload_bytes=4096, max_ack_window=8)


def server(**kw) -> P.ServerSession:
    return P.ServerSession(LIMITS, server_name="test/1", features=("resume", "ack"), **kw)


def replies(s: P.ServerSession) -> list:
    return [P.decode_server_message(f) for f in s.data_to_send()]


def opened(ack_window: int = 0, **kw) -> P.ServerSession:
    s = server(**kw)
    events = s.receive_frame(P.encode(P.Hello(client="t", ack_window=ack_window)))
    assert [type(e) for e in events] == [P.Opened]
    (welcome,) = replies(s)
    assert isinstance(welcome, P.Welcome) and welcome.limits == LIMITS.to_dict()
    assert welcome.features == ("resume", "ack")
    return s


def the_error(msgs: list, code: str) -> P.Error:
    (err,) = msgs
    assert isinstance(err, P.Error) and err.code == code, err
    return err


# --------------------------------------------------------------------------- #
# ServerSession: the handshake
# --------------------------------------------------------------------------- #

def test_anything_before_hello_is_fatal_and_ends_the_session():
    s = server()
    assert s.receive_frame(P.encode(P.Ping(data=1))) == []
    err = the_error(replies(s), E.HANDSHAKE_REQUIRED)
    assert err.fatal
    assert s.close == P.Close(1008, E.HANDSHAKE_REQUIRED)
    assert s.receive_frame(P.encode(P.Hello())) == [] and replies(s) == []  # nothing more once closed


def test_an_ack_window_above_the_limit_is_a_fatal_bad_field():
    s = server()
    s.receive_frame(msgpack.packb({"type": "hello", "v": 1, "ack_window": 9}))  # max_ack_window is 8
    err = the_error(replies(s), E.BAD_FIELD)
    assert err.fatal and "ack_window" in err.message
    assert s.close == P.Close(1002, E.BAD_FIELD)


def test_the_auth_hook_decides_and_a_refusal_is_fatal():
    seen = []
    s = server(authorize=lambda hello: seen.append(hello.token) or hello.token == "right-token")
    s.receive_frame(P.encode(P.Hello(token="wrong")))
    assert the_error(replies(s), E.UNAUTHORIZED).fatal
    assert s.close == P.Close(1008, E.UNAUTHORIZED) and seen == ["wrong"]
    ok = server(authorize=lambda hello: hello.token == "right-token")
    assert [type(e) for e in ok.receive_frame(P.encode(P.Hello(token="right-token")))] == [P.Opened]


def test_hello_timeout_is_fatal():
    s = server()
    s.hello_timeout(10)
    assert the_error(replies(s), E.HANDSHAKE_REQUIRED).fatal and s.close.code == 1008


def test_second_hello_ping_and_requests():
    s = opened()
    assert s.receive_frame(P.encode(P.Hello())) == []
    assert not the_error(replies(s), E.UNEXPECTED_MESSAGE).fatal
    assert s.receive_frame(P.encode(P.Ping(data="x"))) == []
    assert replies(s) == [P.Pong(data="x")]
    start = P.StartJob(input=P.PathInput(path="a.wav"), ref="r1")
    assert s.receive_frame(P.encode(start)) == [start]  # the application carries requests out
    s.accept_job(JOB, "r1")
    assert replies(s) == [P.JobAccepted(job_id=JOB, ref="r1")]
    assert s.close is None


def test_too_many_bad_frames_end_the_connection_after_answering_each():
    s = opened(max_errors=2)
    for _ in range(2):
        s.receive_frame(b"\xc1")
        assert the_error(replies(s), E.MALFORMED_FRAME)
        assert s.close is None
    s.receive_frame(b"\xc1")
    first, last = replies(s)
    assert first.code == E.MALFORMED_FRAME and last.code == E.TOO_MANY_ERRORS and last.fatal
    assert s.close == P.Close(1002, E.TOO_MANY_ERRORS)


def test_failed_requests_carry_the_job_or_the_ref():
    s = opened()
    s.request_failed(P.Resume(job_id=JOB), P.ProtocolError("no such job", code=E.UNKNOWN_JOB, job_id=JOB))
    err = the_error(replies(s), E.UNKNOWN_JOB)
    assert err.job_id == JOB and err.ref is None and not err.fatal

    class EngineError(Exception):  # anything with a code and a message
        code = "bad_settings"
        message = "no preset 'concert'"

    s.request_failed(P.StartJob(input=P.PathInput(path="a"), ref="r7"), EngineError())
    err = the_error(replies(s), "bad_settings")
    assert err.ref == "r7" and err.job_id is None


def test_a_malformed_upload_chunk_names_its_job():
    s = opened()
    frame = msgpack.packb({"type": "upload_chunk", "v": 1, "job_id": JOB, "index": 0, "data": "not bytes"})
    (ev,) = s.receive_frame(frame)
    assert isinstance(ev, P.UploadBroken) and ev.job_id == JOB and ev.error.code == E.BAD_FIELD
    assert replies(s) == []  # the application fails the job (or answers, for a path job)
    big = P.encode(P.UploadChunk(job_id=JOB, index=0, data=b"x" * 2000))
    (ev,) = s.receive_frame(big)
    assert isinstance(ev, P.UploadBroken) and ev.error.code == E.CHUNK_TOO_LARGE


# --------------------------------------------------------------------------- #
# ServerSession: the ack window
# --------------------------------------------------------------------------- #

def _send_all(s: P.ServerSession, job: str, available: int) -> list[int]:
    out = []
    while (seq := s.next_audio_seq(job, available)) is not None:
        out.append(seq)
    return out


def test_without_acks_everything_available_goes():
    s = opened(ack_window=0)
    s.accept_job(JOB, None)
    assert _send_all(s, JOB, 5) == [0, 1, 2, 3, 4]
    assert s.sent_all(JOB, 5) and not s.sent_all(JOB, 6)
    assert _send_all(s, "other", 5) == []  # a job not followed gets nothing


def test_at_most_ack_window_unacknowledged_audio_messages():
    s = opened(ack_window=2)
    s.accept_job(JOB, None)
    replies(s)
    assert _send_all(s, JOB, 10) == [0, 1]  # seq <= last_acked + N, last_acked = -1
    assert s.receive_frame(P.encode(P.Ack(job_id=JOB, seq=0))) == [P.WindowOpened(JOB)]
    assert _send_all(s, JOB, 10) == [2]
    assert s.receive_frame(P.encode(P.Ack(job_id=JOB, seq=0))) == []  # an old ack changes nothing
    # an ack of seqs not sent yet counts only up to the last one sent
    assert s.receive_frame(P.encode(P.Ack(job_id=JOB, seq=9))) == [P.WindowOpened(JOB)]
    assert _send_all(s, JOB, 10) == [3, 4]
    assert replies(s) == []  # acks are not answered


def test_resume_follows_from_seq_and_the_window_starts_there():
    s = opened(ack_window=3)
    s.accept_resume(P.Resume(job_id=JOB, from_seq=5))
    assert replies(s) == [P.JobAccepted(job_id=JOB, resumed_from=5)]
    assert _send_all(s, JOB, 20) == [5, 6, 7]
    s.unfollow(JOB)
    assert not s.following(JOB) and s.next_audio_seq(JOB, 20) is None


# --------------------------------------------------------------------------- #
# UploadState: order and sizes
# --------------------------------------------------------------------------- #

def _chunk(i: int, n: int) -> P.UploadChunk:
    return P.UploadChunk(job_id=JOB, index=i, data=b"x" * n)


def test_upload_chunks_in_order_then_a_matching_end():
    u = P.UploadState(LIMITS, declared_size=30)
    assert u.chunk(_chunk(0, 10)) == b"x" * 10
    u.chunk(_chunk(1, 20))
    assert u.end(P.UploadEnd(job_id=JOB, chunks=2, size=30)) is True
    assert u.end(P.UploadEnd(job_id=JOB, chunks=2, size=30)) is False  # a repeat: ignored
    with pytest.raises(P.ProtocolError) as err:
        u.chunk(_chunk(2, 1))
    assert err.value.code == E.BAD_UPLOAD and "after upload_end" in err.value.message


@pytest.mark.parametrize("chunks,end,code", [
    ([(1, 10)], None, E.BAD_UPLOAD),  # the first chunk must be 0
    ([(0, 10), (0, 10)], None, E.BAD_UPLOAD),  # a repeated index
    ([(0, 20), (1, 20)], None, E.BAD_UPLOAD),  # more than the declared 30 bytes
    ([(0, 10)], P.UploadEnd(job_id=JOB, chunks=2), E.BAD_UPLOAD),  # end counts another chunk
    ([(0, 10)], P.UploadEnd(job_id=JOB, size=10), E.BAD_UPLOAD),  # fewer bytes than declared in start_job
])
def test_broken_uploads_fail_with_their_code(chunks, end, code):
    u = P.UploadState(LIMITS, declared_size=30)
    with pytest.raises(P.ProtocolError) as err:
        for i, n in chunks:
            u.chunk(_chunk(i, n))
        u.end(end)
    assert err.value.code == code and err.value.job_id == JOB


def test_an_upload_larger_than_the_server_takes():
    u = P.UploadState(LIMITS)  # no declared size: the server's limit (4096 bytes) still holds
    for i in range(4):
        u.chunk(_chunk(i, 1024))
    with pytest.raises(P.ProtocolError) as err:
        u.chunk(_chunk(4, 1))
    assert err.value.code == E.UPLOAD_TOO_LARGE


# --------------------------------------------------------------------------- #
# fetch checks
# --------------------------------------------------------------------------- #

def test_fetch_targets_and_offsets():
    assert P.check_fetch_target(JOB, "stem_vocals", LIMITS) == P.Fetch(job_id=JOB, kind="stem_vocals")
    for job, kind in ((JOB, "../master"), ("a/b", "master"), (JOB, "")):
        with pytest.raises(P.ProtocolError) as err:
            P.check_fetch_target(job, kind, LIMITS)
        assert err.value.code == E.BAD_FIELD
    P.check_range(100, 100, "gig.wav")  # offset == size: one empty eof piece
    with pytest.raises(P.ProtocolError) as err:
        P.check_range(101, 100, "gig.wav", ref="f1")
    assert err.value.code == E.BAD_RANGE and err.value.ref == "f1"


# --------------------------------------------------------------------------- #
# ClientSession
# --------------------------------------------------------------------------- #

def welcome_frame(**limits) -> bytes:
    return P.encode(P.Welcome(server="s", limits={**P.Limits().to_dict(), **limits}, features=("resume",)))


def client(ack_window: int = 0) -> P.ClientSession:
    c = P.ClientSession(client_name="t", ack_window=ack_window)
    hello = P.decode_client_message(c.hello())
    assert hello == P.Hello(client="t", ack_window=ack_window)
    (w,) = c.receive_frame(welcome_frame(max_chunk_bytes=2048))
    assert isinstance(w, P.Welcome) and c.limits.max_chunk_bytes == 2048
    return c


def audio(seq: int, job: str = JOB) -> bytes:
    return P.encode_audio(job, seq, seq * 2, 44100, np.zeros((2, 2), np.float32))


def test_client_says_hello_first_and_waits_for_welcome():
    c = P.ClientSession()
    with pytest.raises(P.ConnectionLost):
        c.start_job(P.PathInput(path="a"))  # nothing but hello before welcome
    c.hello()
    with pytest.raises(P.ProtocolError):
        c.hello()
    (ev,) = c.receive_frame(audio(0))
    assert isinstance(ev, P.BadFrame) and ev.error.code == E.UNEXPECTED_MESSAGE
    (err,) = c.receive_frame(P.encode(P.Error(code=E.UNAUTHORIZED, message="no", fatal=True)))
    assert isinstance(err, P.Error) and c.state == "closed"


def test_client_detects_seq_gaps_and_duplicates():
    c = client()
    ref, frame = c.start_job(P.PathInput(path="a"), {"preset": "balanced"})
    assert P.decode_client_message(frame).ref == ref
    c.job_accepted(JOB)
    assert isinstance(c.receive_frame(audio(0))[0], P.Audio)
    (gap,) = c.receive_frame(audio(2))
    assert isinstance(gap, P.SequenceBroken) and gap.error.code == E.BAD_SEQUENCE and gap.ref is None
    (dup,) = c.receive_frame(audio(0))
    assert isinstance(dup, P.SequenceBroken)
    assert isinstance(c.receive_frame(audio(1))[0], P.Audio)
    assert c.next_seq(JOB) == 2


def test_client_resumes_from_the_next_seq_not_received():
    c = client()
    c.job_accepted(JOB)
    for seq in range(3):
        c.receive_frame(audio(seq))
    c.connection_lost()
    c.reconnected()
    c.hello()
    c.receive_frame(welcome_frame())
    from_seq, frame = c.resume(JOB)
    assert from_seq == 3 and P.decode_client_message(frame) == P.Resume(job_id=JOB, from_seq=3)
    assert isinstance(c.receive_frame(audio(3))[0], P.Audio)
    from_seq, _ = c.resume(JOB, from_seq=0)  # start over: seq 0 is expected again
    assert isinstance(c.receive_frame(audio(0))[0], P.Audio)
    c.receive_frame(P.encode(P.JobDone(job_id=JOB)))
    assert c.ended(JOB)


def test_client_acks_only_with_an_ack_window():
    assert client(ack_window=0).ack(JOB, 3) is None
    assert P.decode_client_message(client(ack_window=4).ack(JOB, 3)) == P.Ack(job_id=JOB, seq=3)


def test_client_checks_download_pieces_are_contiguous():
    c = client()
    ref, frame = c.fetch(JOB, "master", offset=4)
    assert P.decode_client_message(frame) == P.Fetch(job_id=JOB, kind="master", offset=4, ref=ref)

    def piece(offset: int, data: bytes, size: int = 10, r: str = ref) -> bytes:
        return P.encode(P.FileChunk(job_id=JOB, kind="master", offset=offset, data=data, size=size,
                                    eof=offset + len(data) == size, filename="m.wav", mime="audio/wav", ref=r))

    assert isinstance(c.receive_frame(piece(4, b"ab"))[0], P.FileChunk)
    (bad,) = c.receive_frame(piece(7, b"c"))  # byte 6 expected
    assert isinstance(bad, P.SequenceBroken) and bad.ref == ref and bad.error.code == E.BAD_SEQUENCE
    assert c.receive_frame(piece(6, b"cd")) == []  # the broken download was dropped
    ref2, _ = c.fetch(JOB, "master", offset=6)
    assert isinstance(c.receive_frame(piece(6, b"cdef", r=ref2))[0], P.FileChunk)  # eof: done
    assert c.receive_frame(piece(6, b"cdef", r=ref2)) == []  # late duplicates of an ended download
    ref3, _ = c.fetch(JOB, "master")
    c.forget_fetch(ref3)
    assert c.receive_frame(piece(0, b"x", r=ref3)) == []  # a download given up on
    ref4, _ = c.fetch(JOB, "report")
    (err,) = c.receive_frame(P.encode(P.Error(code=E.UNKNOWN_OUTPUT, message="none", ref=ref4)))
    assert isinstance(err, P.Error) and not c.ended(JOB)  # a failed fetch does not end the job


def test_client_reports_bad_server_frames_and_goes_on():
    c = client()
    (ev,) = c.receive_frame(b"\x93\x01\x02\x03")
    assert isinstance(ev, P.BadFrame) and ev.error.code == E.MALFORMED_FRAME
    assert c.state == "open"


# --------------------------------------------------------------------------- #
# layers
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("module,forbidden", [
    ("resonate_protocol", ("engine", "resonate_stream", "clients", "asyncio", "socket", "websockets")),
    ("clients.stream_cli", ("engine", "resonate_stream", "ray", "torch")),
    ("clients.python_client", ("engine", "resonate_stream", "ray", "torch")),
])
def test_the_protocol_and_the_clients_import_nothing_of_the_server(module, forbidden):
    code = (f"import sys, {module}; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(forbidden)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


# --------------------------------------------------------------------------- #
# cancelling an ended job answers (real socket)
# --------------------------------------------------------------------------- #

async def test_cancel_of_an_ended_job_says_it_already_ended(tmp_path):
    srv = GatewayServer("127.0.0.1", 0, backend=GainBackend(), spool_dir=tmp_path / "spool", ping_interval_s=None,
                        limits=P.Limits(max_frame_bytes=P.MiB, max_chunk_bytes=512 * 1024))
    await srv.start()
    c = await RawClient.connect(srv.url)
    try:
        x = make_signal(0.5, 44100)
        job = await c.start_upload_job(x, 44100)
        await c.upload(job, P.audio_to_bytes(x), [])
        _, term = await c.collect(job)
        assert isinstance(term, P.JobDone)
        await c.send(P.Cancel(job_id=job))
        err = await c.recv()
        assert isinstance(err, P.Error) and err.code == E.JOB_ENDED, err
        assert job in err.message and "done" in err.message
        assert err.job_id is None and not err.fatal  # not the job's last message: that was job_done
        await c.send(P.Ping(data=1))
        assert await c.recv() == P.Pong(data=1)  # the connection goes on
    finally:
        await c.close()
        await asyncio.wait_for(srv.close(), 15)
