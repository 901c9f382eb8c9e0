"""One cache entry on disk: its metadata, the streaming writer that publishes it atomically, the reader."""
from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
import soundfile as sf

from engine.io.atomic import fsync_path
from engine.audio import check_finite
from engine.errors import SettingsError

from .errors import CacheError, CacheMissError
from .keys import KEY_RE, canonical

if TYPE_CHECKING:
    from .store import StemCache


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


def folder_size(path: Path) -> int:
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    if e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
                    elif e.is_dir(follow_symlinks=False):
                        total += folder_size(Path(e.path))
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

    def __init__(self, cache: StemCache, key: str, operation: str, params: Mapping | None,
                 sample_rate: int, fsync: bool):
        self.cache = cache
        self.key = key
        self.operation = operation
        self.params = canonical(dict(params or {}))
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
            if not KEY_RE.match(name):
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
