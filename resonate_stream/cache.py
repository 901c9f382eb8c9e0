"""Content-addressed cache of processed stems (module 09).

Separation is the expensive step (minutes per concert on a CPU), so its
stems are kept on disk under a key that names *what went in*:

    key = cache_key(audio_hash, operation, params)

``audio_hash`` comes from :class:`AudioHasher` (the decoded samples, so a
re-encoded copy of the same audio hits too) or :func:`hash_file` (the file's
bytes); ``operation`` names the step (``"separate"``, the one stored today)
and ``params`` the settings that change its output (model name, segment).

Layout under the cache folder (default ``$RESONATE_CACHE_DIR`` or
``~/.cache/resonate``)::

    entries/<key>/meta.json     operation, params, stems, frames, rate, created
    entries/<key>/<stem>.wav    one float32 WAV per stem, (channels, frames)
    entries/<key>/last_used     empty; its mtime is the entry's last use
    tmp/<key>.<pid>.<random>/   entries being written
    trash/<key>.<random>/       entries being deleted

Atomicity: a writer fills a private folder under ``tmp/`` and publishes it
with one ``rename`` onto ``entries/<key>``.  Readers therefore see either no
entry or a complete one, never a torn one.  When several writers produce the
same key at once, the first rename wins; the others find the folder taken,
discard their copy and report ``published = False`` - the stored entry is
one writer's complete output.  Deletion renames the entry into ``trash/``
first, so it disappears atomically too (readers that already opened the
files keep reading them on POSIX systems).

Everything streams: writers take stem blocks as they are produced, readers
yield blocks; nothing holds a whole concert in memory.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import soundfile as sf

from engine.io.atomic import fsync_path
from engine.audio import SAMPLE_RATE, check_finite
from engine.errors import ResonateError, SettingsError

__all__ = [
    "CacheError", "CacheMissError", "AudioHasher", "hash_file", "cache_key", "default_cache_dir",
    "CacheEntry", "StemCache", "StemWriter", "StemReader",
]

_KEY_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,127}$")
_DAY = 86400.0
#: in-progress folders older than this are leftovers of crashed writers
STALE_TMP_S = _DAY


class CacheError(ResonateError):
    """The cache cannot be used as asked (bad key, unwritable folder, bad stems)."""

    code = "cache_error"


class CacheMissError(CacheError, KeyError):
    """No complete entry for that key."""

    code = "cache_miss"

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


def default_cache_dir() -> Path:
    """``$RESONATE_CACHE_DIR`` if set, else ``~/.cache/resonate``."""
    env = os.environ.get("RESONATE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resonate"


# --------------------------------------------------------------------------
# keys and hashes
# --------------------------------------------------------------------------

def _canonical(value, where: str = "params"):
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
        return [_canonical(v, where) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_canonical(v, where) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise SettingsError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _canonical(v, f"{where}.{k}")
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
    doc = {"v": 1, "audio": audio_hash, "op": operation, "params": _canonical(dict(params or {}))}
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

@dataclass(frozen=True)
class CacheEntry:
    """One published entry.  Times are POSIX seconds; size in bytes."""

    key: str
    operation: str
    size_bytes: int
    created: float
    last_used: float
    stems: tuple[str, ...]
    frames: int
    sample_rate: int
    channels: int
    params: dict


def _folder_size(path: Path) -> int:
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    if e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
                    elif e.is_dir(follow_symlinks=False):
                        total += _folder_size(Path(e.path))
                except FileNotFoundError:
                    pass
    except FileNotFoundError:
        return 0
    return total


class StemWriter:
    """Progressive writer of one entry; use through :meth:`StemCache.writer`.

    ``write(stems)`` appends one block: a dict from stem name to a float32
    ``(channels, n)`` array, the same names, channel count and ``n`` for
    every stem (the first block fixes names and channels).  On a clean exit
    of the ``with`` block the entry is published atomically; on an exception
    nothing is published.  ``published`` tells whether this writer's entry
    is the stored one (``False`` when another writer of the key won).
    """

    def __init__(self, cache: "StemCache", key: str, operation: str, params: Mapping | None,
                 sample_rate: int, fsync: bool):
        self.cache = cache
        self.key = key
        self.operation = operation
        self.params = _canonical(dict(params or {}))
        self.sample_rate = int(sample_rate)
        self.fsync = fsync
        self.frames = 0
        self.published = False
        self._files: dict[str, sf.SoundFile] = {}
        self._stems: tuple[str, ...] | None = None
        self._channels: int | None = None
        self._tmp = cache.root / "tmp" / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:12]}"
        self._tmp.mkdir(parents=True)
        self._closed = False

    def write(self, stems: Mapping[str, np.ndarray]) -> None:
        """Append one block of every stem (see the class docstring)."""
        if self._closed:
            raise CacheError("this cache writer is closed")
        if not stems:
            raise CacheError("write() needs at least one stem")
        names = tuple(sorted(stems))
        for name in names:
            if not _KEY_RE.match(name):
                raise CacheError(f"bad stem name {name!r} (letters, digits, '_', '-', '.')")
        blocks = {k: np.asarray(stems[k], dtype=np.float32) for k in names}
        shapes = {v.shape for v in blocks.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise CacheError(f"all stems of a block must share one (channels, n) shape, got {sorted(shapes)}")
        channels, n = next(iter(shapes))
        if self._stems is None:
            self._stems, self._channels = names, int(channels)
            for name in names:
                self._files[name] = sf.SoundFile(self._tmp / f"{name}.wav", "w", samplerate=self.sample_rate,
                                                 channels=self._channels, subtype="FLOAT", format="WAV")
        elif names != self._stems or channels != self._channels:
            raise CacheError(f"stems {names} x {channels} ch differ from the first block's "
                             f"{self._stems} x {self._channels} ch")
        for name, x in blocks.items():
            check_finite(x, f"stem {name!r} written to the cache")
            self._files[name].write(np.ascontiguousarray(x.T))
        self.frames += int(n)

    def _close_files(self) -> None:
        paths = [Path(f.name) for f in self._files.values()]
        for f in self._files.values():
            f.close()
        self._files = {}
        if self.fsync:
            for p in paths:
                fsync_path(p)

    def commit(self) -> bool:
        """Publish the entry; returns ``published``.  Called by the context manager."""
        if self._closed:
            return self.published
        self._closed = True
        try:
            self._close_files()
            if self._stems is None:
                raise CacheError("nothing was written: an entry needs at least one block")
            now = time.time()
            meta = {"key": self.key, "operation": self.operation, "params": self.params,
                    "stems": list(self._stems), "frames": self.frames, "sample_rate": self.sample_rate,
                    "channels": self._channels, "created": now, "format": "wav-float32", "version": 1}
            with open(self._tmp / "meta.json", "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=1, sort_keys=True)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            (self._tmp / "last_used").touch()
            if self.fsync:
                fsync_path(self._tmp)
            final = self.cache._entry_dir(self.key)
            try:
                os.rename(self._tmp, final)
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST) or isinstance(e, (FileExistsError,
                                                                                IsADirectoryError)):
                    self.published = False  # another writer of this key won; its entry is complete
                    shutil.rmtree(self._tmp, ignore_errors=True)
                    return False
                raise CacheError(f"cannot publish cache entry {self.key}: {e}") from e
            if self.fsync:
                fsync_path(final.parent)
            self.published = True
            return True
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    def abort(self) -> None:
        """Discard everything written; nothing is published."""
        if not self._closed:
            self._closed = True
            for f in self._files.values():
                try:
                    f.close()
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
            self._files = {}
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "StemWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class StemReader:
    """Iterator of stem blocks of one entry: ``dict name -> float32 (channels, n)``.

    The files are opened when the reader is created, so an entry evicted
    meanwhile can still be read to the end (POSIX).  Use as a context manager
    or call :meth:`close`.  ``entry`` describes what is being read.
    """

    def __init__(self, entry: CacheEntry, folder: Path, block_frames: int):
        if block_frames < 1:
            raise SettingsError(f"block_frames must be >= 1, got {block_frames}")
        self.entry = entry
        self.block_frames = int(block_frames)
        self._files = {}
        try:
            for name in entry.stems:
                self._files[name] = sf.SoundFile(folder / f"{name}.wav", "r")
        except (OSError, RuntimeError, sf.LibsndfileError) as e:
            self.close()
            raise CacheMissError(f"cache entry {entry.key} disappeared or is unreadable: {e}") from e
        self.position = 0

    def __iter__(self) -> "StemReader":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self.position >= self.entry.frames or not self._files:
            self.close()
            raise StopIteration
        n = min(self.block_frames, self.entry.frames - self.position)
        out = {}
        for name, f in self._files.items():
            data = f.read(n, dtype="float32", always_2d=True)
            if data.shape[0] != n:
                self.close()
                raise CacheError(f"cache entry {self.entry.key}: stem {name!r} is shorter than recorded")
            out[name] = np.ascontiguousarray(data.T)
        self.position += n
        return out

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}

    def __enter__(self) -> "StemReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StemCache:
    """Content-addressed, size- and age-limited store of stem sets.

    Parameters
    ----------
    root: cache folder (default :func:`default_cache_dir`); created if missing.
    fsync: flush files to disk before publishing (durable across power loss;
        a little slower).
    """

    def __init__(self, root: str | os.PathLike | None = None, fsync: bool = True):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.fsync = bool(fsync)
        try:
            for sub in ("entries", "tmp", "trash"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(f"cannot create the cache folder {self.root}: {e}. Set RESONATE_CACHE_DIR "
                             "to a writable folder.") from e

    # -- keys / paths ------------------------------------------------------
    @staticmethod
    def _check_key(key: str) -> str:
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise CacheError(f"bad cache key {key!r}: use cache_key() (letters, digits, '_', '-', '.')")
        return key

    def _entry_dir(self, key: str) -> Path:
        return self.root / "entries" / self._check_key(key)

    def entry_path(self, key: str) -> Path:
        """Folder of the entry ``key`` (whether or not it exists)."""
        return self._entry_dir(key)

    # -- queries -----------------------------------------------------------
    def has(self, key: str) -> bool:
        """True if a complete entry for ``key`` is stored (does not count as a use)."""
        return (self._entry_dir(key) / "meta.json").is_file()

    def info(self, key: str) -> CacheEntry:
        """Describe entry ``key``; :class:`CacheMissError` if absent."""
        entry = self._read_entry(self._entry_dir(key))
        if entry is None:
            raise CacheMissError(f"no cache entry for key {key}")
        return entry

    def _read_entry(self, folder: Path) -> CacheEntry | None:
        try:
            with open(folder / "meta.json", encoding="utf-8") as f:
                meta = json.load(f)
            try:
                last = (folder / "last_used").stat().st_mtime
            except FileNotFoundError:
                last = float(meta["created"])
            return CacheEntry(key=meta["key"], operation=meta["operation"], size_bytes=_folder_size(folder),
                              created=float(meta["created"]), last_used=last, stems=tuple(meta["stems"]),
                              frames=int(meta["frames"]), sample_rate=int(meta["sample_rate"]),
                              channels=int(meta["channels"]), params=meta.get("params", {}))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def ls(self) -> list[CacheEntry]:
        """All complete entries, most recently used first."""
        out = []
        try:
            with os.scandir(self.root / "entries") as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        entry = self._read_entry(Path(e.path))
                        if entry is not None:
                            out.append(entry)
        except FileNotFoundError:
            return []
        out.sort(key=lambda en: en.last_used, reverse=True)
        return out

    def size_bytes(self) -> int:
        """Bytes held by complete entries (in-progress writes not counted)."""
        return _folder_size(self.root / "entries")

    # -- writing / reading -------------------------------------------------
    def writer(self, key: str, operation: str = "", params: Mapping | None = None,
               sample_rate: int = SAMPLE_RATE) -> StemWriter:
        """Context manager that stores stem blocks under ``key`` (see :class:`StemWriter`)."""
        self._check_key(key)
        if not (1 <= sample_rate <= 1_000_000):
            raise SettingsError(f"sample_rate must be a positive rate in Hz, got {sample_rate}")
        return StemWriter(self, key, operation, params, sample_rate, self.fsync)

    def reader(self, key: str, block_frames: int = SAMPLE_RATE) -> StemReader:
        """Stream entry ``key`` in blocks of ``block_frames``; counts as a use.

        Raises :class:`CacheMissError` when there is no complete entry.
        """
        folder = self._entry_dir(key)
        entry = self._read_entry(folder)
        if entry is None:
            raise CacheMissError(f"no cache entry for key {key}")
        reader = StemReader(entry, folder, block_frames)
        self.touch(key)
        return reader

    def touch(self, key: str, when: float | None = None) -> None:
        """Mark ``key`` as used at ``when`` (POSIX seconds, default now)."""
        p = self._entry_dir(key) / "last_used"
        try:
            if when is None:
                os.utime(p)
            else:
                os.utime(p, (when, when))
        except FileNotFoundError:
            pass  # evicted meanwhile

    # -- removal -----------------------------------------------------------
    def remove(self, key: str) -> bool:
        """Delete entry ``key`` atomically; False if it was not there."""
        src = self._entry_dir(key)
        dst = self.root / "trash" / f"{key}.{uuid.uuid4().hex[:12]}"
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            return False
        except OSError as e:  # e.g. open files on Windows: leave it for later
            raise CacheError(f"cannot remove cache entry {key}: {e}") from e
        shutil.rmtree(dst, ignore_errors=True)
        return True

    def _sweep_leftovers(self, max_age_s: float = STALE_TMP_S) -> None:
        now = time.time()
        for sub, age in (("tmp", max_age_s), ("trash", 0.0)):
            try:
                with os.scandir(self.root / sub) as it:
                    for e in it:
                        try:
                            if now - e.stat(follow_symlinks=False).st_mtime >= age:
                                shutil.rmtree(e.path, ignore_errors=True)
                        except FileNotFoundError:
                            pass
            except FileNotFoundError:
                pass

    def clear(self, older_than_days: float | None = None) -> int:
        """Remove every entry (``None``) or those unused for ``older_than_days``.

        Also removes leftovers of crashed writers (in-progress folders older
        than a day).  Returns the number of entries removed.
        """
        cutoff = None if older_than_days is None else time.time() - float(older_than_days) * _DAY
        removed = 0
        for entry in self.ls():
            if cutoff is None or entry.last_used < cutoff:
                removed += self._try_remove(entry.key)
        self._sweep_leftovers()
        return removed

    def _try_remove(self, key: str) -> int:
        try:
            return int(self.remove(key))
        except CacheError:
            return 0

    def enforce_limits(self, max_bytes: int | None = None, max_age_days: float | None = None) -> list[str]:
        """Evict entries unused for ``max_age_days``, then least recently used
        ones until the cache holds at most ``max_bytes``.  Returns the evicted keys.
        """
        if max_bytes is not None and max_bytes < 0:
            raise SettingsError(f"max_bytes must be >= 0, got {max_bytes}")
        evicted = []
        entries = self.ls()
        if max_age_days is not None:
            cutoff = time.time() - float(max_age_days) * _DAY
            keep = []
            for e in entries:
                if e.last_used < cutoff and self._try_remove(e.key):
                    evicted.append(e.key)
                else:
                    keep.append(e)
            entries = keep
        if max_bytes is not None:
            total = sum(e.size_bytes for e in entries)
            for e in sorted(entries, key=lambda en: en.last_used):  # least recently used first
                if total <= max_bytes:
                    break
                if self._try_remove(e.key):
                    evicted.append(e.key)
                    total -= e.size_bytes
        self._sweep_leftovers()
        return evicted
