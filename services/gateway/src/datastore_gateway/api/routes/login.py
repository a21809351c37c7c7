"""POST /login: an ICAT session for the user, used as the bearer token afterwards."""

from __future__ import annotations

from fastapi import APIRouter

from datastore_gateway.api.deps import LoginsDep, SessionsDep
from datastore_gateway.schemas import LoginAccepted, LoginRequest, OriginalLoginRequest, Problem

router = APIRouter(tags=["Login"])


@router.post(
    "/login",
    responses={
        401: {"model": Problem, "description": "ICAT refused the credentials"},
        413: {"model": Problem, "description": "Body over gateway.max_login_body_bytes"},
        503: {
            "model": Problem,
            "description": "ICAT unavailable, or gateway.max_concurrent_logins logins already "
            "in progress: retry after Retry-After seconds",
        },
    },
)
async def login(
    body: LoginRequest | OriginalLoginRequest, sessions: SessionsDep, logins: LoginsDep
) -> LoginAccepted:
    """Log in to ICAT with an authenticator plugin; the session id is the bearer token.

    The body is ``{"auth", "username", "password"}``, or the original Datastore API's
    ``{"auth", "credentials": {"username", "password"}}``."""
    async with logins.slot():
        session_id = await sessions.login(body.auth, body.credentials_for_icat)
    return LoginAccepted(sessionId=session_id)
