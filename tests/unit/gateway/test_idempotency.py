"""The same archive request twice gets the first answer; concurrent duplicates archive once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from datastore_common.errors import PeerUnavailableError
from datastore_gateway.idempotency import (
    ClaimState,
    IdempotencyKeyReusedError,
    SqliteIdempotencyStore,
    run_once,
    store_from_url,
)
from tests.support.factories import seed_body
from tests.unit.gateway.conftest import AsyncGateway, Gateway, build_gateway


def other_body() -> dict[str, Any]:
    body = seed_body()
    body["investigations"][0]["visitId"] = "2"
    return body


class TestOverHttp:
    def test_same_key_returns_the_first_answer(self, gateway: Gateway) -> None:
        headers = {**gateway.bearer(), "Idempotency-Key": "abc"}
        first = gateway.client.post("/archive", json=seed_body(), headers=headers)
        again = gateway.client.post("/archive", json=seed_body(), headers=headers)
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert len(gateway.publisher.published) == 1

    def test_same_body_without_key_returns_the_first_answer(self, gateway: Gateway) -> None:
        headers = gateway.bearer()
        first = gateway.client.post("/archive", json=seed_body(), headers=headers)
        # Same content, different spelling: key order and white space do not matter.
        reordered = {"investigations": [dict(reversed(seed_body()["investigations"][0].items()))]}
        again = gateway.client.post("/archive", json=reordered, headers=headers)
        assert again.json() == first.json()
        assert len(gateway.publisher.published) == 1

    def test_same_body_from_another_session_of_the_same_user_is_a_duplicate(
        self, gateway: Gateway
    ) -> None:
        first = gateway.client.post("/archive", json=seed_body(), headers=gateway.bearer())
        again = gateway.client.post("/archive", json=seed_body(), headers=gateway.bearer())
        assert again.json() == first.json()

    def test_same_body_from_another_user_is_archived_again(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, archivers=["simple/root", "db/alice"])
        with gw.client:
            first = gw.client.post("/archive", json=seed_body(), headers=gw.bearer())
            alice = gw.bearer("alice", "alice-pw", auth="db")
            second = gw.client.post("/archive", json=seed_body(), headers=alice)
        assert first.json()["request_id"] != second.json()["request_id"]
        assert len(gw.publisher.published) == 2

    def test_different_bodies_are_different_requests(self, gateway: Gateway) -> None:
        headers = gateway.bearer()
        first = gateway.client.post("/archive", json=seed_body(), headers=headers)
        second = gateway.client.post("/archive", json=other_body(), headers=headers)
        assert first.json()["job_ids"] != second.json()["job_ids"]
        assert len(gateway.publisher.published) == 2

    def test_key_reused_for_another_body_is_422(self, gateway: Gateway) -> None:
        headers = {**gateway.bearer(), "Idempotency-Key": "abc"}
        gateway.client.post("/archive", json=seed_body(), headers=headers)
        answer = gateway.client.post("/archive", json=other_body(), headers=headers)
        assert answer.status_code == 422
        assert "Idempotency-Key was already used" in answer.json()["detail"]

    def test_new_key_with_same_body_archives_again(self, gateway: Gateway) -> None:
        headers = gateway.bearer()
        first = gateway.client.post(
            "/archive", json=seed_body(), headers={**headers, "Idempotency-Key": "one"}
        )
        second = gateway.client.post(
            "/archive", json=seed_body(), headers={**headers, "Idempotency-Key": "two"}
        )
        assert first.json() != second.json()
        assert len(gateway.publisher.published) == 2

    def test_window_zero_switches_deduplication_off(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, idempotency_window_seconds=0)
        with gw.client:
            headers = gw.bearer()
            gw.client.post("/archive", json=seed_body(), headers=headers)
            gw.client.post("/archive", json=seed_body(), headers=headers)
        assert len(gw.publisher.published) == 2

    @pytest.mark.parametrize("key", [None, "same-key"])
    async def test_concurrent_duplicates_archive_once(
        self, async_gateway: AsyncGateway, key: str | None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        publish = async_gateway.publisher.publish

        async def slow_publish(*args: Any, **kwargs: Any) -> None:
            await asyncio.sleep(0.2)  # keep the first request busy while the others arrive
            await publish(*args, **kwargs)

        monkeypatch.setattr(async_gateway.publisher, "publish", slow_publish)
        headers = await async_gateway.bearer()
        if key is not None:
            headers["Idempotency-Key"] = key
        answers = await asyncio.gather(
            *(
                async_gateway.client.post("/archive", json=seed_body(), headers=headers)
                for _ in range(20)
            )
        )
        assert {a.status_code for a in answers} == {202}
        assert len({a.text for a in answers}) == 1
        assert len(async_gateway.publisher.published) == 1


class TestRunOnce:
    @pytest.fixture
    async def store(self, tmp_path: Path) -> Any:
        store = SqliteIdempotencyStore(tmp_path / "keys.sqlite")
        await store.open()
        yield store
        await store.close()

    async def test_failed_work_releases_the_key(self, store: SqliteIdempotencyStore) -> None:
        async def fail(_request_id: str) -> str:
            raise PeerUnavailableError("down")

        async def work(_request_id: str) -> str:
            return "answer"

        with pytest.raises(PeerUnavailableError):
            await run_once(store, "k", "f", fail, window=60)
        assert await run_once(store, "k", "f", work, window=60) == ("answer", False)
        assert await run_once(store, "k", "f", work, window=60) == ("answer", True)

    async def test_answer_expires_after_the_window(self, store: SqliteIdempotencyStore) -> None:
        now = [1000.0]
        calls = 0

        async def work(_request_id: str) -> str:
            nonlocal calls
            calls += 1
            return f"answer-{calls}"

        assert await run_once(store, "k", "f", work, window=60, clock=lambda: now[0]) == (
            "answer-1",
            False,
        )
        now[0] += 59
        assert (await run_once(store, "k", "f", work, window=60, clock=lambda: now[0]))[1]
        now[0] += 2
        assert await run_once(store, "k", "f", work, window=60, clock=lambda: now[0]) == (
            "answer-2",
            False,
        )

    async def test_a_dead_owners_reservation_is_taken_over_after_the_lease(
        self, store: SqliteIdempotencyStore
    ) -> None:
        claim = await store.reserve("k", "f", now=1000.0, window=600, lease=120)
        assert claim.state is ClaimState.RESERVED  # ...and its owner dies before completing
        busy = await store.reserve("k", "f", now=1100.0, window=600, lease=120)
        assert busy.state is ClaimState.PENDING
        taken = await store.reserve("k", "f", now=1121.0, window=600, lease=120)
        assert taken.state is ClaimState.RESERVED

    async def test_a_duplicate_gives_up_waiting_with_a_transient_error(
        self, store: SqliteIdempotencyStore
    ) -> None:
        await store.reserve("k", "f", now=1000.0, window=600, lease=120)

        async def work(_request_id: str) -> str:
            return "never"

        with pytest.raises(PeerUnavailableError, match="still being processed"):
            await run_once(store, "k", "f", work, window=600, wait_seconds=0.2, clock=lambda: 1001)

    async def test_mismatched_fingerprint_is_refused(self, store: SqliteIdempotencyStore) -> None:
        async def work(_request_id: str) -> str:
            return "a"

        await run_once(store, "k", "f1", work, window=60)
        with pytest.raises(IdempotencyKeyReusedError):
            await run_once(store, "k", "f2", work, window=60)

    async def test_two_stores_on_one_file_share_reservations(self, tmp_path: Path) -> None:
        # Two gateway processes on one host: one SQLite file, one winner.
        url = f"sqlite:///{tmp_path}/shared.sqlite"
        first, second = store_from_url(url), store_from_url(url)
        await first.open()
        await second.open()
        try:
            claims = await asyncio.gather(
                *(
                    s.reserve("k", "f", now=1000.0, window=60, lease=120)
                    for s in (first, second) * 10
                )
            )
        finally:
            await first.close()
            await second.close()
        assert sum(c.state is ClaimState.RESERVED for c in claims) == 1

    def test_unsupported_url_names_the_setting(self) -> None:
        with pytest.raises(Exception, match=r"gateway\.state_db"):
            store_from_url("mysql://x")


async def test_a_reservation_whose_owner_died_is_taken_over_with_its_request_id(
    tmp_path: Path,
) -> None:
    """A gateway killed after the broker's confirm but before storing its answer: the
    client's retry must publish the *same* request (same id, so the same FTS job ids)."""
    store = SqliteIdempotencyStore(tmp_path / "keys.sqlite")
    await store.open()
    try:
        first = await store.reserve("k", "f", now=1000.0, window=3600, lease=120)
        assert first.state is ClaimState.RESERVED and first.request_id
        waiting = await store.reserve("k", "f", now=1060.0, window=3600, lease=120)
        assert waiting.state is ClaimState.PENDING  # the owner may still answer
        taken = await store.reserve("k", "f", now=1200.0, window=3600, lease=120)
        assert taken.state is ClaimState.RESERVED and taken.token != first.token
        assert taken.request_id == first.request_id
        await store.complete("k", taken.token or "", '{"request_id": "x", "job_ids": []}')
        later = await store.reserve("k", "f", now=1200.0 + 3601, window=3600, lease=120)
        assert later.state is ClaimState.RESERVED and later.request_id != first.request_id
    finally:
        await store.close()


async def test_a_released_reservation_gives_its_request_id_to_the_next_attempt(
    tmp_path: Path,
) -> None:
    """A publish whose confirm never came (a 503, or the client went away) may still have
    reached the broker: the retry must reuse the request id, not make a second request."""
    store = SqliteIdempotencyStore(tmp_path / "keys.sqlite")
    await store.open()
    try:
        first = await store.reserve("k", "f", now=1000.0, window=3600, lease=120)
        await store.release("k", first.token or "", lease=120)
        again = await store.reserve("k", "f", now=1001.0, window=3600, lease=120)
        assert again.state is ClaimState.RESERVED  # at once, no lease to wait for
        assert again.request_id == first.request_id
    finally:
        await store.close()


async def test_a_purge_by_another_gateway_keeps_what_a_retry_needs(tmp_path: Path) -> None:
    """A gateway killed after publishing leaves an unanswered reservation. A gateway started
    later purges old rows on its first request; the killed one's row must survive that purge
    (and a released one too) until the window ends, or the client's retry would get a new
    request id and archive its dataset a second time (found by the gateway-killed chaos run)."""
    path = tmp_path / "keys.sqlite"
    killed = SqliteIdempotencyStore(path)
    await killed.open()
    died = await killed.reserve("died", "f", now=1000.0, window=3600, lease=120)
    gave_up = await killed.reserve("gave-up", "f", now=1000.0, window=3600, lease=120)
    await killed.release("gave-up", gave_up.token or "", lease=120)
    await killed.close()
    restarted = SqliteIdempotencyStore(path)  # a new process: it purges on its first reserve
    await restarted.open()
    try:
        await restarted.reserve("someone-else", "f", now=1300.0, window=3600, lease=120)
        retry = await restarted.reserve("died", "f", now=1301.0, window=3600, lease=120)
        assert retry.state is ClaimState.RESERVED and retry.request_id == died.request_id
        retry = await restarted.reserve("gave-up", "f", now=1302.0, window=3600, lease=120)
        assert retry.state is ClaimState.RESERVED and retry.request_id == gave_up.request_id
    finally:
        await restarted.close()


async def test_rows_are_purged_once_the_window_is_over(tmp_path: Path) -> None:
    store = SqliteIdempotencyStore(tmp_path / "keys.sqlite")
    await store.open()
    try:
        first = await store.reserve("k", "f", now=1000.0, window=3600, lease=120)
        await store.reserve("other", "f", now=1000.0 + 3601 + 300, window=3600, lease=120)
        later = await store.reserve("k", "f", now=1000.0 + 3602 + 300, window=3600, lease=120)
        assert later.state is ClaimState.RESERVED and later.request_id != first.request_id
    finally:
        await store.close()
