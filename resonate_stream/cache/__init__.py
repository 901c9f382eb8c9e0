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

from .errors import CacheError, CacheMissError
from .files import CacheEntry, StemReader, StemWriter
from .keys import AudioHasher, cache_key, hash_file
from .store import StemCache, default_cache_dir

__all__ = [
    "CacheError", "CacheMissError", "AudioHasher", "hash_file", "cache_key", "default_cache_dir",
    "CacheEntry", "StemCache", "StemWriter", "StemReader",
]
