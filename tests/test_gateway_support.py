"""Shared helpers of the gateway tests: a small *real* backend and fixtures.

:class:`GainBackend` really processes audio: it decodes the job's input
(a WAV/FLAC file through soundfile, or raw PCM bytes as they are uploaded),
applies a gain, streams fixed-size blocks through ``emit`` and writes the
final file atomically.  It honours the backend contract of
``resonate_stream.gateway.jobs`` (cancel polling, typed errors, Finished).
"""
from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import soundfile as sf

from engine.errors import EmptyAudioError, NotAudioError, TruncatedAudioError
import resonate_protocol as P
from resonate_stream.events import AudioChunk, Finished, InfoEvent, ProgressEvent
from resonate_stream.gateway.jobs import JobCancelled, JobSpec, FileJobInput, UploadJobInput


def pcm_blocks(source: UploadJobInput) -> Iterator[np.ndarray]:
    """Decode raw interleaved PCM pieces (any cut) into float32 ``(channels, n)`` blocks."""
    ch = int(source.channels)
    width = 4 if source.pcm_format == "f32le" else 2
    frame_bytes = ch * width
    carry = b""
    for piece in source:
        buf = carry + piece
        n = len(buf) // frame_bytes
        carry = buf[n * frame_bytes:]
        if n == 0:
            continue
        raw = buf[: n * frame_bytes]
        if width == 4:
            x = np.frombuffer(raw, dtype="<f4")
        else:
            x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        yield np.ascontiguousarray(x.reshape(n, ch).T, dtype=np.float32)
    if carry:
        raise TruncatedAudioError(f"upload ends with {len(carry)} bytes, less than one {ch}-channel frame")


def audio_info(path: Path):
    try:
        return sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError
        raise NotAudioError(f"{path.name} is not an audio file soundfile can read ({exc})") from None


def file_blocks(path: Path, frames: int = 65536) -> Iterator[np.ndarray]:
    try:
        f = sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError
        raise NotAudioError(f"{path.name} is not an audio file soundfile can read ({exc})") from None
    with f:
        while True:
            x = f.read(frames, dtype="float32", always_2d=True)
            if len(x) == 0:
                return
            yield np.ascontiguousarray(x.T)


def rebuffer(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Cut a stream of ``(C, n)`` blocks into blocks of exactly ``size`` frames (last one shorter)."""
    pending: list[np.ndarray] = []
    have = 0
    for b in blocks:
        pending.append(b)
        have += b.shape[1]
        while have >= size:
            cat = np.concatenate(pending, axis=1)
            yield cat[:, :size]
            rest = cat[:, size:]
            pending, have = ([rest] if rest.shape[1] else []), rest.shape[1]
    if have:
        yield np.concatenate(pending, axis=1)


class GainBackend:
    """Applies ``gain_db`` to the input and streams it in ``block_frames`` blocks.

    Overrides (``settings["overrides"]``): ``gain_db``, ``block_frames``,
    ``block_delay_s`` (pause between blocks, seconds: makes a job last long
    enough to cancel or disconnect from it).
    """

    def __init__(self, gain_db: float = -6.0, block_frames: int = 22050, block_delay_s: float = 0.0):
        self.gain_db = gain_db
        self.block_frames = block_frames
        self.block_delay_s = block_delay_s
        self.started = 0
        self._lock = threading.Lock()

    def start(self, job_id: str, spec: JobSpec, source, emit, cancel: threading.Event) -> None:
        with self._lock:
            self.started += 1
        ov = spec.overrides
        gain_db = float(ov.get("gain_db", self.gain_db))
        gain = np.float32(10.0 ** (gain_db / 20.0))
        block = int(ov.get("block_frames", self.block_frames))
        delay = float(ov.get("block_delay_s", self.block_delay_s))
        total: Optional[float] = None
        if isinstance(source, FileJobInput):
            info = audio_info(source.path)
            sr, total = info.samplerate, info.frames / info.samplerate
            blocks = file_blocks(source.path)
        elif source.is_pcm:
            sr = int(source.sample_rate)
            blocks = pcm_blocks(source)
            if source.size is not None:
                total = source.size / (source.channels * (4 if source.pcm_format == "f32le" else 2)) / sr
        else:
            path = source.wait_file()
            info = audio_info(path)
            sr, total = info.samplerate, info.frames / info.samplerate
            blocks = file_blocks(path)
        emit(InfoEvent("gain backend", {"gain_db": gain_db, "block_frames": block}))
        out = spec.out_dir / "mix.wav"
        tmp = spec.out_dir / ".mix.part.wav"
        writer = None
        seq = offset = 0
        peak = 0.0
        try:
            for x in rebuffer(blocks, block):
                if cancel.is_set():
                    raise JobCancelled("cancelled")
                if not np.all(np.isfinite(x)):
                    from engine.errors import NonFiniteAudioError

                    raise NonFiniteAudioError("input has NaN/Inf samples")
                y = x * gain
                if writer is None:
                    writer = sf.SoundFile(str(tmp), "w", samplerate=sr, channels=y.shape[0], subtype="FLOAT")
                stems = {"dry": x, "wet": y} if spec.send_stems else None
                emit(AudioChunk(seq=seq, offset=offset, sample_rate=sr, audio=y, stems=stems))
                writer.write(y.T)
                peak = max(peak, float(np.max(np.abs(y))) if y.size else 0.0)
                seq += 1
                offset += y.shape[1]
                emit(ProgressEvent(stage="gain", done=offset / sr, total=total))
                if delay:
                    cancel.wait(delay)
            if writer is None:
                raise EmptyAudioError("the input holds no audio")
            writer.close()
            writer = None
            os.replace(tmp, out)
        finally:
            if writer is not None:
                writer.close()
            if tmp.exists():
                tmp.unlink()
        emit(Finished(report={"frames": offset, "blocks": seq, "gain_db": gain_db,
                              "peak_dbfs": 20 * np.log10(max(peak, 1e-12))},
                      outputs={"mix": str(out)}))


def make_signal(seconds: float = 3.0, sr: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Float32 ``(channels, n)``: sine mixture plus a little noise, peak below 0.8."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    chans = []
    for c in range(channels):
        s = 0.3 * np.sin(2 * np.pi * (220 * (c + 1)) * t) + 0.2 * np.sin(2 * np.pi * 1375.0 * t + c)
        chans.append(s + 0.01 * rng.standard_normal(t.shape))
    return np.asarray(chans, dtype=np.float32)




def gain_of(db: float) -> np.float32:
    return np.float32(10.0 ** (db / 20.0))


async def http_get(host: str, port: int, path: str, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Plain HTTP/1.1 GET over a raw socket (no proxies): status, headers, body."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


class RawClient:
    """A protocol-level test client: websockets + the sans-I/O protocol, nothing else."""

    def __init__(self, ws, limits: P.Limits = P.Limits(max_frame_bytes=64 * P.MiB, max_chunk_bytes=1024)):
        self.ws = ws
        self.limits = limits

    @classmethod
    async def connect(cls, url: str, *, hello: bool = True, token: Optional[str] = None, ack_window: int = 0,
                      headers: Optional[dict] = None) -> "RawClient":
        from websockets.asyncio.client import connect

        ws = await asyncio.wait_for(
            connect(url, max_size=64 * P.MiB, compression=None, proxy=None, additional_headers=headers), 5
        )
        c = cls(ws)
        if hello:
            await c.send(P.Hello(client="raw-test", token=token, ack_window=ack_window))
            w = await c.recv()
            assert isinstance(w, P.Welcome), w
        return c

    async def send(self, msg: P.Message) -> None:
        await asyncio.wait_for(self.ws.send(P.encode(msg)), 5)

    async def send_raw(self, data) -> None:
        await asyncio.wait_for(self.ws.send(data), 5)

    async def recv(self, timeout: float = 5.0) -> P.ServerMessage:
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        return P.decode_server_message(frame, self.limits)

    async def recv_until(self, pred, timeout: float = 10.0, keep=None) -> P.ServerMessage:
        """Receive until ``pred(msg)``; other messages go to ``keep`` (a list) if given."""
        async with asyncio.timeout(timeout):
            while True:
                m = await self.recv(timeout)
                if pred(m):
                    return m
                if keep is not None:
                    keep.append(m)

    async def start_upload_job(self, audio: np.ndarray, sr: int, *, overrides: Optional[dict] = None,
                               ref: str = "a", send_stems: bool = False) -> str:
        data = P.audio_to_bytes(audio)
        await self.send(P.StartJob(
            input=P.UploadInput(format="pcm_f32le", sample_rate=sr, channels=audio.shape[0], size=len(data)),
            settings={"preset": "test", "overrides": overrides or {}},
            options=P.JobOptions(send_stems=send_stems), ref=ref,
        ))
        acc = await self.recv_until(lambda m: isinstance(m, (P.JobAccepted, P.Error)))
        assert isinstance(acc, P.JobAccepted), acc
        return acc.job_id

    async def upload(self, job_id: str, data: bytes, cuts: list[int], max_piece: int = 256 * 1024) -> None:
        """Send ``data`` cut at the byte positions ``cuts`` (any positions, mid-sample too)
        and every ``max_piece`` bytes."""
        edges = sorted({0, *cuts, *range(0, len(data), max_piece), len(data)})
        i = 0
        for a, b in zip(edges[:-1], edges[1:]):
            if b > a:
                await self.send(P.UploadChunk(job_id=job_id, index=i, data=data[a:b]))
                i += 1
        await self.send(P.UploadEnd(job_id=job_id, chunks=i, size=len(data)))

    async def collect(self, job_id: str, timeout: float = 15.0):
        """Audio messages of ``job_id`` until its job_done/error: (audio list, terminal message)."""
        audio = []
        async with asyncio.timeout(timeout):
            while True:
                m = await self.recv(timeout)
                if getattr(m, "job_id", None) != job_id:
                    continue
                if isinstance(m, P.Audio):
                    audio.append(m)
                elif isinstance(m, (P.JobDone, P.Error)):
                    return audio, m

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except Exception:
            pass


def join_audio(msgs: list[P.Audio]) -> np.ndarray:
    return np.concatenate([P.decode_audio(m) for m in msgs], axis=1)
