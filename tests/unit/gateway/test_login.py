"""POST /login and the bearer session check every other endpoint relies on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from datastore_common.errors import AuthenticationError
from datastore_common.testing.fakes import FakeSessions
from datastore_gateway.session_cache import CachedSessions
from tests.support.factories import seed_body
from tests.unit.gateway.conftest import Gateway, build_gateway


class TestLogin:
    def test_login_answers_the_icat_session_id(self, gateway: Gateway) -> None:
        answer = gateway.client.post(
            "/login", json={"auth": "simple", "username": "root", "password": "pw"}
        )
        assert answer.status_code == 200
        session_id = answer.json()["sessionId"]
        assert gateway.sessions.sessions[session_id] == "simple/root"

    def test_wrong_password_is_refused_with_401_and_a_reason(self, gateway: Gateway) -> None:
        answer = gateway.client.post(
            "/login", json={"auth": "simple", "username": "root", "password": "nope"}
        )
        assert answer.status_code == 401
        assert answer.json() == {"detail": "wrong username or password"}
        assert gateway.sessions.sessions == {}

    def test_login_body_without_username_is_422(self, gateway: Gateway) -> None:
        answer = gateway.client.post("/login", json={"auth": "simple", "password": "pw"})
        assert answer.status_code == 422
        assert "username" in answer.json()["reason"]


class TestBearer:
    def test_missing_bearer_is_401_with_www_authenticate(self, gateway: Gateway) -> None:
        answer = gateway.client.post("/archive", json=seed_body())
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in answer.json()["detail"]

    @pytest.mark.parametrize("path", ["/archive", "/restore"])
    @pytest.mark.parametrize("authorization", [None, "Bearer not-a-session"])
    def test_the_session_is_refused_before_the_body_is_read(
        self, gateway: Gateway, path: str, authorization: str | None
    ) -> None:
        # Not even JSON: had the body been parsed first, this would be a 422.
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        answer = gateway.client.post(path, content=b"{" * 10_000, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")

    def test_a_good_session_with_a_broken_body_is_still_a_422(self, gateway: Gateway) -> None:
        headers = {
            "Authorization": f"Bearer {gateway.login()}",
            "Content-Type": "application/json",
        }
        answer = gateway.client.post("/archive", content=b"{not json", headers=headers)
        assert answer.status_code == 422

    def test_unknown_session_is_401(self, gateway: Gateway) -> None:
        answer = gateway.client.post(
            "/archive", json=seed_body(), headers={"Authorization": "Bearer not-a-session"}
        )
        assert answer.status_code == 401
        assert answer.json()["detail"] == "session expired or unknown"
        assert answer.headers["www-authenticate"].startswith("Bearer")

    def test_expired_session_is_401_once_the_cache_lapses(self, tmp_path: Path) -> None:
        # No caching: every request asks ICAT, so expiry shows at once.
        gw = build_gateway(tmp_path)
        gw.app.state.gateway.sessions.ttl = 0
        with gw.client:
            session_id = gw.login()
            headers = {"Authorization": f"Bearer {session_id}"}
            assert gw.client.post("/archive", json=seed_body(), headers=headers).status_code == 202
            gw.sessions.expire(session_id)
            answer = gw.client.post("/archive", json=seed_body(), headers=headers)
        assert answer.status_code == 401
        assert answer.json()["detail"] == "session expired or unknown"

    def test_session_is_checked_once_per_cache_period(self, gateway: Gateway) -> None:
        headers = gateway.bearer()
        for n in range(5):
            body = seed_body()
            body["investigations"][0]["visitId"] = str(n)  # distinct bodies: no replay
            assert gateway.client.post("/archive", json=body, headers=headers).status_code == 202
        assert gateway.sessions.checks == 1
        assert len(gateway.publisher.published) == 5

    def test_a_non_bearer_scheme_is_401(self, gateway: Gateway) -> None:
        answer = gateway.client.post(
            "/archive", json=seed_body(), headers={"Authorization": "Basic cm9vdDpwdw=="}
        )
        assert answer.status_code == 401


class TestCachedSessions:
    async def test_checks_again_after_the_ttl(self) -> None:
        now = [0.0]
        inner = FakeSessions()
        cache = CachedSessions(inner, ttl=60, clock=lambda: now[0])
        session_id = await inner.login("simple", {"username": "root", "password": "pw"})
        await cache.check(session_id)
        now[0] = 59.0
        await cache.check(session_id)
        assert inner.checks == 1
        now[0] = 61.0
        await cache.check(session_id)
        assert inner.checks == 2

    async def test_refusals_are_not_cached(self) -> None:
        inner = FakeSessions()
        cache = CachedSessions(inner, ttl=60)
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                await cache.check("unknown")
        assert inner.checks == 2

    async def test_concurrent_checks_of_one_session_share_one_icat_call(self) -> None:
        class SlowSessions(FakeSessions):
            async def check(self, session_id: str):  # type: ignore[no-untyped-def]
                await asyncio.sleep(0.05)
                return await super().check(session_id)

        inner = SlowSessions()
        cache = CachedSessions(inner, ttl=60)
        session_id = await inner.login("simple", {"username": "root", "password": "pw"})
        users = await asyncio.gather(*(cache.check(session_id) for _ in range(20)))
        assert {u.user_name for u in users} == {"simple/root"}
        assert inner.checks == 1

    async def test_size_is_bounded(self) -> None:
        inner = FakeSessions()
        cache = CachedSessions(inner, ttl=60, max_entries=3)
        ids = [
            await inner.login("simple", {"username": "root", "password": "pw"}) for _ in range(5)
        ]
        for session_id in ids:
            await cache.check(session_id)
        assert len(cache._entries) == 3
