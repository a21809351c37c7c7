"""Pure ASGI middleware: HTTP request ids in logs, HTTP metrics, hard caps on body size, and
the session every non-public path requires.

Pure ASGI (not ``BaseHTTPMiddleware``) so a body is never buffered here: the size cap
refuses an over-long ``Content-Length`` before reading, and counts streamed bytes as the
application reads them, stopping the read as soon as the cap is passed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Mapping
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datastore_common.errors import DatastoreError, SessionRefusedError
from datastore_common.logging import get_logger
from datastore_gateway.metrics import HTTP_REQUESTS, HTTP_SECONDS

log = get_logger(__name__)

#: The header naming one HTTP exchange (the client's, or ours). Inside the gateway that id is
#: ``http_request_id``, never ``request_id``: that is an archive or restore request's id
#: (logged as ``correlation_id``), which one HTTP exchange creates or only reads.
HTTP_REQUEST_ID_HEADER = "x-request-id"


def _too_large(limit: int, setting: str) -> str:
    return f"request body exceeds {limit} bytes ({setting})"


#: The setting that caps every body, unless ``BodySizeLimit.limits`` names a smaller one.
MAX_BODY_SETTING = "gateway.max_body_bytes"


class BodySizeLimit:
    """Cap every request body at ``max_body_bytes``, and the bodies of the paths in ``limits``
    (path -> (bytes, the setting's name)) at their own, smaller caps: ``/login`` reads a few
    KiB at most, so nobody makes it parse megabytes of JSON without a session."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        limits: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limits.get(route_path(scope), (self.max_body_bytes, MAX_BODY_SETTING))
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    response = JSONResponse({"detail": "invalid Content-Length"}, status_code=400)
                    await response(scope, receive, send)
                    return
                if declared > limit:
                    response = JSONResponse({"detail": _too_large(limit, setting)}, status_code=413)
                    await response(scope, receive, send)
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the route's body read: FastAPI re-raises HTTPExceptions
                    # and the exception middleware turns it into the answer.
                    raise HTTPException(status_code=413, detail=_too_large(limit, setting))
            return message

        await self.app(scope, counting_receive, send)


#: The only routes answered without a session: logging in, what operators' probes read, the
#: API's documentation (FastAPI's defaults) and the web page's static files
#: (api/routes/ui.py). Every other route, one added later included, refuses a request without
#: a valid session (401) before anything else happens; a path no route takes is the router's
#: 404 either way.
PUBLIC_PATHS = frozenset(
    {
        "/login",
        "/version",
        "/healthz",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/ui",
        "/ui/app.js",
        "/ui/logic.js",
        "/ui/style.css",
    }
)
UNAUTHENTICATED_HEADERS = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
MISSING_BEARER = "missing 'Authorization: Bearer <sessionId>' (POST /login)"
#: Where ``RequireSession`` leaves the checked session for the route (``request.state``).
CHECKED_SESSION = "datastore_session"
#: Seconds a client is told to wait before retrying after a 503.
RETRY_AFTER_SECONDS = 5


class RequireSession:
    """Refuse every request but to :data:`PUBLIC_PATHS` unless its bearer session is valid,
    before its body is read or any route runs.

    FastAPI reads and validates a request body before it resolves dependencies, so without
    this anyone could make the gateway parse up to ``gateway.max_body_bytes`` of JSON; and a
    route that forgot its ``CurrentUser`` dependency would be open to anyone. The session is
    checked through the same cached ``Sessions`` the routes use and left in the request's
    state for them. It fails closed: no session, or one ICAT refuses, is a 401; a session that
    cannot be checked now (ICAT down, the sessions adapter not open yet) is a 503, never a
    pass.
    """

    def __init__(self, app: ASGIApp, *, public_paths: Collection[str] = PUBLIC_PATHS) -> None:
        self.app = app
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or route_path(scope) in self.public_paths
            or not _routed(scope)  # the router answers 404, session or not
        ):
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        if token is None:
            await _refuse(scope, receive, send, 401, MISSING_BEARER)
            return
        sessions = getattr(scope["app"].state.gateway, "sessions", None)
        if sessions is None:
            await _refuse(scope, receive, send, 503, "cannot check sessions yet: retry later")
            return
        try:
            user = await sessions.check(token)
        except SessionRefusedError as exc:
            await _refuse(scope, receive, send, 401, str(exc))
            return
        except DatastoreError as exc:
            log.warning("session_check_unavailable", error=str(exc))
            await _refuse(
                scope, receive, send, 503, "cannot check your session in ICAT now: retry later"
            )
            return
        scope.setdefault("state", {})[CHECKED_SESSION] = user
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, reason: str) -> None:
    headers = (
        UNAUTHENTICATED_HEADERS if status == 401 else {"Retry-After": str(RETRY_AFTER_SECONDS)}
    )
    response = JSONResponse({"detail": reason}, status_code=status, headers=headers)
    await response(scope, receive, send)


def _routed(scope: Scope) -> bool:
    """Whether any of the application's routes, those added after start-up included, takes
    this path (with this method or another)."""
    routes = getattr(scope["app"], "routes", ())
    return any(route.matches(scope)[0] != Match.NONE for route in routes)


def route_path(scope: Scope) -> str:
    """The request's path below the application's root path (what the routes match)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = str(value.decode("latin-1")).partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class RequestContext:
    """Bind the HTTP request id (the client's X-Request-ID, or a new one) into structlog as
    ``http_request_id``, echo it in the answer's X-Request-ID; count and time the exchange."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        http_request_id = _header(scope, HTTP_REQUEST_ID_HEADER) or uuid.uuid4().hex
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((HTTP_REQUEST_ID_HEADER.encode(), http_request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(http_request_id=http_request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = _route_template(scope)
                elapsed = time.perf_counter() - started
                HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
                HTTP_SECONDS.labels(scope["method"], route).observe(elapsed)
                log.info(
                    "http_request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    seconds=round(elapsed, 4),
                )


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope["headers"]:
        if key == wanted:
            text: str = value.decode("latin-1")[:200]
            return text
    return None


def _route_template(scope: Scope) -> str:
    # The template, not the raw path, so metrics do not grow a label per URL.
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
