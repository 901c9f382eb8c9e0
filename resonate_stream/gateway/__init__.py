"""Websocket gateway: the server side of the protocol in :mod:`resonate_protocol`.

Modules: :mod:`.server` (listening, the job registry), :mod:`.connection`
(one websocket pumped through a ``resonate_protocol.ServerSession``),
:mod:`.http_routes` (plain HTTP on the same port), :mod:`.live_job` (a
running job's output for its followers), :mod:`.jobs` (the backend
interface), :mod:`.spool` and :mod:`.outputs`.  See ``docs/protocol.md``.

The server is imported lazily so that importing the backend interface does
not pull in the websockets server machinery.
"""
from __future__ import annotations

__all__ = ["GatewayServer", "JobBackend", "JobSpec", "FileJobInput", "UploadJobInput", "RunnerBackend"]


def __getattr__(name: str):
    if name == "GatewayServer":
        from .server import GatewayServer

        return GatewayServer
    if name in ("JobBackend", "JobSpec", "FileJobInput", "UploadJobInput", "RunnerBackend"):
        from . import jobs

        return getattr(jobs, name)
    raise AttributeError(name)
