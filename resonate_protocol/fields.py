"""Reading and checking the fields of one decoded message map, and the message base class.

Decoding is strict: every field is type-checked (``True`` is not an int, an
int is accepted where a float is expected) and range-checked; unknown *extra*
fields are ignored so that a newer peer can add optional fields without a
version bump.  Violations raise :class:`~.errors.ProtocolError` ``bad_field``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .errors import ErrorCode, ProtocolError
from .limits import JOB_ID_RE, MAX_INT, MAX_PLAIN_DEPTH, MAX_PLAIN_ITEMS, MAX_PLAIN_STR, PROTOCOL_VERSION, Limits

MISSING = object()


def _plain(value: Any, where: str, *, depth: int = 0, budget: list[int] | None = None) -> Any:
    """Check that ``value`` is JSON-like (nil, bool, int, finite float, str, list, str-keyed map).

    Returns the value unchanged; raises ``ValueError`` with a path on violation.
    Bytes, msgpack timestamps and other extension values are refused.
    """
    if budget is None:
        budget = [MAX_PLAIN_ITEMS]
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"{where}: more than {MAX_PLAIN_ITEMS} items")
    if depth > MAX_PLAIN_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_PLAIN_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) >= 2**63:
            raise ValueError(f"{where}: integer out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: NaN/Inf is not allowed")
        return value
    if isinstance(value, str):
        if len(value) > MAX_PLAIN_STR:
            raise ValueError(f"{where}: string longer than {MAX_PLAIN_STR} characters")
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            _plain(item, f"{where}[{i}]", depth=depth + 1, budget=budget)
        return value
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: map keys must be strings")
            _plain(item, f"{where}.{k}", depth=depth + 1, budget=budget)
        return value
    raise ValueError(f"{where}: values of type {type(value).__name__} are not allowed here")


class Fields:
    """Reads and checks the fields of one decoded message map."""

    def __init__(self, m: dict, where: str, limits: Limits):
        self.m = m
        self.where = where
        self.limits = limits
        jid = m.get("job_id")
        self.job_id = jid if isinstance(jid, str) and JOB_ID_RE.match(jid) else None
        ref = m.get("ref")
        self.ref = ref if isinstance(ref, str) and len(ref) <= 64 else None

    def fail(self, name: str, why: str, code: str = ErrorCode.BAD_FIELD) -> ProtocolError:
        return ProtocolError(f"{self.where}.{name}: {why}", code=code, job_id=self.job_id, ref=self.ref)

    def _get(self, name: str, required: bool, nullable: bool, default: Any) -> Any:
        value = self.m.get(name, MISSING)
        if value is MISSING or (value is None and not required):
            if required:
                raise self.fail(name, "missing required field")
            return default
        if value is None and not nullable:
            raise self.fail(name, "must not be nil")
        return value

    def str(
        self,
        name: str,
        *,
        required: bool = True,
        default: Any = None,
        max_len: int = 256,
        choices: tuple[str, ...] | None = None,
        pattern: re.Pattern | None = None,
        nullable: bool = False,
    ) -> Any:
        value = self._get(name, required, nullable, default)
        if value is None or value is default and not required:
            return value
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, got {type(value).__name__}")
        if len(value) > max_len:
            raise self.fail(name, f"longer than {max_len} characters")
        if "\x00" in value:
            raise self.fail(name, "contains a NUL character")
        if choices is not None and value not in choices:
            raise self.fail(name, f"must be one of {', '.join(choices)}; got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(name, f"has an invalid form: {value[:80]!r}")
        return value

    def int(
        self,
        name: str,
        *,
        required: bool = True,
        default: Any = None,
        lo: int = 0,
        hi: int = MAX_INT,
        nullable: bool = False,
    ) -> Any:
        value = self._get(name, required, nullable, default)
        if value is None or value is default and not required:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"expected an integer, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise self.fail(name, f"{value} is outside the allowed range {lo}..{hi}")
        return value

    def float(
        self,
        name: str,
        *,
        required: bool = True,
        default: Any = None,
        lo: float = 0.0,
        hi: float = 1e12,
        nullable: bool = False,
    ) -> Any:
        value = self._get(name, required, nullable, default)
        if value is None or value is default and not required:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(name, f"expected a number, got {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value) or not lo <= value <= hi:
            raise self.fail(name, f"{value} is outside the allowed range {lo}..{hi}")
        return value

    def bool(self, name: str, *, required: bool = True, default: Any = None) -> Any:
        value = self._get(name, required, False, default)
        if value is default and not required:
            return value
        if not isinstance(value, bool):
            raise self.fail(name, f"expected a boolean, got {type(value).__name__}")
        return value

    def bytes(self, name: str, *, max_len: int, code: str = ErrorCode.BAD_FIELD) -> bytes:
        value = self._get(name, True, False, None)
        if not isinstance(value, (bytes, bytearray)):
            raise self.fail(name, f"expected binary data (msgpack bin), got {type(value).__name__}")
        if len(value) > max_len:
            raise self.fail(name, f"{len(value)} bytes is more than the limit of {max_len} bytes", code)
        return bytes(value)

    def map(self, name: str, *, required: bool = True, default: Any = None, nullable: bool = False) -> Any:
        """A JSON-like map (str keys; nil/bool/int/float/str/list/map values)."""
        value = self._get(name, required, nullable, default)
        if value is None or value is default and not required:
            return value
        if not isinstance(value, dict):
            raise self.fail(name, f"expected a map, got {type(value).__name__}")
        try:
            _plain(value, name)
        except ValueError as exc:
            raise self.fail(name, str(exc)) from None
        return value

    def raw_map(self, name: str, *, required: bool = True) -> Any:
        """A map with str keys whose values are checked by the caller."""
        value = self._get(name, required, False, None)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise self.fail(name, "expected a map with string keys")
        return value

    def sub(self, name: str, m: dict) -> "Fields":
        f = Fields(m, f"{self.where}.{name}", self.limits)
        f.job_id, f.ref = self.job_id, self.ref
        return f


@dataclass(frozen=True)
class Message:
    """Base of every protocol message.  ``TYPE`` is the wire ``"type"``."""

    TYPE: ClassVar[str] = ""

    def to_map(self) -> dict:
        """The msgpack map of this message: ``type``, ``v``, then the fields."""
        out: dict = {"type": self.TYPE, "v": PROTOCOL_VERSION}
        for f in fields(self):
            out[f.name] = _to_wire(getattr(self, f.name))
        return out

    @classmethod
    def _from_fields(cls, f: Fields) -> "Message":  # pragma: no cover - abstract
        raise NotImplementedError


def _to_wire(value: Any) -> Any:
    if isinstance(value, Part):
        return value.to_map()
    return value


@dataclass(frozen=True)
class Part:
    """A nested map inside a message (input, options)."""

    def to_map(self) -> dict:
        return {f.name: _to_wire(getattr(self, f.name)) for f in fields(self)}
