"""GET /requests: the caller's requests (everyone's for admins), newest first, filtered and
paged, each as GET /requests/{id} shows it (SQLite ledger on a clock the test moves)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from datastore_common.domain.ledger import (
    LedgerJob,
    NewRequest,
    PlannedFile,
    Position,
    RequestQuery,
)
from datastore_common.messages import RequestFailed
from datastore_gateway.ledger import SCHEMA, Ledger, listing_query
from tests.unit.gateway.conftest import Gateway, build_gateway

ROOT = {"username": "root", "password": "pw"}  # simple/root, one of gateway.admins
ALICE = {"username": "alice", "password": "alice-pw", "auth": "db"}
#: 2026-03-01 00:00:00 UTC
START = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    gateway: Gateway
    ledger: Ledger
    clock: Clock

    def record(
        self,
        request_id: str,
        *,
        owner: str | None = "simple/root",
        kind: str = "archive",
        investigation: str = "ABC123",
        at: float | None = None,
    ) -> None:
        if at is not None:
            self.clock.now = at
        datasets = (
            {"investigation": investigation, "visit_id": "1", "dataset": "scan", "datafiles": 1},
        )
        job = LedgerJob(f"job-{request_id}", (PlannedFile(f"root://tape//{request_id}", 10),))
        request = NewRequest(request_id, kind, owner, "http", datasets, (job,))
        asyncio.run(self.ledger.record(request))

    def fail(self, request_id: str, kind: str = "archive") -> None:
        failed = RequestFailed(request_id=request_id, kind=kind, failure_class="user", reason="bad")
        asyncio.run(self.ledger.fail(failed))

    def listing(self, who: dict[str, str] | None = None, **query: Any) -> tuple[int, Any]:
        answer = self.gateway.client.get(
            "/requests", params=query, headers=self.gateway.bearer(**(who or ROOT))
        )
        return answer.status_code, answer.json()

    def ids(self, who: dict[str, str] | None = None, **query: Any) -> list[str]:
        code, body = self.listing(who, **query)
        assert code == 200, body
        return [item["request_id"] for item in body["items"]]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    gateway = build_gateway(tmp_path)
    clock = Clock()
    ledger = Ledger(gateway.settings.gateway.state_db, clock=clock)
    asyncio.run(ledger.open())
    gateway.app.state.gateway.ledger = ledger  # the lifespan opens none of its own then
    try:
        with gateway.client:
            yield Harness(gateway, ledger, clock)
    finally:
        asyncio.run(ledger.close())


def test_my_requests_newest_first_each_as_get_shows_it(harness: Harness) -> None:
    harness.record("r1", at=START)
    harness.record("r2", at=START + 10)
    harness.record("alices", owner="db/alice", at=START + 20)
    harness.record("r3", at=START + 30)

    code, body = harness.listing()

    assert code == 200
    assert [item["request_id"] for item in body["items"]] == ["r3", "r2", "r1"]
    assert body["next_cursor"] is None
    single = harness.gateway.client.get("/requests/r2", headers=harness.gateway.bearer(**ROOT))
    assert body["items"][1] == single.json()
    assert body["items"][1]["created"] == "2026-03-01T00:00:10Z"


def test_everyones_for_admins_only_anyone_else_gets_their_own(harness: Harness) -> None:
    harness.record("roots", at=START)
    harness.record("alices", owner="db/alice", at=START + 1)
    harness.record("instruments", owner=None, at=START + 2)  # straight to the broker, no user

    assert harness.ids(mine="false") == ["instruments", "alices", "roots"]
    assert harness.ids(mine="true") == ["roots"]
    assert harness.ids(ALICE) == ["alices"]
    assert harness.ids(ALICE, mine="false") == ["alices"]  # not a 403: her own


def test_pages_follow_each_other_without_gaps_or_repeats(harness: Harness) -> None:
    for n in range(7):
        # Three share one instant: the request id orders them.
        harness.record(f"r{n}", at=START + min(n, 4))
    seen, cursor, pages = [], None, 0
    while True:
        query: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        code, body = harness.listing(**query)
        assert code == 200
        pages += 1
        seen += [item["request_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # Requests accepted meanwhile do not shift the pages still to come.
        harness.record(f"new{pages}", at=START + 100 + pages)
    assert pages == 3
    assert seen == ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]


def test_a_full_last_page_says_there_is_no_next(harness: Harness) -> None:
    for n in range(4):
        harness.record(f"r{n}", at=START + n)
    code, body = harness.listing(limit=4)
    assert code == 200 and len(body["items"]) == 4 and body["next_cursor"] is None
    assert len(harness.ids()) == 4  # default limit 50


def test_filters_kind_state_investigation_and_dates(harness: Harness) -> None:
    day = 86400.0
    harness.record("a1", kind="archive", investigation="ABC123", at=START)
    harness.record("a2", kind="archive", investigation="XYZ999", at=START + day)
    harness.record("r1", kind="restore", investigation="ABC123", at=START + 2 * day)
    harness.record("r2", kind="restore", investigation="XYZ999", at=START + 3 * day)
    harness.fail("a2")
    harness.fail("r2", kind="restore")

    assert harness.ids(kind="restore") == ["r2", "r1"]
    assert harness.ids(state="FAILED") == ["r2", "a2"]
    assert harness.ids(state=["SUBMITTED", "FAILED"], kind="archive") == ["a2", "a1"]
    assert harness.ids(investigation="ABC123") == ["r1", "a1"]
    assert harness.ids(investigation="ABC12") == []  # a name, not a prefix
    # since is inclusive, until exclusive; a date alone is midnight UTC.
    assert harness.ids(since="2026-03-02", until="2026-03-04") == ["r1", "a2"]
    assert harness.ids(since="2026-03-02T01:00:00+01:00") == ["r2", "r1", "a2"]
    assert harness.ids(until="2026-03-01T00:00:00.000001Z") == ["a1"]


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 501}, "query.limit"),
        ({"state": "DONE"}, "query.state"),
        ({"kind": "copy"}, "query.kind"),
        ({"since": "yesterday"}, "query.since"),
        ({"states": "FAILED"}, "states"),  # a misspelt filter is refused, not ignored
        ({"cursor": "not-a-cursor"}, "not a cursor of this gateway"),
        ({"cursor": "WzEsMl0"}, "not a cursor of this gateway"),  # [1,2]: not a position
    ],
)
def test_invalid_filters_are_422_with_a_reason(
    harness: Harness, query: dict[str, Any], said: str
) -> None:
    code, body = harness.listing(**query)
    assert code == 422
    assert said in str(body.get("reason", body["detail"]))


def test_a_forgotten_request_is_no_longer_found_by_its_investigation(harness: Harness) -> None:
    harness.record("ended", investigation="ABC123", at=START)
    harness.fail("ended")
    harness.clock.now = START + 100 * 86400
    assert asyncio.run(harness.ledger.purge(older_than_seconds=90 * 86400)) == 1
    assert harness.ids(investigation="ABC123") == []
    path = harness.gateway.settings.gateway.state_db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT COUNT(*) FROM ledger_investigations").fetchone() == (0,)


def test_listing_needs_a_session(harness: Harness) -> None:
    assert harness.gateway.client.get("/requests").status_code == 401


@pytest.mark.parametrize(
    ("owner", "index"),
    [("simple/root", "ledger_requests_owner_created"), (None, "ledger_requests_created")],
)
def test_a_page_reads_an_index_in_order_not_the_whole_table(owner: str | None, index: str) -> None:
    db = sqlite3.connect(":memory:")
    for statement in SCHEMA:
        db.execute(statement)
    sql, parameters = listing_query(
        RequestQuery(owner=owner, states=("ACTIVE",), after=Position(START, "r9"))
    )
    plan = " / ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", parameters))
    assert f"USING INDEX {index}" in plan
    assert "TEMP B-TREE" not in plan  # no sort: the index is in the page's order


def test_an_earlier_ledger_has_its_requests_found_by_investigation(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = Ledger(f"sqlite:///{path}", clock=Clock())
    asyncio.run(old.open())
    archive = NewRequest(
        "old-archive",
        "archive",
        "simple/root",
        "http",
        ({"investigation": "ABC123", "visit_id": "1", "dataset": "scan", "datafiles": 1},),
        (),
    )
    asyncio.run(old.record(archive))
    asyncio.run(old.close())
    with sqlite3.connect(path) as raw:  # as an earlier release left it
        raw.execute("DROP TABLE ledger_investigations")

    ledger = Ledger(f"sqlite:///{path}")
    asyncio.run(ledger.open())
    try:
        query = RequestQuery(owner="simple/root", investigation="ABC123")
        page = asyncio.run(ledger.page(query))
        assert [record.request_id for record in page.records] == ["old-archive"]
    finally:
        asyncio.run(ledger.close())
