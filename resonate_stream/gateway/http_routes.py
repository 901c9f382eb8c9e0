"""The gateway's plain-HTTP side on the websocket port.

* ``GET /health``: a small JSON status document;
* ``GET /presets``: the processing presets (JSON), when the server was given them;
* ``GET /jobs/<job_id>/<kind>``: a finished job's output file (up to
  ``http_download_max_bytes``; larger files through the websocket ``fetch``);
* ``GET /`` and other paths: static files from ``web_root`` (the browser page);
* the websocket upgrade on ``/ws``: origin and header/query token checks.

:func:`process_request` is the ``process_request`` hook of
``websockets.asyncio.server.serve``.
"""
from __future__ import annotations

import asyncio
import email.utils
import http
import hmac
import json
import mimetypes
import os
import re
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Optional

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

import resonate_protocol as P

from .connection import SERVER_NAME

if TYPE_CHECKING:  # pragma: no cover
    from .server import GatewayServer

WS_PATH = "/ws"


async def process_request(server: "GatewayServer", connection: ServerConnection,
                          request: Request) -> Optional[Response]:
    """Answer a plain HTTP request, or check a websocket upgrade (None: go on with it)."""
    path, _, query = request.path.partition("?")
    upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
    if not upgrade:
        if path == "/health":
            return _health(server)
        if path == "/presets":
            if server.presets_body is None:
                return connection.respond(404, "this server has no presets to show\n")
            return _http_response(200, server.presets_body, "application/json")
        if path.startswith("/jobs/"):
            return await _http_download(server, request, path, query)
        return _static(server, connection, path)
    if path != WS_PATH:
        return connection.respond(404, f"the websocket endpoint is {WS_PATH}\n")
    origin = request.headers.get("Origin")
    if origin is not None and not _origin_ok(server, origin, request.headers.get("Host", "")):
        return connection.respond(403, "cross-origin websocket connections are not allowed\n")
    supplied = _supplied_token(request, query)
    if supplied is not None and server.token is not None:
        if not hmac.compare_digest(supplied.encode(), server.token.encode()):
            return connection.respond(401, "wrong token\n")
        connection.resonate_http_authorized = True  # type: ignore[attr-defined]
    return None


async def _http_download(server: "GatewayServer", request: Request, path: str, query: str) -> Response:
    """``GET /jobs/<job_id>/<kind>``: a finished job's output file as an attachment."""
    if server.token is not None:
        supplied = _supplied_token(request, query)
        if supplied is None or not hmac.compare_digest(supplied.encode(), server.token.encode()):
            return _http_error(401, P.ErrorCode.UNAUTHORIZED, "this server needs ?token=<token> on downloads")
    parts = path.split("/")
    if len(parts) != 4 or not parts[2] or not parts[3]:
        return _http_error(404, P.ErrorCode.UNKNOWN_OUTPUT, "downloads are at /jobs/<job_id>/<kind>")
    job_id, kind = (urllib.parse.unquote(x) for x in parts[2:4])
    try:
        P.check_fetch_target(job_id, kind, server.limits)  # the checks of a fetch
        out = server.output_file(job_id, kind)
    except P.ProtocolError as exc:
        status = {P.ErrorCode.OUTPUT_NOT_READY: 409, P.ErrorCode.BAD_FIELD: 404}.get(exc.code, 404)
        code = P.ErrorCode.UNKNOWN_OUTPUT if exc.code == P.ErrorCode.BAD_FIELD else exc.code
        return _http_error(status, code, exc.message)
    if out.size > server.http_download_max_bytes:
        return _http_error(
            413, P.ErrorCode.TOO_LARGE_FOR_HTTP,
            f"{out.filename} is {out.size} bytes, more than this route sends "
            f"({server.http_download_max_bytes}); download it with the websocket 'fetch' message "
            "(the web page and the Python client do this)",
        )
    try:
        body = await asyncio.to_thread(out.path.read_bytes)
    except OSError:
        return _http_error(404, P.ErrorCode.OUTPUT_UNAVAILABLE, f"{out.filename} is gone from the server")
    quoted = urllib.parse.quote(out.filename)
    ascii_name = re.sub(r'[^A-Za-z0-9._ ()-]', "_", out.filename)
    return _http_response(200, body, out.mime, extra=[
        ("Content-Disposition", f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"),
    ])


def _origin_ok(server: "GatewayServer", origin: str, host: str) -> bool:
    if origin in server.allowed_origins:
        return True
    parsed = urllib.parse.urlsplit(origin)
    return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host.lower()


def _health(server: "GatewayServer") -> Response:
    body = json.dumps(
        {
            "status": "closing" if server._closing else "ok",
            "server": SERVER_NAME,
            "protocol": P.PROTOCOL_VERSION,
            "jobs_running": server.running_jobs(),
            "jobs_known": len(server.jobs),
            "max_jobs": server.limits.max_jobs,
            "connections": len(server._connections),
            "auth": server.token is not None,
        }
    ).encode()
    return _http_response(200, body, "application/json")


def _static(server: "GatewayServer", connection: ServerConnection, path: str) -> Response:
    if server.web_root is None:
        if path == "/":
            return connection.respond(200, f"Resonate gateway. Websocket endpoint: {WS_PATH}\n")
        return connection.respond(404, "not found\n")
    rel = urllib.parse.unquote(path).lstrip("/")
    parts = PurePosixPath(rel).parts
    if "\x00" in rel or "\\" in rel or any(p in ("..", ".") for p in parts):
        return connection.respond(404, "not found\n")
    target = Path(os.path.realpath(server.web_root.joinpath(*parts)))
    if target.is_dir():
        target = target / "index.html"
    if not (target == server.web_root or target.is_relative_to(server.web_root)) or not target.is_file():
        return connection.respond(404, "not found\n")
    ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
        ctype += "; charset=utf-8"
    return _http_response(200, target.read_bytes(), ctype)


def _http_response(status: int, body: bytes, content_type: str,
                   extra: Optional[list[tuple[str, str]]] = None) -> Response:
    st = http.HTTPStatus(status)
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            *(extra or []),
        ]
    )
    return Response(st.value, st.phrase, headers, body)


def _http_error(status: int, code: str, message: str) -> Response:
    """A plain-text HTTP error: ``error [code]: message``."""
    return _http_response(status, f"error [{code}]: {message}\n".encode(), "text/plain; charset=utf-8")


def _supplied_token(request: Request, query: str) -> Optional[str]:
    """The token a request carries: ``Authorization: Bearer`` header, else ``?token=``."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    q = urllib.parse.parse_qs(query).get("token")
    return q[0] if q else None
