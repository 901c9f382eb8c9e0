"""Errors of the Resonate wire protocol: stable codes and the one exception type.

This package has its own error base (it sits below everything else and
imports only the standard library, msgpack and numpy).  Every error that
crosses the wire is an ``error`` message carrying one of :class:`ErrorCode`.
"""
from __future__ import annotations

from typing import Optional


class ErrorCode:
    """Stable error codes carried by ``error`` messages.  Never renamed; only added."""

    # frame / message level (raised by the codec)
    MALFORMED_FRAME = "malformed_frame"
    UNKNOWN_MESSAGE = "unknown_message"
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_FIELD = "bad_field"
    FRAME_TOO_LARGE = "frame_too_large"
    CHUNK_TOO_LARGE = "chunk_too_large"
    UPLOAD_TOO_LARGE = "upload_too_large"
    # session / job level (raised by the sessions and the server)
    HANDSHAKE_REQUIRED = "handshake_required"
    UNEXPECTED_MESSAGE = "unexpected_message"
    UNAUTHORIZED = "unauthorized"
    UNKNOWN_JOB = "unknown_job"
    JOB_ENDED = "job_ended"
    TOO_MANY_JOBS = "too_many_jobs"
    SERVER_BUSY = "server_busy"  # out of resources (open files, disk): try again shortly
    BAD_UPLOAD = "bad_upload"
    UPLOAD_TIMEOUT = "upload_timeout"
    PATH_NOT_ALLOWED = "path_not_allowed"
    INPUT_NOT_FOUND = "input_not_found"
    CANCELLED = "cancelled"
    TOO_MANY_ERRORS = "too_many_errors"
    SHUTTING_DOWN = "shutting_down"
    BAD_REFERENCE = "bad_reference"  # the job's reference recording cannot be read or matched
    INTERNAL_ERROR = "internal_error"
    BACKEND_ERROR = "backend_error"
    # downloads of a finished job's files (``fetch``)
    UNKNOWN_OUTPUT = "unknown_output"
    OUTPUT_NOT_READY = "output_not_ready"
    OUTPUT_UNAVAILABLE = "output_unavailable"
    BAD_RANGE = "bad_range"
    TOO_MANY_FETCHES = "too_many_fetches"
    TOO_LARGE_FOR_HTTP = "too_large_for_http"  # HTTP download route only
    # client side only (never on the wire)
    BAD_SEQUENCE = "bad_sequence"
    CONNECTION_LOST = "connection_lost"


class ProtocolError(Exception):
    """A frame or message breaks the protocol, or the peer answered with an ``error``.

    ``code`` is one of :class:`ErrorCode` (or an engine code the server passed
    on); ``message`` is for people; ``job_id`` / ``ref`` name the job or
    request the bad message referred to when that could be read from it, so
    the server can fail only that job; ``msg_type`` is the offending
    message's ``type`` when it was readable.
    """

    code: str = "protocol_error"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        job_id: Optional[str] = None,
        ref: Optional[str] = None,
    ):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.job_id = job_id
        self.ref = ref
        self.msg_type: Optional[str] = None

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConnectionLost(ProtocolError):
    """The connection is not open (dropped, or not yet welcomed): reconnect, then ``resume``."""

    code = ErrorCode.CONNECTION_LOST
