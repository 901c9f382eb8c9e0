"""Websocket gateway: sans-I/O protocol (:mod:`.protocol`), job backend
interface (:mod:`.jobs`), output spool (:mod:`.spool`) and the asyncio server
(:mod:`.server`).  See ``docs/protocol.md``.

The server is imported lazily so that ``protocol`` (used by clients) does not
pull in the websockets server machinery.
"""
from __future__ import annotations

from .protocol import PROTOCOL_VERSION, ErrorCode, Limits, ProtocolError

__all__ = ["PROTOCOL_VERSION", "ErrorCode", "Limits", "ProtocolError", "GatewayServer", "JobBackend",
           "JobSpec", "PathSource", "UploadSource", "RunnerBackend"]


def __getattr__(name: str):
    if name == "GatewayServer":
        from .server import GatewayServer

        return GatewayServer
    if name in ("JobBackend", "JobSpec", "PathSource", "UploadSource", "RunnerBackend"):
        from . import jobs

        return getattr(jobs, name)
    raise AttributeError(name)
