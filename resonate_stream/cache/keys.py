"""Cache keys: what went in (decoded audio or file bytes, operation, settings) -> one hex key."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from typing import Mapping

import numpy as np

from engine.errors import SettingsError

#: what a cache key or a stem name may look like
KEY_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,127}$")


# --------------------------------------------------------------------------
# keys and hashes
# --------------------------------------------------------------------------

def canonical(value, where: str = "params"):
    """JSON-ready canonical form: numpy scalars/arrays to Python, tuples to lists,
    integral floats to ints (so ``1`` and ``1.0`` give the same key), paths to str."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SettingsError(f"{where}: non-finite number {value!r} cannot be part of a cache key")
        return int(value) if value.is_integer() and abs(value) < 2 ** 53 else value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray):
        return [canonical(v, where) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [canonical(v, where) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise SettingsError(f"{where}: keys must be strings, got {k!r}")
            out[k] = canonical(v, f"{where}.{k}")
        return out
    raise SettingsError(f"{where}: value {value!r} of type {type(value).__name__} cannot be part of a cache key")


def cache_key(audio_hash: str, operation: str, params: Mapping | None = None) -> str:
    """Stable key (64 hex digits) of ``(audio_hash, operation, params)``.

    SHA-256 of canonical JSON (sorted keys, no spaces, ASCII): the same inputs
    give the same key on every machine and Python version; dict order does
    not matter; ``1`` and ``1.0`` are the same value.
    """
    if not isinstance(audio_hash, str) or not audio_hash:
        raise SettingsError("audio_hash must be a non-empty string")
    if not isinstance(operation, str) or not operation:
        raise SettingsError("operation must be a non-empty string")
    doc = {"v": 1, "audio": audio_hash, "op": operation, "params": canonical(dict(params or {}))}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class AudioHasher:
    """Streaming content hash of audio samples (or of raw bytes).

    ``update(block)`` with float ``(channels, n)`` blocks hashes the samples as
    interleaved little-endian float32 after a header naming the channel count,
    so the digest does not depend on how the stream was cut into blocks.
    ``update(bytes)`` hashes raw bytes (e.g. a file); the two kinds cannot be
    mixed in one hasher.  ``hexdigest()`` may be called at any time.
    """

    def __init__(self, algorithm: str = "sha256"):
        try:
            self._h = hashlib.new(algorithm)
        except ValueError as e:
            raise SettingsError(f"unknown hash algorithm {algorithm!r}") from e
        self.algorithm = algorithm
        self._mode: str | None = None
        self._channels: int | None = None
        self.samples = 0  # sample frames hashed (array mode)
        self.bytes = 0  # bytes hashed (either mode)

    def update(self, data) -> "AudioHasher":
        """Add ``data``: a ``(channels, n)`` / ``(n,)`` array, or bytes-like."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            self._set_mode("bytes")
            self._h.update(data)
            self.bytes += len(data)
            return self
        x = np.asarray(data)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise SettingsError(f"audio blocks must be (channels, samples), got shape {x.shape}")
        self._set_mode("audio")
        if self._channels is None:
            self._channels = int(x.shape[0])
            self._h.update(f"resonate-audio-v1;channels={self._channels};f32le;".encode())
        elif x.shape[0] != self._channels:
            raise SettingsError(f"block has {x.shape[0]} channels, earlier blocks had {self._channels}")
        raw = np.ascontiguousarray(x.T, dtype="<f4").tobytes()
        self._h.update(raw)
        self.samples += int(x.shape[1])
        self.bytes += len(raw)
        return self

    def _set_mode(self, mode: str) -> None:
        if self._mode is None:
            self._mode = mode
        elif self._mode != mode:
            raise SettingsError("an AudioHasher hashes either audio blocks or bytes, not both")

    def hexdigest(self) -> str:
        """Hex digest of everything so far."""
        return self._h.copy().hexdigest()


def hash_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes, read in ``chunk_bytes`` pieces."""
    h = AudioHasher()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk_bytes)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# --------------------------------------------------------------------------
# the stem cache
# --------------------------------------------------------------------------
