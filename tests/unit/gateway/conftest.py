"""A gateway wired to fakes: FakeSessions and FakeVocabulary (ICAT), RecordingPublisher
(broker), SQLite keys."""

from __future__ import annotations

import copy
import json
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
    FakeSessions,
    FakeTransferService,
    RecordingPublisher,
)
from datastore_gateway.main import create_app

SEED_BODY_PATH = Path(__file__).with_name("seed_archive_body.json")
TEST_VO = "test-vo"
USERS = {"simple/root": "pw", "db/alice": "alice-pw"}


def seed_body() -> dict[str, Any]:
    """The seed workflow's POST /archive body, verbatim (shared/design/seed-workflow.md)."""
    body: dict[str, Any] = json.loads(SEED_BODY_PATH.read_text())
    return body


def body_with_files(count: int, *, datasets: int = 1, file_size: int = 0) -> dict[str, Any]:
    """The seed body with ``count`` datafiles spread over ``datasets`` datasets."""
    body = seed_body()
    investigation = body["investigations"][0]
    template_dataset = investigation["datasets"][0]
    template_file = template_dataset["datafiles"][0]
    investigation["datasets"] = []
    per_dataset = -(-count // datasets)
    for d in range(datasets):
        dataset = copy.deepcopy(template_dataset)
        dataset["name"] = f"scan_{d:04d}"
        dataset["datafiles"] = [
            {**template_file, "name": f"file_{i:05d}.nxs", "fileSize": file_size}
            for i in range(d * per_dataset, min(count, (d + 1) * per_dataset))
        ]
        investigation["datasets"].append(dataset)
    return body


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
    app = create_app(
        settings,
        sessions=sessions,
        publisher=publisher,
        vo=TEST_VO,
        selections=selections,
        transfers=transfers,
        vocabulary=vocabulary,
    )
    return Gateway(
        app, TestClient(app), settings, sessions, publisher, selections, transfers, vocabulary
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
