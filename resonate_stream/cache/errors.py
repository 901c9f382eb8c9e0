"""Errors of the stem cache."""
from __future__ import annotations

from engine.errors import ResonateError


class CacheError(ResonateError):
    """The cache cannot be used as asked (bad key, unwritable folder, bad stems)."""

    code = "cache_error"


class CacheMissError(CacheError, KeyError):
    """No complete entry for that key."""

    code = "cache_miss"

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message
