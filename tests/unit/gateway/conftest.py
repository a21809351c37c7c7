"""A gateway wired to fakes: FakeSessions and FakeVocabulary (ICAT), RecordingPublisher and
FakeQueueDepths (broker), SQLite keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from datastore_common.settings import DatastoreSettings
from datastore_common.testing.fake_selections import FakeSelections
from datastore_common.testing.fake_vocabulary import FakeVocabulary
from datastore_common.testing.fakes import (
    FakeQueueDepths,
    FakeSessions,
    FakeStorage,
    FakeTransferService,
    RecordingPublisher,
)
from datastore_gateway.main import create_app

TEST_VO = "test-vo"
USERS = {"simple/root": "pw", "db/alice": "alice-pw"}


def make_settings(tmp_path: Path, **gateway: Any) -> DatastoreSettings:
    return DatastoreSettings(
        gateway={"state_db": f"sqlite:///{tmp_path}/gateway.sqlite", **gateway},
        fts3={"vo": TEST_VO},
    )


@dataclass
class Gateway:
    app: FastAPI
    client: TestClient
    settings: DatastoreSettings
    sessions: FakeSessions
    publisher: RecordingPublisher
    selections: FakeSelections
    transfers: FakeTransferService
    vocabulary: FakeVocabulary
    user_cache: FakeStorage
    queue_depths: FakeQueueDepths

    def login(self, username: str = "root", password: str = "pw", auth: str = "simple") -> str:
        answer = self.client.post(
            "/login", json={"auth": auth, "username": username, "password": password}
        )
        assert answer.status_code == 200, answer.text
        session_id: str = answer.json()["sessionId"]
        return session_id

    def bearer(self, username: str = "root", password: str = "pw", auth: str = "simple") -> dict:
        return {"Authorization": f"Bearer {self.login(username, password, auth)}"}


def build_gateway(tmp_path: Path, **gateway_settings: Any) -> Gateway:
    settings = make_settings(tmp_path, **gateway_settings)
    sessions = FakeSessions(USERS)
    publisher = RecordingPublisher()
    # ICAT's view of each session's user: the fake sessions' own table.
    selections = FakeSelections(user_of=sessions.sessions.get)
    transfers = FakeTransferService(vo_name=TEST_VO)
    vocabulary = FakeVocabulary()  # the seed's names (deploy/local/icat/example.yaml)
    user_cache = FakeStorage()  # the user data cache: empty until a test puts copies there
    queue_depths = FakeQueueDepths()  # no queue declared until a test sets its depth
    app = create_app(
        settings,
        sessions=sessions,
        publisher=publisher,
        vo=TEST_VO,
        selections=selections,
        transfers=transfers,
        vocabulary=vocabulary,
        user_cache=user_cache,
        queue_depths=queue_depths,
    )
    return Gateway(
        app,
        TestClient(app),
        settings,
        sessions,
        publisher,
        selections,
        transfers,
        vocabulary,
        user_cache,
        queue_depths,
    )


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A started gateway (lifespan run: it opens the SQLite idempotency store)."""
    harness = build_gateway(tmp_path)
    with harness.client:
        yield harness


@dataclass
class AsyncGateway:
    app: FastAPI
    client: httpx.AsyncClient
    settings: DatastoreSettings
    sessions: FakeSessions
    publisher: RecordingPublisher

    async def bearer(self, username: str = "root", password: str = "pw") -> dict[str, str]:
        answer = await self.client.post(
            "/login", json={"auth": "simple", "username": username, "password": password}
        )
        return {"Authorization": f"Bearer {answer.json()['sessionId']}"}


@pytest.fixture
async def async_gateway(tmp_path: Path) -> AsyncIterator[AsyncGateway]:
    """The same gateway on the test's event loop, for concurrent requests (httpx + ASGI)."""
    harness = build_gateway(tmp_path)
    app = harness.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield AsyncGateway(app, client, harness.settings, harness.sessions, harness.publisher)
