"""Logins and selections on separate ICAT client pools, and a deadline on selections: a
large restore selection can neither starve logins nor hang a request. The gateway's own
ICAT adapters (``icat_adapters``) on scripted clients (no ICAT)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from datastore_common.adapters.icat.selections import IcatSelections
from datastore_common.settings import DatastoreSettings
from datastore_gateway.main import icat_adapters
from tests.unit.common.test_icat_selections_reads import ScriptedClient, ScriptedPool
from tests.unit.gateway.conftest import build_gateway


def hang_until(release: threading.Event) -> list[Any]:
    """An ICAT call that does not answer (for up to 10 s, or until released)."""
    release.wait(10)
    return []


async def test_selections_holding_every_selection_client_do_not_delay_a_session_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = DatastoreSettings(icat={"selection_pool_size": 2, "session_pool_size": 1})
    adapters = icat_adapters(settings)
    release = threading.Event()
    stuck = ScriptedClient(lambda query: hang_until(release))
    monkeypatch.setattr(adapters.selection_pool, "_build", lambda: stuck)
    monkeypatch.setattr(adapters.session_pool, "_build", lambda: ScriptedClient(lambda q: []))
    selections = [
        asyncio.create_task(adapters.selections.find_investigations("sid", "ABC123"))
        for _ in range(3)
    ]
    try:
        await asyncio.sleep(0.2)  # every selection client is taken, a third selection waits
        assert len(stuck.queries) == 2
        user = await asyncio.wait_for(adapters.sessions.check("sid"), timeout=2)
        assert user.user_name == "simple/root"
    finally:
        release.set()
        await asyncio.gather(*selections)
        await adapters.session_pool.close()
        await adapters.selection_pool.close()


def test_the_pools_and_the_deadline_follow_the_settings() -> None:
    settings = DatastoreSettings(
        icat={
            "selection_pool_size": 3,
            "session_pool_size": 1,
            "selection_deadline_seconds": 7,
            "facility": "ISIS",
        }
    )
    adapters = icat_adapters(settings)
    assert adapters.session_pool is not adapters.selection_pool
    assert (adapters.session_pool.size, adapters.selection_pool.size) == (1, 3)
    assert isinstance(adapters.selections, IcatSelections)
    assert adapters.selections.deadline_seconds == 7
    assert adapters.selections.facility == "ISIS"
    assert DatastoreSettings().icat.selection_deadline_seconds == 60


def test_a_status_past_the_selection_deadline_is_a_503_with_the_reason(tmp_path: Path) -> None:
    harness = build_gateway(tmp_path)
    release = threading.Event()
    hung = ScriptedClient(lambda query: hang_until(release))
    slow = IcatSelections(
        ScriptedPool(hung), archival_writer="simple/datastore", deadline_seconds=0.5
    )
    harness.app.state.gateway.selections = slow
    try:
        with harness.client:
            for path in (
                "/datasets/10/status",
                "/investigations/1/percentage",
                "/datasets?investigation=ABC123-1",
                "/investigations?name=ABC123",
            ):
                answer = harness.client.get(path, headers=harness.bearer())
                assert answer.status_code == 503, (path, answer.text)
                assert "icat.selection_deadline_seconds" in answer.json()["detail"]
                assert answer.headers["Retry-After"]
    finally:
        release.set()


def test_a_restore_past_the_selection_deadline_is_a_503_and_nothing_is_published(
    tmp_path: Path,
) -> None:
    harness = build_gateway(tmp_path)
    release = threading.Event()
    hung = ScriptedClient(lambda query: hang_until(release))
    harness.app.state.gateway.selections = IcatSelections(
        ScriptedPool(hung), archival_writer="simple/datastore", deadline_seconds=0.5
    )
    try:
        with harness.client:
            answer: Any = harness.client.post(
                "/restore", json={"dataset_ids": [10]}, headers=harness.bearer()
            )
        assert answer.status_code == 503, answer.text
        assert "not done within 0.5 s" in answer.json()["detail"]
        assert harness.publisher.published == []
    finally:
        release.set()
