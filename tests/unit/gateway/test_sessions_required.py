"""Every route but the public ones refuses a request without a session (401), whatever it
is, a route added later included: the test walks ``app.routes``, so a new route cannot slip
through unnoticed. The public set is written here, on its own, on purpose."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from tests.unit.gateway.conftest import Gateway, build_gateway

#: Answered without a session: logging in, operators' probes, the API's documentation, the
#: web page's static files (it logs in itself, with POST /login).
PUBLIC = {
    ("POST", "/login"),
    ("GET", "/version"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("HEAD", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("HEAD", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("HEAD", "/redoc"),
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/ui"),
    ("GET", "/ui/app.js"),
    ("GET", "/ui/logic.js"),
    ("GET", "/ui/style.css"),
}


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route the application serves."""
    found = []
    for route in iter_route_contexts(app.routes):  # included routers' routes too
        assert route.path, f"a route without a path: {route!r}"
        assert route.methods, f"{route.path}: a route without methods (a mount?)"
        found += [(method, route.path) for method in sorted(route.methods)]
    assert len(found) > len(PUBLIC), "no routes found: is the walk still right?"
    return found


def concrete(path: str) -> str:
    """The template with a plausible value in every parameter (a job id must look like one)."""
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


def call(gateway: Gateway, method: str, path: str, **headers: str) -> int:
    answer = gateway.client.request(
        method, concrete(path), headers=headers, json={} if method in {"POST", "PUT"} else None
    )
    return answer.status_code


def test_the_public_set_is_exactly_what_answers_without_a_session(gateway: Gateway) -> None:
    routes = every_route(gateway.app)
    assert set(routes) >= PUBLIC, "a public route is gone: update PUBLIC"
    for method, path in routes:
        status = call(gateway, method, path)
        if (method, path) in PUBLIC:
            assert status != 401, f"{method} {path} must not need a session"
        else:
            assert status == 401, f"{method} {path} answered {status} without a session"


@pytest.mark.parametrize("authorization", ["Bearer not-a-session", "Basic cm9vdDpwdw=="])
def test_every_non_public_route_refuses_a_bad_session(gateway: Gateway, authorization: str) -> None:
    for method, path in every_route(gateway.app):
        if (method, path) not in PUBLIC:
            status = call(gateway, method, path, Authorization=authorization)
            assert status == 401, f"{method} {path} answered {status}"


def test_a_route_added_later_without_a_session_check_is_still_closed(gateway: Gateway) -> None:
    async def forgot_current_user() -> dict[str, str]:
        return {"secret": "anyone can read this"}

    gateway.app.add_api_route("/investigations/{investigation_id}", forgot_current_user)
    assert call(gateway, "GET", "/investigations/{investigation_id}") == 401
    bearer = gateway.bearer()
    answer = gateway.client.get("/investigations/7", headers=bearer)
    assert answer.status_code == 200


def test_without_a_session_nothing_else_is_consulted(tmp_path: Path) -> None:
    """401, not 503, when ICAT, FTS and the ledger are all unavailable: a caller without a
    session learns nothing, and the gateway asks nobody."""
    harness = build_gateway(tmp_path)
    with harness.client:
        state = harness.app.state.gateway
        state.sessions = state.transfers = state.ledger = state.selections = None
        for method, path in every_route(harness.app):
            if (method, path) not in PUBLIC:
                assert call(harness, method, path) == 401, f"{method} {path}"
    assert harness.transfers.status_calls == 0


def test_a_path_no_route_takes_is_still_404(gateway: Gateway) -> None:
    assert gateway.client.get("/nowhere").status_code == 404
