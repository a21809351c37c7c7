"""The idempotency store on a real PostgreSQL: several gateway replicas, one winner per key."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from datastore_common.settings import DatastoreSettings
from datastore_common.testing.fake_vocabulary import FakeVocabulary
from datastore_common.testing.fakes import FakeSessions, RecordingPublisher
from datastore_gateway.idempotency import ClaimState, run_once, store_from_url
from datastore_gateway.idempotency.postgres import PostgresIdempotencyStore
from datastore_gateway.main import create_app
from tests.support.factories import seed_body
from tests.support.rabbitmq_fixtures import unique_name

pytestmark = pytest.mark.integration

POSTGRES_URL = os.environ.get(
    "DATASTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
async def replicas() -> AsyncIterator[list[PostgresIdempotencyStore]]:
    """Three stores, each with its own connection, as three gateway replicas would have."""
    stores = [store_from_url(POSTGRES_URL) for _ in range(3)]
    for store in stores:
        assert isinstance(store, PostgresIdempotencyStore)
        await store.open()  # fails loudly when PostgreSQL is not there
    yield stores  # type: ignore[misc]
    for store in stores:
        await store.close()


async def test_concurrent_reservations_across_replicas_have_one_winner(
    replicas: list[PostgresIdempotencyStore],
) -> None:
    key = unique_name("key")
    claims = await asyncio.gather(
        *(s.reserve(key, "f", now=1000.0, window=60, lease=120) for s in replicas * 10)
    )
    assert sum(c.state is ClaimState.RESERVED for c in claims) == 1
    assert {c.state for c in claims} == {ClaimState.RESERVED, ClaimState.PENDING}


async def test_run_once_replays_the_first_answer_across_replicas(
    replicas: list[PostgresIdempotencyStore],
) -> None:
    key = unique_name("key")
    calls = 0

    async def work(_request_id: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return '{"answer": 1}'

    results = await asyncio.gather(*(run_once(s, key, "f", work, window=60) for s in replicas))
    assert calls == 1
    assert {answer for answer, _ in results} == {'{"answer": 1}'}
    assert sorted(replayed for _, replayed in results) == [False, True, True]


async def test_gateway_with_postgresql_state_db(tmp_path: Path) -> None:
    settings = DatastoreSettings(gateway={"state_db": POSTGRES_URL}, fts3={"vo": "test-vo"})
    sessions, publisher = FakeSessions(), RecordingPublisher()
    app = create_app(
        settings,
        sessions=sessions,
        publisher=publisher,
        vo="test-vo",
        vocabulary=FakeVocabulary(),
    )
    # A visitId holds no '-' (metadata.VISIT_ID_RULE).
    body = json.dumps(seed_body(visit_id=unique_name("v").replace("-", "_")))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            login = await client.post(
                "/login", json={"auth": "simple", "username": "root", "password": "pw"}
            )
            headers = {
                "Authorization": f"Bearer {login.json()['sessionId']}",
                "Content-Type": "application/json",
            }
            answers = await asyncio.gather(
                *(client.post("/archive", content=body, headers=headers) for _ in range(10))
            )
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    assert len(publisher.published) == 1
