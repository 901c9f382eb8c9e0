"""Error types raised by the streaming audio I/O (``engine.io``).

Each subclasses one of the shared classes in :mod:`engine.errors`, so callers
can catch the broad kind (``InputError``, ``OutputError``, ``SettingsError``)
and still read a stable, specific ``code``.
"""
from __future__ import annotations

from engine.errors import (
    EmptyAudioError,
    InputError,
    SettingsError,
    TruncatedAudioError,
)


class AudioFileNotFoundError(InputError):
    """The input path does not exist."""

    code = "file_not_found"


class AudioFileUnreadableError(InputError):
    """The input path exists but cannot be read (a folder, or no permission)."""

    code = "file_unreadable"


class EmptyFileError(EmptyAudioError, TruncatedAudioError):
    """The input file has zero bytes.

    A zero-byte file is both empty and (almost always) an upload or copy that
    was cut off, so it is catchable as either; its code is ``empty_audio``.
    """

    code = "empty_audio"


class UnsupportedExportError(SettingsError):
    """An export format / bit depth / sample rate combination that cannot be written."""

    code = "unsupported_export"
