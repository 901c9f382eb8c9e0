"""The cache folder: entries by key, limits (size, age), listing, clearing."""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Mapping

from engine.audio import SAMPLE_RATE
from engine.errors import SettingsError

from .errors import CacheError, CacheMissError
from .files import CacheEntry, StemReader, StemWriter, folder_size
from .keys import KEY_RE

_DAY = 86400.0
#: in-progress folders older than this are leftovers of crashed writers
STALE_TMP_S = _DAY


def default_cache_dir() -> Path:
    """``$RESONATE_CACHE_DIR`` if set, else ``~/.cache/resonate``."""
    env = os.environ.get("RESONATE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resonate"


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
        if not isinstance(key, str) or not KEY_RE.match(key):
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
            return CacheEntry(key=meta["key"], operation=meta["operation"], size_bytes=folder_size(folder),
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
        return folder_size(self.root / "entries")

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
