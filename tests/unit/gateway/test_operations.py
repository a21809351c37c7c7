"""GET /operations: the operators' view, gateway.admins only; queue depths from the broker
(FakeQueueDepths), failures, requests and jobs still going from the ledger (SQLite, on a
clock the test moves)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from datastore_common.domain.ledger import LedgerJob, NewRequest, PlannedFile
from datastore_common.messages import FileState, RequestFailed, TransferStatus
from datastore_common.ports import QueueDepth
from datastore_common.topology import datastore_topology, retry_queue_name
from datastore_common.worker import topology_from
from datastore_gateway.ledger import Ledger
from datastore_gateway.operations import queue_rows
from tests.unit.gateway.conftest import Gateway, build_gateway

ROOT = {"username": "root", "password": "pw"}  # simple/root, one of gateway.admins
ALICE = {"username": "alice", "password": "alice-pw", "auth": "db"}
START = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
DAY = 86400.0


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

    def record(self, request_id: str, *, at: float, owner: str = "db/alice") -> None:
        self.clock.now = at
        datasets = (
            {"investigation": "ABC123", "visit_id": "1", "dataset": "scan", "datafiles": 2},
        )
        files = tuple(PlannedFile(f"root://tape//{request_id}/{n}", 10) for n in range(2))
        request = NewRequest(
            request_id, "archive", owner, "http", datasets, (LedgerJob(f"job-{request_id}", files),)
        )
        asyncio.run(self.ledger.record(request))

    def fail(self, request_id: str, failure_class: Any, *, at: float) -> None:
        self.clock.now = at
        failed = RequestFailed(
            request_id=request_id, kind="archive", failure_class=failure_class, reason="bad"
        )
        asyncio.run(self.ledger.fail(failed))

    def files(self, request_id: str, job_state: str, *states: str, at: float) -> None:
        self.clock.now = at
        status = TransferStatus(
            request_id=request_id,
            kind="archive",
            job_id=f"job-{request_id}",
            fts_endpoint="https://fts:8446",
            job_state=job_state,
            files=[
                FileState(
                    source=f"root://idc//{n}",
                    destination=f"root://tape//{request_id}/{n}",
                    state=state,
                )
                for n, state in enumerate(states)
            ],
        )
        asyncio.run(self.ledger.apply_status(status))

    def view(self, who: dict[str, str] = ROOT) -> tuple[int, Any]:
        answer = self.gateway.client.get("/operations", headers=self.gateway.bearer(**who))
        return answer.status_code, answer.json()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    gateway = build_gateway(tmp_path)
    clock = Clock()
    ledger = Ledger(gateway.settings.gateway.state_db, clock=clock)
    asyncio.run(ledger.open())
    gateway.app.state.gateway.ledger = ledger
    try:
        with gateway.client:
            yield Harness(gateway, ledger, clock)
    finally:
        asyncio.run(ledger.close())


def test_only_admins_see_it_others_hear_404(harness: Harness) -> None:
    code, body = harness.view(ALICE)
    assert code == 404
    assert "gateway.admins" in body["detail"]
    assert harness.gateway.client.get("/operations").status_code == 401
    assert harness.gateway.queue_depths.asked == []  # nobody's look reached the broker
    assert harness.view(ROOT)[0] == 200


def test_queues_with_their_retries_dead_letters_and_consumers(harness: Harness) -> None:
    depths = harness.gateway.queue_depths
    topology = topology_from(harness.gateway.settings)
    first, last = sorted(set(topology.retry_delays))[0], max(topology.retry_delays)
    depths.messages.update(
        {
            "fts-submitter": 3,
            retry_queue_name("fts-submitter", first): 4,
            retry_queue_name("fts-submitter", last): 1,
            "dlq.fts-submitter": 2,
            "icat-writer.archive": 0,
        }
    )
    depths.consumers.update({"fts-submitter": 2})
    code, body = harness.view()
    assert code == 200, body
    assert body["broker"] is None
    # Every queue of the topology was asked about, once.
    assert len(depths.asked) == 1 and "dlq.icat-writer.status" in depths.asked[0]
    rows = {row["queue"]: row for row in body["queues"]}
    assert rows["fts-submitter"] == {
        "queue": "fts-submitter",
        "consumed_by": "fts-submitter",
        "ready": 3,
        "consumers": 2,
        "retrying": 5,
        "dead_letters": 2,
    }
    assert rows["icat-writer.archive"]["ready"] == 0
    assert rows["icat-writer.archive"]["dead_letters"] is None  # no such DLQ declared
    assert rows["gateway.ledger"]["ready"] is None  # not declared on the broker at all
    delay = topology.delays[0].name
    assert rows[delay]["consumed_by"] is None and rows[delay]["retrying"] is None


def test_an_unreachable_broker_still_shows_the_ledger(harness: Harness) -> None:
    harness.gateway.queue_depths.unavailable = "broker: connection refused"
    harness.record("r-going", at=START)
    code, body = harness.view()
    assert code == 200, body
    assert body["queues"] == []
    assert body["broker"] == "broker: connection refused"
    assert body["active_requests"] == 1


def test_failures_of_the_last_day_by_class_and_the_work_still_going(harness: Harness) -> None:
    harness.record("r-long-ago", at=START)
    harness.fail("r-long-ago", "system", at=START + 60)  # more than a day before "now"
    harness.record("r-oldest-going", at=START + 100)
    harness.record("r-user", at=START + 200)
    harness.record("r-system", at=START + 300)
    harness.record("r-dirty", at=START + 400)
    harness.record("r-going", at=START + 500)
    harness.files("r-going", "ACTIVE", "FINISHED", "ACTIVE", at=START + 600)
    harness.fail("r-user", "user", at=START + DAY + 10)
    harness.fail("r-system", "system", at=START + DAY + 20)
    # FTS failed one file of two: no failure class recorded, so counted as system.
    harness.files("r-dirty", "FINISHEDDIRTY", "FINISHED", "FAILED", at=START + DAY + 30)
    harness.clock.now = START + DAY + 100

    code, body = harness.view()
    assert code == 200, body
    assert datetime.fromisoformat(body["since"]).timestamp() == START + 100
    counts = {(f["class"], f["state"]): f["requests"] for f in body["failures"]}
    assert counts == {
        ("user", "FAILED"): 1,
        ("system", "FAILED"): 1,
        ("system", "FINISHEDDIRTY"): 1,
    }
    assert [f["request_id"] for f in body["recent_failures"]] == ["r-dirty", "r-system", "r-user"]
    assert body["recent_failures"][2]["reason"] == "bad"
    assert body["recent_failures"][0]["reason"] is None
    assert body["active_requests"] == 2
    oldest = body["oldest_active"]
    assert oldest["request_id"] == "r-oldest-going"
    assert datetime.fromisoformat(oldest["accepted_at"]).timestamp() == START + 100
    assert oldest["age_seconds"] > oldest["idle_seconds"] - 1 > 0
    assert body["active_jobs_total"] == 2
    assert [
        (j["job_id"], j["state"], j["files_ended"], j["files_total"]) for j in body["active_jobs"]
    ] == [
        ("job-r-oldest-going", "PLANNED", 0, 2),
        ("job-r-going", "ACTIVE", 1, 2),
    ]


def test_queue_rows_sum_a_queues_retry_ladder_and_say_what_is_not_declared() -> None:
    topology = datastore_topology(retry_delays=(1.0, 2.0))
    depths = {
        "icat-writer.status.retry.1s": QueueDepth("icat-writer.status.retry.1s", 2, 0),
        "icat-writer.status.retry.2s": QueueDepth("icat-writer.status.retry.2s", None, None),
    }
    rows = {row.queue: row for row in queue_rows(topology, depths)}
    assert rows["icat-writer.status"].retrying == 2
    assert rows["icat-writer.status"].ready is None
    assert rows["fts-submitter"].retrying is None
    assert len(rows) == len(topology.queues) + len(topology.delays)
