"""Clients of the original Datastore API: its POST /login body, and CORS for browser pages."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.support.factories import seed_body
from tests.unit.gateway.conftest import Gateway, build_gateway

ORIGINAL_ROOT = {"auth": "simple", "credentials": {"username": "root", "password": "pw"}}


class TestOriginalLoginBody:
    def test_the_original_body_logs_in_with_the_nested_credentials(self, gateway: Gateway) -> None:
        answer = gateway.client.post("/login", json=ORIGINAL_ROOT)
        assert answer.status_code == 200, answer.text
        assert gateway.sessions.sessions[answer.json()["sessionId"]] == "simple/root"

    def test_the_original_body_passes_its_plugin_on(self, gateway: Gateway) -> None:
        body = {"auth": "db", "credentials": {"username": "alice", "password": "alice-pw"}}
        answer = gateway.client.post("/login", json=body)
        assert answer.status_code == 200, answer.text
        assert gateway.sessions.sessions[answer.json()["sessionId"]] == "db/alice"

    def test_a_wrong_password_in_the_original_body_is_401(self, gateway: Gateway) -> None:
        body = {"auth": "simple", "credentials": {"username": "root", "password": "nope"}}
        answer = gateway.client.post("/login", json=body)
        assert answer.status_code == 401
        assert gateway.sessions.sessions == {}

    def test_the_original_body_without_a_password_is_422_naming_it(self, gateway: Gateway) -> None:
        body = {"auth": "simple", "credentials": {"username": "root"}}
        answer = gateway.client.post("/login", json=body)
        assert answer.status_code == 422
        assert "password" in answer.json()["reason"]

    def test_both_shapes_at_once_are_refused(self, gateway: Gateway) -> None:
        body = {**ORIGINAL_ROOT, "username": "root", "password": "pw"}
        assert gateway.client.post("/login", json=body).status_code == 422
        assert gateway.sessions.sessions == {}

    def test_the_original_body_is_capped_like_ours(self, gateway: Gateway) -> None:
        body = {"auth": "simple", "credentials": {"username": "root", "password": "p" * 9000}}
        answer = gateway.client.post("/login", json=body)
        assert answer.status_code == 413
        assert "gateway.max_login_body_bytes" in answer.json()["detail"]
        assert gateway.sessions.sessions == {}

    def test_the_session_of_the_original_body_archives(self, gateway: Gateway) -> None:
        session_id = gateway.client.post("/login", json=ORIGINAL_ROOT).json()["sessionId"]
        answer = gateway.client.post(
            "/archive", json=seed_body(), headers={"Authorization": f"Bearer {session_id}"}
        )
        assert answer.status_code == 202, answer.text


async def test_original_logins_share_the_concurrency_limit(tmp_path: Path) -> None:
    harness = build_gateway(tmp_path, max_concurrent_logins=1, login_wait_seconds=0.2)
    release, first_asked = asyncio.Event(), asyncio.Event()
    real_login = harness.sessions.login

    async def slow_login(auth: str, credentials: Mapping[str, str]) -> str:
        first_asked.set()
        await release.wait()
        return await real_login(auth, credentials)

    harness.sessions.login = slow_login  # type: ignore[method-assign]
    app = harness.app
    ours = {"auth": "simple", "username": "root", "password": "pw"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            first = asyncio.create_task(client.post("/login", json=ours))
            await asyncio.wait_for(first_asked.wait(), timeout=5)
            refused = await client.post("/login", json=ORIGINAL_ROOT)
            release.set()
            answered = await first
    assert refused.status_code == 503
    assert "gateway.max_concurrent_logins" in refused.json()["detail"]
    assert answered.status_code == 200


ORIGIN = "https://datagateway.example.org"


class TestCors:
    def test_no_cors_headers_by_default(self, gateway: Gateway) -> None:
        assert gateway.settings.gateway.cors_origins == ()
        answer = gateway.client.get("/version", headers={"Origin": ORIGIN})
        assert answer.status_code == 200
        assert "access-control-allow-origin" not in answer.headers

    def test_a_listed_origin_is_allowed(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, cors_origins=[ORIGIN])
        answer = gw.client.get("/version", headers={"Origin": ORIGIN})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == ORIGIN

    def test_another_origin_gets_no_allow_header(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, cors_origins=[ORIGIN])
        answer = gw.client.get("/version", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in answer.headers

    def test_a_preflight_needs_no_session(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, cors_origins=[ORIGIN])
        answer = gw.client.options(
            "/archive",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
            },
        )
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        allowed = answer.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "idempotency-key" in allowed

    def test_errors_carry_the_cors_headers_too(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, cors_origins=[ORIGIN])
        answer = gw.client.post("/archive", json=seed_body(), headers={"Origin": ORIGIN})
        assert answer.status_code == 401  # a browser page can read why
        assert answer.headers["access-control-allow-origin"] == ORIGIN

    def test_a_wildcard_allows_any_origin(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, cors_origins=["*"])
        answer = gw.client.get("/version", headers={"Origin": "https://anywhere.example"})
        assert answer.headers["access-control-allow-origin"] == "*"
