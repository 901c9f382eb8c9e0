"""Deterministic fuzz corpora (issue 10): odd and malformed audio files, and malformed protocol frames.

Used by tests/test_fuzz_corpus.py (a small slice, in the suite) and by
benchmarks/fuzz_report.py (the full run with counts).  Everything is
generated from a seed: the same ``n`` and ``seed`` give the same cases and
the same damage (only Ogg files differ between runs: libsndfile picks a random
stream serial number).

``audio_corpus(folder, n, seed)`` writes files and returns :class:`AudioCase`
rows; ``expect`` is ``"result"`` for a valid (if odd) recording that must be
restored, ``"refusal"`` for one that must be refused with a typed error, and
``"either"`` for random damage (decoding what survives is as good as a clean
refusal; a crash or a hang is never acceptable).

``frame_corpus(n, seed)`` returns :class:`FrameCase` rows of websocket
payloads (bytes, or str for a text frame) sent after ``hello``/``welcome``;
``expect`` is ``"error"`` (an ``error`` message with a code), ``"reply"`` (a
well-formed request that gets its normal answer) or ``"either"``.
"""
from __future__ import annotations

import asyncio
import re
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import msgpack
import numpy as np
import soundfile as sf

from audio_fixtures import sine, write_m4a, write_sf

ROOT = Path(__file__).resolve().parents[1]
SR = 44100
EXTS = ("wav", "flac", "mp3", "ogg", "m4a")


@dataclass(frozen=True)
class AudioCase:
    name: str
    path: Path
    expect: str  # "result" | "refusal" | "either"
    frames: int | None = None  # for "result": frames of the input (the output must match its length)
    rate: int = SR  # for "result": the input's sample rate


@dataclass(frozen=True)
class FrameCase:
    name: str
    payload: Union[bytes, str]
    expect: str  # "error" | "reply" | "either"


# --------------------------------------------------------------------------- audio

def wav_bytes(tag: int, bits: int, data: bytes, channels: int = 2, rate: int = SR, block: int | None = None,
              riff_size: int | None = None, data_size: int | None = None, fmt_len: int = 16) -> bytes:
    """A RIFF WAV with a hand-written ``fmt `` chunk: any tag, bit depth, sizes (also wrong ones)."""
    block = block if block is not None else channels * max(bits, 8) // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    fmt = (fmt + b"\x00" * 64)[:fmt_len]
    body = (b"WAVE" + b"fmt " + struct.pack("<I", fmt_len) + fmt + b"data"
            + struct.pack("<I", len(data) if data_size is None else data_size) + data)
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def _pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1).T * 32767).astype("<i2").tobytes()


def _f32(x: np.ndarray) -> bytes:
    return x.T.astype("<f4").tobytes()


def _music(seconds: float, rng: np.random.Generator, channels: int = 2) -> np.ndarray:
    x = sine([220, 440, 1000], seconds, amp=0.3)
    x = x + 0.02 * rng.standard_normal(x.shape).astype(np.float32)
    if channels == 1:
        return x[:1]
    if channels > 2:
        return np.concatenate([x] * (channels // 2 + 1))[:channels]
    return x


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Random damage: bit flips, a cut, random header bytes, absurd 32-bit fields, inserted garbage."""
    d = bytearray(data)
    kind = int(rng.integers(0, 5))
    if kind == 0:
        for j in rng.integers(0, len(d), int(rng.integers(1, 50))):
            d[j] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:
        d = d[: int(rng.integers(0, len(d)))]
    elif kind == 2:
        for j in rng.integers(0, min(64, len(d)), int(rng.integers(1, 8))):
            d[j] = int(rng.integers(0, 256))
    elif kind == 3:
        for _ in range(3):
            j = int(rng.integers(0, max(1, min(60, len(d) - 4))))
            d[j:j + 4] = struct.pack("<I", int(rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF,
                                                           int(rng.integers(0, 2 ** 32))])))
    else:
        pos = int(rng.integers(0, len(d)))
        d = d[:pos] + bytes(rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8)) + d[pos:]
    return bytes(d)


def _zero_peak_timestamp(path: Path) -> None:
    """libsndfile writes a PEAK chunk (version, then a timestamp in seconds) into float WAVs: zero the
    timestamp, so two corpora written a second apart are the same bytes."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PEAK", 12) if data[:4] == b"RIFF" else -1
    if at >= 0 and at + 16 <= len(data):
        data[at + 12:at + 16] = b"\0\0\0\0"
        path.write_bytes(bytes(data))


def _fixed_cases(folder: Path, rng: np.random.Generator) -> list[AudioCase]:
    """The named cases of issue 10, each once."""
    cases: list[AudioCase] = []
    x = _music(0.5, rng)
    pcm = _pcm16(x)

    def raw(name: str, data: bytes, expect: str, frames: int | None = None) -> None:
        p = folder / name
        p.write_bytes(data)
        cases.append(AudioCase(name, p, expect, frames))

    def written(name: str, audio: np.ndarray, expect: str = "result", rate: int = SR, **kw) -> None:
        p = write_sf(folder / name, audio, rate, **kw)
        _zero_peak_timestamp(p)
        cases.append(AudioCase(name, p, expect, sf.info(str(p)).frames if expect == "result" else None, rate))

    # WAV headers that cannot be decoded: refused
    raw("bits0.wav", wav_bytes(1, 0, pcm, block=4), "refusal")
    raw("unknown_tag.wav", wav_bytes(0x1234, 16, pcm), "refusal")
    raw("float16.wav", wav_bytes(3, 16, np.asarray(x.T, "<f2").tobytes()), "refusal")
    raw("channels0.wav", wav_bytes(1, 16, pcm, channels=0, block=4), "refusal")
    raw("channels1000.wav", wav_bytes(1, 16, pcm, channels=1000), "refusal")
    raw("rate0.wav", wav_bytes(1, 16, pcm, rate=0), "refusal")
    raw("rate1.wav", wav_bytes(1, 16, pcm, rate=1), "refusal")
    raw("rate4e9.wav", wav_bytes(1, 16, pcm, rate=4_000_000_000), "refusal")
    raw("fmt_len0.wav", wav_bytes(1, 16, pcm, fmt_len=0), "refusal")
    raw("no_data_chunk.wav", wav_bytes(1, 16, b"")[:-8], "refusal")
    raw("zero_length.wav", b"", "refusal")
    for ext in EXTS[1:]:
        raw(f"zero_length.{ext}", b"", "refusal")
    raw("header_only.wav", wav_bytes(1, 16, b""), "refusal")
    raw("nan.wav", wav_bytes(3, 32, _f32(np.full_like(x, np.nan))), "refusal")
    raw("inf.wav", wav_bytes(3, 32, _f32(np.full_like(x, np.inf))), "refusal")
    mixed = x.copy()
    mixed[:, ::100] = np.nan
    raw("some_nan.wav", wav_bytes(3, 32, _f32(mixed)), "refusal")
    raw("huge_1e30.wav", wav_bytes(3, 32, _f32(np.sign(x) * 1e30)), "refusal")
    raw("scaled_1e6.wav", wav_bytes(3, 32, _f32(x * 1e6)), "refusal")
    raw("random_bytes.wav", bytes(rng.integers(0, 256, 20000, dtype=np.uint8)), "refusal")
    raw("text.wav", b"these are words, not samples\n" * 100, "refusal")
    # truncated headers: every cut inside the 44-byte header
    full = wav_bytes(1, 16, pcm)
    for cut in range(0, 44, 2):
        raw(f"header_cut_{cut:02d}.wav", full[:cut], "refusal")
    # wrong sizes: data size larger / smaller than the file, RIFF size wrong (decode what is there)
    raw("data_size_huge.wav", wav_bytes(1, 16, pcm, data_size=0xFFFFFFF0), "either")
    raw("data_size_small.wav", wav_bytes(1, 16, pcm, data_size=400), "either")
    raw("data_size_odd.wav", wav_bytes(1, 16, pcm[:-1]), "either")
    raw("riff_size_0.wav", wav_bytes(1, 16, pcm, riff_size=0), "either")
    raw("riff_size_huge.wav", wav_bytes(1, 16, pcm, riff_size=0xFFFFFFFF), "either")
    raw("truncated_data.wav", full[: len(full) // 2], "either")
    # valid but odd: restored, length kept
    s64 = (x.T.astype(np.float64) * (2.0 ** 63 - 1)).astype("<i8").tobytes()
    raw("s64.wav", wav_bytes(1, 64, s64), "result", x.shape[1])
    raw("u8.wav", wav_bytes(1, 8, ((x.T * 127) + 128).astype(np.uint8).tobytes()), "result", x.shape[1])
    raw("s32.wav", wav_bytes(1, 32, (x.T * (2 ** 31 - 1)).astype("<i4").tobytes()), "result", x.shape[1])
    raw("f64.wav", wav_bytes(3, 64, x.T.astype("<f8").tobytes()), "result", x.shape[1])
    written("mono.wav", _music(0.5, rng, 1))
    written("six_channels.wav", _music(0.5, rng, 6))
    written("rate8000.wav", sine(440, 0.5, sr=8000, amp=0.3), rate=8000)
    written("rate96000.wav", sine(440, 0.5, sr=96000, amp=0.3), rate=96000)
    for n in (1, 10, 441, 4410):
        written(f"frames_{n}.wav", x[:, :n])
    written("silence_3s.wav", np.zeros((2, 3 * SR), np.float32))
    written("denormal_1e-40.wav", np.full((2, SR), 1e-40, np.float32), subtype="FLOAT")
    written("minus80dB.wav", x * 1e-4, subtype="FLOAT")
    written("dc_plus_half.wav", np.full((2, SR), 0.5, np.float32))
    written("dc_minus_one.wav", np.full((2, SR), -1.0, np.float32), subtype="FLOAT")
    written("hot_float.wav", x * 4.0, subtype="FLOAT")
    written("clipped.wav", np.clip(x * 8, -1, 1))
    written("tiny.mp3", x[:, :2000])
    written("tiny.ogg", x[:, :2000])
    written("odd.flac", x, subtype="PCM_24")
    return cases


def _seeds(folder: Path) -> dict[str, bytes]:
    x = sine([440, 1000], 0.5, amp=0.4)
    seeds = {}
    for name, kw in [("a.wav", dict(subtype="PCM_16")), ("c.flac", {}),
                     ("d.mp3", {}), ("e.ogg", {}), ("f.wav", dict(subtype="PCM_24"))]:
        seeds[name] = write_sf(folder / f"seed_{name}", x, SR, **kw).read_bytes()
    seeds["b.wav"] = wav_bytes(3, 32, _f32(x))  # float WAV by hand: libsndfile's PEAK chunk has a timestamp
    seeds["g.m4a"] = write_m4a(folder / "seed_g.m4a", x, SR).read_bytes()
    for p in folder.glob("seed_*"):
        p.unlink()
    return seeds


def audio_corpus(folder: Path, n: int = 220, seed: int = 0) -> list[AudioCase]:
    """``n`` files in ``folder`` (at least the named cases; the rest: damaged real files and random bytes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cases = _fixed_cases(folder, rng)
    seeds = _seeds(folder)
    names = list(seeds)
    i = 0
    while len(cases) < n:
        if i % 10 == 9:  # random bytes under an audio extension
            ext = EXTS[i % len(EXTS)]
            name = f"random_{i:03d}.{ext}"
            data = bytes(rng.integers(0, 256, int(rng.integers(1, 50000)), dtype=np.uint8))
        else:
            base = names[i % len(names)]
            name = f"damaged_{i:03d}_{base}"
            data = _mutate(seeds[base], rng)
        (folder / name).write_bytes(data)
        cases.append(AudioCase(name, folder / name, "either"))
        i += 1
    return cases[:n] if n < len(cases) else cases


# --------------------------------------------------------------------------- frames

JOB = "0" * 32
_CLIENT_TYPES = {
    "hello": {"client": "fuzz", "token": None, "ack_window": 0},
    "ping": {"data": "x"},
    "start_job": {"input": {"kind": "upload", "format": "encoded", "filename": "x.wav", "size": 1000},
                  "settings": {"preset": "balanced"}, "options": {}, "ref": "r"},
    "upload_chunk": {"job_id": JOB, "index": 0, "data": b"abc"},
    "upload_end": {"job_id": JOB, "chunks": 1, "size": 3},
    "resume": {"job_id": JOB, "from_seq": 0},
    "ack": {"job_id": JOB, "seq": 0},
    "cancel": {"job_id": JOB},
    "fetch": {"job_id": JOB, "kind": "master", "offset": 0, "ref": "f"},
}
_ODD_VALUES = [None, True, -1, 2 ** 63, -(2 ** 63), 2 ** 64 - 1, 1.5, float("nan"), float("inf"), "", "x" * 5000,
               b"\x00\xff", [], [1, [2, [3]]], {}, {"a": {"b": None}}, msgpack.ExtType(7, b"zz"),
               msgpack.Timestamp(0, 0), "../../etc/passwd", "\x00", "é" * 100, 0]


def _pack(m) -> bytes:
    return msgpack.packb(m, use_bin_type=True)


def _random_value(rng: np.random.Generator, depth: int = 0):
    k = int(rng.integers(0, 9 if depth < 4 else 6))
    if k == 0:
        return None
    if k == 1:
        return bool(rng.integers(0, 2))
    if k == 2:
        return int(rng.integers(-2 ** 62, 2 ** 62))
    if k == 3:
        return float(rng.standard_normal() * 10 ** float(rng.integers(-5, 30)))
    if k == 4:
        return "".join(chr(int(c)) for c in rng.integers(32, 0x2FF, int(rng.integers(0, 20))))
    if k == 5:
        return bytes(rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8))
    if k in (6, 7):
        return {str(_random_value(rng, depth + 1))[:20]: _random_value(rng, depth + 1)
                for _ in range(int(rng.integers(0, 5)))}
    return [_random_value(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))]


def _nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"\x91" * depth + b"\xc0"
    return b"\x81\xa1x" * depth + b"\xc0"


def _fixed_frames() -> list[FrameCase]:
    f: list[FrameCase] = []
    add = lambda name, payload, expect="error": f.append(FrameCase(name, payload, expect))  # noqa: E731
    # well-formed requests: their normal answer (pong, or an error about the unknown job)
    add("ping", _pack({"type": "ping", "v": 1, "data": "hi"}), "reply")
    add("ack_unknown_job", _pack({"type": "ack", "v": 1, "job_id": JOB, "seq": 0}), "either")
    add("cancel_unknown_job", _pack({"type": "cancel", "v": 1, "job_id": JOB}))
    add("fetch_unknown_job", _pack({"type": "fetch", "v": 1, "job_id": JOB, "kind": "master", "offset": 0}))
    add("resume_unknown_job", _pack({"type": "resume", "v": 1, "job_id": JOB, "from_seq": 0}))
    # framing
    add("empty", b"")
    add("text_frame", '{"type": "ping", "v": 1}')
    add("text_frame_empty", "")
    add("not_msgpack", b"\xc1\xc1\xc1")
    add("trailing_bytes", _pack({"type": "ping", "v": 1}) + b"\x00")
    add("array_not_map", _pack(["ping", 1]))
    add("int_keys", _pack({1: "x", "type": "ping", "v": 1}))
    add("bin_keys", _pack({b"type": "ping", "v": 1}))
    add("missing_type", _pack({"v": 1}))
    add("missing_version", _pack({"type": "ping"}))
    add("version_2", _pack({"type": "ping", "v": 2}))
    add("version_bool", _pack({"type": "ping", "v": True}))
    add("version_huge", _pack({"type": "ping", "v": 2 ** 64 - 1}))
    add("hello_again", _pack({"type": "hello", "v": 1, "client": "x", "token": None, "ack_window": 0}))
    add("ext_type", _pack({"type": "ping", "v": 1, "data": msgpack.ExtType(5, b"abc")}))
    add("timestamp", _pack({"type": "ping", "v": 1, "data": msgpack.Timestamp(1, 0)}))
    # server messages sent by a client; unknown types
    for t in ("welcome", "audio", "error", "job_done", "progress", "file_chunk", "rm_rf", "", "PING", "ping\x00",
              "x" * 1000, "__class__", "start-job", "Start_Job"):
        add(f"type_{t[:12]!r}", _pack({"type": t, "v": 1}))
    # deep nesting and huge containers (bounded before decoding)
    for depth in (10, 100, 1000, 10000, 100000):
        for kind in ("array", "map"):
            add(f"nested_{kind}_{depth}", b"\x83\xa4type\xa4ping\xa1v\x01\xa4data" + _nested(depth, kind))
    add("declared_huge_map", b"\xdf\xff\xff\xff\xff")
    add("declared_huge_array", b"\xdd\xff\xff\xff\xff")
    add("declared_huge_str", b"\xdb\xff\xff\xff\xff")
    add("declared_huge_bin", b"\xc6\xff\xff\xff\xff")
    add("million_empty_maps", b"\x83\xa4type\xa4ping\xa1v\x01\xa4data\xdd" + struct.pack(">I", 1_000_000)
        + b"\x80" * 1_000_000)
    add("wide_map", _pack({"type": "ping", "v": 1, **{f"k{i}": i for i in range(70000)}}))
    add("frame_over_limit", b"\x00" * (8 * 1024 * 1024 + 100))
    # bad sequence numbers and offsets
    for field, t in (("seq", "ack"), ("from_seq", "resume"), ("offset", "fetch"), ("index", "upload_chunk")):
        for v in (-1, 2 ** 63, 2 ** 64 - 1, 1.5, "0", None, True, [0]):
            base = dict(_CLIENT_TYPES[t])
            base[field] = v
            add(f"bad_{t}_{field}_{v!r}"[:60], _pack({"type": t, "v": 1, **base}))
    # uploads to no job, out of order
    add("upload_chunk_no_job", _pack({"type": "upload_chunk", "v": 1, **_CLIENT_TYPES["upload_chunk"]}))
    add("upload_end_no_job", _pack({"type": "upload_end", "v": 1, **_CLIENT_TYPES["upload_end"]}))
    return f


def frame_corpus(n: int = 240, seed: int = 0) -> list[FrameCase]:
    """``n`` frames: the named cases, then wrong field types per message, truncations, random msgpack."""
    rng = np.random.default_rng(seed)
    frames = _fixed_frames()
    # every field of every client message replaced by odd values
    typed: list[FrameCase] = []
    for t, fields in _CLIENT_TYPES.items():
        for field in fields:
            for v in _ODD_VALUES[:: max(1, len(_ODD_VALUES) // 4)]:
                msg = {"type": t, "v": 1, **fields, field: v}
                typed.append(FrameCase(f"field_{t}.{field}={type(v).__name__}", _pack(msg), "either"))
        typed.append(FrameCase(f"missing_fields_{t}", _pack({"type": t, "v": 1}), "either"))
    order = rng.permutation(len(typed))
    frames += [typed[i] for i in order]
    i = 0
    while len(frames) < n:
        k = i % 3
        if k == 0:  # a valid frame cut short
            t = list(_CLIENT_TYPES)[i % len(_CLIENT_TYPES)]
            whole = _pack({"type": t, "v": 1, **_CLIENT_TYPES[t]})
            frames.append(FrameCase(f"truncated_{t}_{i}", whole[: int(rng.integers(1, len(whole)))], "error"))
        elif k == 1:  # random msgpack
            v = _random_value(rng)
            if isinstance(v, dict) and rng.integers(0, 2):
                v = {"type": str(rng.choice(list(_CLIENT_TYPES))), "v": 1, **v}
            frames.append(FrameCase(f"random_msgpack_{i}", _pack(v), "either"))
        else:  # random bytes
            frames.append(FrameCase(f"random_bytes_{i}",
                                    bytes(rng.integers(0, 256, int(rng.integers(1, 3000)), dtype=np.uint8)), "either"))
        i += 1
    seen: dict = {}
    unique = []
    for fc in frames:  # names are test ids: make them unique
        k = seen[fc.name] = seen.get(fc.name, 0) + 1
        unique.append(fc if k == 1 else FrameCase(f"{fc.name}#{k}", fc.payload, fc.expect))
    return unique


# --------------------------------------------------------------------------- running a case
# (outcomes as benchmarks/fuzz_report.py documents them: refusal, result, crash, hang)

ERROR_LINE = re.compile(r"^error \[[a-z_]+\]: \S")


def run_file(case: AudioCase, out_dir: Path, timeout: float) -> dict:
    out = out_dir / f"{case.path.stem}.restored.wav"
    cmd = [sys.executable, "-m", "resonate_stream", "process", str(case.path), "-o", str(out), "-q", "-y",
           "--no-cache", "--separator", "dsp"]
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"name": case.name, "expect": case.expect, "outcome": "hang", "detail": f"> {timeout} s"}
    wall = time.monotonic() - t0
    err = [line for line in r.stderr.splitlines() if line.strip()]
    row = {"name": case.name, "expect": case.expect, "rc": r.returncode, "wall_s": round(wall, 2)}
    if "Traceback" in r.stderr:
        return {**row, "outcome": "crash", "detail": r.stderr[-600:]}
    if r.returncode == 2 and len(err) == 1 and ERROR_LINE.match(err[0]):
        return {**row, "outcome": "refusal", "code": err[0].split("]")[0][7:], "detail": err[0][:200]}
    if r.returncode == 0 and not err:
        problem = check_output(case, out)
        if problem is None:
            return {**row, "outcome": "result"}
        return {**row, "outcome": "crash", "detail": f"exit 0 but {problem}"}
    return {**row, "outcome": "crash", "detail": (r.stderr or r.stdout)[-600:]}


def check_output(case: AudioCase, out: Path) -> str | None:
    """Why the written output is wrong, or None."""
    if not out.is_file():
        return "no output file"
    try:
        y, rate = sf.read(str(out), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - reported
        return f"the output does not read back ({e})"
    if not np.all(np.isfinite(y)):
        return "the output has NaN/Inf samples"
    if case.frames is not None:
        want = case.frames * rate / case.rate
        if abs(y.shape[0] - want) > max(2.0, 0.01 * want):
            return f"the output has {y.shape[0]} frames, expected about {want:.0f}"
    return None


async def run_frame(url: str, case: FrameCase, timeout: float) -> dict:
    import resonate_protocol as P
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    row = {"name": case.name, "expect": case.expect}
    try:
        ws = await asyncio.wait_for(connect(url, max_size=64 * P.MiB, compression=None, proxy=None), 5)
    except Exception as e:  # noqa: BLE001 - the server must accept connections
        return {**row, "outcome": "crash", "detail": f"cannot connect: {e!r}"}
    errors: list = []
    replies: list = []
    try:
        await ws.send(P.encode(P.Hello(client="fuzz")))
        welcome = P.decode_server_message(await asyncio.wait_for(ws.recv(), timeout))
        assert isinstance(welcome, P.Welcome), welcome
        await asyncio.wait_for(ws.send(case.payload), timeout)
        await asyncio.wait_for(ws.send(P.encode(P.Ping(data="fuzz-probe"))), timeout)
        async with asyncio.timeout(timeout):
            while True:
                m = P.decode_server_message(await ws.recv(), P.Limits(max_frame_bytes=64 * P.MiB))
                if isinstance(m, P.Pong) and m.data == "fuzz-probe":
                    break
                (errors if isinstance(m, P.Error) else replies).append(m)
    except (TimeoutError, asyncio.TimeoutError):
        return {**row, "outcome": "hang", "detail": f"no probe pong within {timeout} s"}
    except ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd is not None else None
        if errors and code != 1011:
            return {**row, "outcome": "refusal", "code": errors[0].code, "detail": f"fatal, close {code}"}
        if code == 1009:
            return {**row, "outcome": "refusal", "code": "ws_1009", "detail": "message too big (hard cap)"}
        return {**row, "outcome": "crash", "detail": f"dropped, close {code} {e.rcvd.reason if e.rcvd else ''}"}
    except P.ProtocolError as e:
        return {**row, "outcome": "crash", "detail": f"the server sent a malformed frame: {e}"}
    finally:
        await ws.close()
    if errors:
        return {**row, "outcome": "refusal", "code": errors[0].code, "detail": errors[0].message[:200]}
    return {**row, "outcome": "result", "detail": ",".join(type(m).__name__ for m in replies)[:200]}


