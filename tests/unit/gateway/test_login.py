"""POST /login and the bearer session check every other endpoint relies on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from datastore_common.errors import (
    AuthenticationError,
    CredentialError,
    PeerUnavailableError,
    SessionRefusedError,
)
from datastore_common.testing.fakes import FakeSessions
from datastore_gateway.session_cache import CachedSessions
from tests.support.factories import seed_body
from tests.unit.gateway.conftest import Gateway, build_gateway

ROOT = {"auth": "simple", "username": "root", "password": "pw"}


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

    def test_a_login_body_over_a_few_kib_is_413_and_icat_is_not_asked(
        self, gateway: Gateway
    ) -> None:
        assert gateway.settings.gateway.max_login_body_bytes == 8 * 1024
        body = {**ROOT, "password": "p" * 9000}  # the archive cap (64 MiB) would let it in
        answer = gateway.client.post("/login", json=body)
        assert answer.status_code == 413
        assert "gateway.max_login_body_bytes" in answer.json()["detail"]
        assert gateway.sessions.sessions == {}

    def test_a_streamed_login_body_is_cut_at_the_cap_too(self, gateway: Gateway) -> None:
        def chunks():  # type: ignore[no-untyped-def]
            yield b'{"auth": "simple", "username": "root", "password": "'
            for _ in range(10):
                yield b"p" * 1024
            yield b'"}'

        answer = gateway.client.post(
            "/login", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 413
        assert gateway.sessions.sessions == {}

    def test_icat_down_at_login_is_503_with_retry_after(self, gateway: Gateway) -> None:
        async def down(auth: str, credentials: Mapping[str, str]) -> str:
            raise PeerUnavailableError("icat login: connection refused")

        gateway.sessions.login = down  # type: ignore[method-assign]
        answer = gateway.client.post("/login", json=ROOT)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"]


async def test_logins_beyond_the_limit_wait_briefly_then_get_503(tmp_path: Path) -> None:
    harness = build_gateway(tmp_path, max_concurrent_logins=2, login_wait_seconds=0.2)
    release, both_asked = asyncio.Event(), asyncio.Event()
    asked: list[str] = []
    real_login = harness.sessions.login

    async def slow_login(auth: str, credentials: Mapping[str, str]) -> str:
        asked.append(credentials["username"])
        if len(asked) == 2:
            both_asked.set()
        await release.wait()
        return await real_login(auth, credentials)

    harness.sessions.login = slow_login  # type: ignore[method-assign]
    app = harness.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            waiting = [asyncio.create_task(client.post("/login", json=ROOT)) for _ in range(2)]
            await asyncio.wait_for(both_asked.wait(), timeout=5)
            refused = await client.post("/login", json=ROOT)
            release.set()
            answered = await asyncio.gather(*waiting)
            later = await client.post("/login", json=ROOT)  # the slots are free again
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert "gateway.max_concurrent_logins" in refused.json()["detail"]
    assert [a.status_code for a in answered] == [200, 200]
    assert later.status_code == 200
    assert len(asked) == 3  # the refused login never reached ICAT


async def test_a_login_beyond_the_limit_gets_the_next_free_turn(tmp_path: Path) -> None:
    harness = build_gateway(tmp_path, max_concurrent_logins=1, login_wait_seconds=30)
    release, first_asked = asyncio.Event(), asyncio.Event()
    real_login = harness.sessions.login

    async def slow_login(auth: str, credentials: Mapping[str, str]) -> str:
        if not first_asked.is_set():
            first_asked.set()
            await release.wait()
        return await real_login(auth, credentials)

    harness.sessions.login = slow_login  # type: ignore[method-assign]
    app = harness.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            first = asyncio.create_task(client.post("/login", json=ROOT))
            await asyncio.wait_for(first_asked.wait(), timeout=5)
            second = asyncio.create_task(client.post("/login", json=ROOT))
            await asyncio.sleep(0.1)
            assert not second.done()  # waiting for the turn, not refused
            release.set()
            answers = await asyncio.gather(first, second)
    assert [a.status_code for a in answers] == [200, 200]


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

    @pytest.mark.parametrize("path", ["/archive", "/restore"])
    def test_icat_unable_to_check_the_session_fails_closed_before_the_body_is_read(
        self, gateway: Gateway, path: str
    ) -> None:
        async def down(session_id: str) -> None:
            raise PeerUnavailableError("icat getUserName: connection refused")

        headers = {
            "Authorization": f"Bearer {gateway.login()}",
            "Content-Type": "application/json",
        }
        gateway.sessions.check = down  # type: ignore[assignment,method-assign]
        # Not even JSON: had the body been read (the check let pass), this would be a 422.
        answer = gateway.client.post(path, content=b"{" * 10_000, headers=headers)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"]
        assert "www-authenticate" not in answer.headers
        assert gateway.publisher.published == []

    def test_sessions_not_open_yet_is_503_with_a_bearer_and_401_without(
        self, gateway: Gateway
    ) -> None:
        headers = gateway.bearer()
        gateway.app.state.gateway.sessions = None
        assert gateway.client.post("/archive", json=seed_body(), headers=headers).status_code == 503
        assert gateway.client.post("/archive", json=seed_body()).status_code == 401


class TestPeersRefusingUs:
    """A peer refusing *our* credential is a 503 for the caller, never a 401 that would tell
    them their session is bad; it counts in datastore_credential_failures_total."""

    @pytest.mark.parametrize(
        "refusal",
        [
            CredentialError("FTS3 GET /jobs: (401: our FTS credential was refused)"),
            AuthenticationError("FTS3 GET /jobs: 419 no delegated proxy"),
        ],
        ids=["credential-error", "a-peer-authentication-error"],
    )
    def test_a_peer_refusing_our_credential_is_503_for_the_caller(
        self, gateway: Gateway, refusal: Exception
    ) -> None:
        async def refused(job_ids: object) -> None:
            raise refusal

        headers = gateway.bearer()
        gateway.transfers.status = refused  # type: ignore[assignment,method-assign]
        before = credential_failures(gateway)
        answer = gateway.client.get("/job/0d5d1a5e-4b7e-5c1e-9c1a-3f0b2d6e7a11", headers=headers)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"]
        assert "www-authenticate" not in answer.headers
        assert "not yours" in answer.json()["detail"]
        assert "FTS3" not in answer.json()["detail"]  # nothing of our credentials leaks
        assert credential_failures(gateway) == before + 1

    def test_the_callers_own_refused_session_is_still_401(self, gateway: Gateway) -> None:
        assert issubclass(SessionRefusedError, AuthenticationError)
        answer = gateway.client.get(
            "/job/0d5d1a5e-4b7e-5c1e-9c1a-3f0b2d6e7a11",
            headers={"Authorization": "Bearer not-a-session"},
        )
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")


def credential_failures(gateway: Gateway) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("datastore_credential_failures_total", {"queue": "gateway"})
    return value or 0.0


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
