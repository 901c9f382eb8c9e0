"""Typed, range-checked config fields: declare, check and build a config dataclass one way.

A config is a dataclass whose fields are declared with :func:`setting` and a
check: :class:`Number`, :class:`Choice`, :class:`Flag`, :class:`Text`,
:class:`StemMap` (stem name -> value) or :class:`Section` (a nested config).

* :func:`check_fields` (called from the config's ``__post_init__``) checks
  every field and stores its canonical value (numbers as ``float``, integer
  fields as ``int``, flags as ``bool``), so equal settings are equal plain data.
* :func:`build` makes a config from plain data (a YAML file, ``--set``, the
  websocket protocol) on top of a base config: only the keys given change,
  nested sections recurse, stem maps update the base's map, unknown keys are
  named.

Every failure is a :class:`~engine.errors.SettingsError` (code
``bad_settings``) naming the dotted field and what it accepts, e.g.
``master.target_lufs must be a number in [-40, -5], got 'loud'``.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, replace
from numbers import Real
from typing import Any, Mapping

from .errors import SettingsError


def dotted(where: str, key: str) -> str:
    """``where.key`` (just ``key`` at the top level)."""
    return f"{where}.{key}" if where else key


class Check:
    """What one field accepts; :meth:`check` returns the canonical value or raises."""

    def accepts(self) -> str:
        raise NotImplementedError

    def check(self, value: Any, name: str) -> Any:
        raise NotImplementedError

    def fail(self, value: Any, name: str) -> SettingsError:
        return SettingsError(f"{name} must be {self.accepts()}, got {value!r}")


def is_number(value: Any) -> bool:
    """A real number (not a bool; numpy numbers included)."""
    return isinstance(value, Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"


@dataclass(frozen=True)
class Number(Check):
    """A finite number in ``[lo, hi]`` (``[lo, hi)`` with ``open_hi``).

    ``integer``: whole numbers only (stored as ``int``); ``off``: one more
    value allowed outside the range (e.g. 0 = off); ``optional``: None allowed,
    meaning ``none_means``.
    """

    lo: float
    hi: float
    integer: bool = False
    open_hi: bool = False
    off: float | None = None
    optional: bool = False
    none_means: str = ""

    def accepts(self) -> str:
        text = f"{'an integer' if self.integer else 'a number'} in [{self.lo:g}, {self.hi:g}{')' if self.open_hi else ']'}"
        if self.off is not None:
            text = f"{self.off:g} (off) or {text}"
        if self.optional:
            text = f"null ({self.none_means}) or {text}" if self.none_means else f"null or {text}"
        return text

    def check(self, value: Any, name: str) -> Any:
        if value is None and self.optional:
            return None
        if not is_number(value) or not math.isfinite(float(value)):
            raise self.fail(value, name)
        v = float(value)
        if self.integer and v != int(v):
            raise self.fail(value, name)
        in_range = self.lo <= v < self.hi if self.open_hi else self.lo <= v <= self.hi
        if not in_range and v != self.off:
            raise self.fail(value, name)
        return int(v) if self.integer else v


@dataclass(frozen=True)
class Choice(Check):
    """One of ``options`` (names or numbers; a number never matches a name or a flag)."""

    options: tuple

    def accepts(self) -> str:
        return "one of " + ", ".join(str(o) for o in self.options)

    def check(self, value: Any, name: str) -> Any:
        for option in self.options:
            same_kind = isinstance(option, str) == isinstance(value, str) and not isinstance(value, bool)
            if same_kind and value == option:
                return option
        raise self.fail(value, name)


@dataclass(frozen=True)
class Flag(Check):
    """``true`` or ``false``."""

    def accepts(self) -> str:
        return "true or false"

    def check(self, value: Any, name: str) -> bool:
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            return bool(value)
        raise self.fail(value, name)


@dataclass(frozen=True)
class Text(Check):
    """A non-empty string (or None with ``optional``, meaning ``none_means``)."""

    optional: bool = False
    none_means: str = ""

    def accepts(self) -> str:
        text = "a non-empty text"
        if self.optional:
            text = f"null ({self.none_means}) or {text}" if self.none_means else f"null or {text}"
        return text

    def check(self, value: Any, name: str) -> Any:
        if value is None and self.optional:
            return None
        if isinstance(value, str) and value.strip():
            return value
        raise self.fail(value, name)


@dataclass(frozen=True)
class StemMap(Check):
    """A mapping of stem name (text) to a value accepted by ``value``."""

    value: Check

    def accepts(self) -> str:
        return f"a mapping of stem name to {self.value.accepts()}"

    def check(self, value: Any, name: str) -> dict:
        if not isinstance(value, Mapping):
            raise self.fail(value, name)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise SettingsError(f"{name}: stem names must be text, got {key!r}")
            out[key] = self.value.check(item, f"{name}.{key}")
        return out


@dataclass(frozen=True)
class Section(Check):
    """A nested config of class ``cls`` (plain data: a mapping of its settings)."""

    cls: type

    def accepts(self) -> str:
        return "a mapping of settings"

    def check(self, value: Any, name: str) -> Any:
        if isinstance(value, self.cls):
            return value
        raise self.fail(value, name)


def setting(check: Check, default: Any = MISSING, *, factory: Any = MISSING):
    """A dataclass field checked by ``check`` (``factory`` for mutable defaults)."""
    return field(default=default, default_factory=factory, metadata={"check": check})


def check_fields(obj, where: str) -> None:
    """Check every declared field of dataclass ``obj`` and store its canonical value."""
    for f in fields(obj):
        check = f.metadata.get("check")
        if check is not None:
            object.__setattr__(obj, f.name, check.check(getattr(obj, f.name), dotted(where, f.name)))


def build(cls, data: Mapping[str, Any] | None, where: str, base=None):
    """Config ``cls`` from plain ``data`` on top of ``base`` (default ``cls()``).

    Only the keys in ``data`` change; a :class:`Section` recurses into the
    base's section, a :class:`StemMap` updates the base's map.  Unknown keys
    and bad values raise :class:`SettingsError` naming the dotted field.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SettingsError(f"{where or 'settings'} must be a mapping of settings, got {data!r}")
    declared = {f.name: f.metadata["check"] for f in fields(cls) if "check" in f.metadata}
    for key in data:
        if key not in declared:
            known = ", ".join(declared)
            raise SettingsError(f"unknown setting {dotted(where, str(key))} (known: {known})")
    base = cls() if base is None else base
    values = {}
    for key, value in data.items():
        check, name = declared[key], dotted(where, key)
        if isinstance(check, Section):
            values[key] = build(check.cls, value, name, getattr(base, key))
        elif isinstance(check, StemMap):
            values[key] = {**getattr(base, key), **check.check(value, name)}
        else:
            values[key] = check.check(value, name)
    return replace(base, **values)
