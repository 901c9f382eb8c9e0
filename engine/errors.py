"""Typed errors raised where bad data enters the system.

Every error carries a stable machine-readable ``code`` (used by the CLI exit
message and by the websocket protocol's ``error`` message) and a message a user
can act on.  Codes never change once published; add new ones instead.
"""
from __future__ import annotations


class ResonateError(Exception):
    """Base class of every error Resonate raises on purpose."""

    code: str = "resonate_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class InputError(ResonateError):
    """The input file or stream cannot be used (missing, not audio, truncated)."""

    code = "bad_input"


class BadReferenceError(InputError):
    """The reference recording a job should be matched to cannot be used (not audio, silent,
    truncated ...); the message says why."""

    code = "bad_reference"


class NotAudioError(InputError):
    code = "not_audio"


class EmptyAudioError(InputError):
    code = "empty_audio"


class TruncatedAudioError(InputError):
    code = "truncated_audio"


class NonFiniteAudioError(InputError):
    """Samples are NaN or infinite."""

    code = "non_finite_samples"


class UnsupportedAudioError(InputError):
    """Sample rate, channel count or container outside what Resonate accepts."""

    code = "unsupported_audio"


class OutputError(ResonateError):
    """An output path cannot be written."""

    code = "output_unwritable"


class SettingsError(ResonateError):
    """A setting, preset or option value is invalid."""

    code = "bad_settings"


class ModelUnavailableError(ResonateError):
    """Model weights cannot be found or loaded."""

    code = "model_unavailable"


class DeviceUnavailableError(ResonateError):
    code = "device_unavailable"
