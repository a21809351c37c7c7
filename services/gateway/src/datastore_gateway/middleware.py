"""Pure ASGI middleware: HTTP request ids in logs, HTTP metrics, and a hard cap on body size.

Pure ASGI (not ``BaseHTTPMiddleware``) so a body is never buffered here: the size cap
refuses an over-long ``Content-Length`` before reading, and counts streamed bytes as the
application reads them, stopping the read as soon as the cap is passed.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datastore_common.errors import AuthenticationError, DatastoreError
from datastore_common.logging import get_logger
from datastore_gateway.metrics import HTTP_REQUESTS, HTTP_SECONDS

log = get_logger(__name__)

#: The header naming one HTTP exchange (the client's, or ours). Inside the gateway that id is
#: ``http_request_id``, never ``request_id``: that is an archive or restore request's id
#: (logged as ``correlation_id``), which one HTTP exchange creates or only reads.
HTTP_REQUEST_ID_HEADER = "x-request-id"


def _too_large(limit: int) -> str:
    return f"request body exceeds {limit} bytes (gateway.max_body_bytes)"


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
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
                    response = JSONResponse({"detail": _too_large(limit)}, status_code=413)
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
                    raise HTTPException(status_code=413, detail=_too_large(limit))
            return message

        await self.app(scope, counting_receive, send)


#: Routes whose bodies may be large: their caller is authenticated before the body is read.
AUTHENTICATE_BEFORE_BODY = frozenset({"/archive", "/restore"})
UNAUTHENTICATED_HEADERS = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class AuthenticateBeforeBody:
    """Refuse an unauthenticated POST /archive or /restore before reading its body.

    FastAPI reads and validates a request body before it resolves dependencies, so without this
    anyone could make the gateway parse up to ``gateway.max_body_bytes`` of JSON. The session is
    checked through the same cached ``Sessions`` the route uses, so the route's own check is a
    cache hit. Anything but a refused session (ICAT down, say) is left to the route to answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in AUTHENTICATE_BEFORE_BODY:
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        reason = None
        if token is None:
            reason = "missing 'Authorization: Bearer <sessionId>' (POST /login)"
        else:
            sessions = getattr(scope["app"].state.gateway, "sessions", None)
            if sessions is not None:
                try:
                    await sessions.check(token)
                except AuthenticationError as exc:
                    reason = str(exc)
                except DatastoreError:
                    pass
        if reason is not None:
            response = JSONResponse(
                {"detail": reason}, status_code=401, headers=UNAUTHENTICATED_HEADERS
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


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
