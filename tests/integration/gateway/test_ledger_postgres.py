"""The request ledger on a real PostgreSQL, as gateway replicas on several hosts share it:
events applied by different replicas, concurrently and out of order, end in one truth; any
replica lists the requests, filtered and paged, newest first."""

from __future__ import annotations

import asyncio
import itertools
import urllib.parse
from collections.abc import AsyncIterator

import psycopg
import pytest

from datastore_common.domain.ledger import (
    LedgerJob,
    NewRequest,
    PlannedFile,
    Position,
    RequestQuery,
)
from datastore_common.messages import FileState, RequestFailed, TransferStatus
from datastore_gateway.ledger import Ledger
from tests.integration.gateway.test_idempotency_postgres import POSTGRES_URL
from tests.support.rabbitmq_fixtures import unique_name

pytestmark = pytest.mark.integration

FILES = [f"root://tape//a/f{i}" for i in range(20)]


@pytest.fixture
async def replicas() -> AsyncIterator[list[Ledger]]:
    ledgers = [Ledger(POSTGRES_URL) for _ in range(3)]
    for ledger in ledgers:
        await ledger.open()  # fails loudly when PostgreSQL is not there
    yield ledgers
    for ledger in ledgers:
        await ledger.close()


def new(
    request_id: str,
    job_id: str,
    *,
    owner: str = "simple/root",
    investigation: str = "X",
    kind: str = "archive",
) -> NewRequest:
    return NewRequest(
        request_id=request_id,
        kind=kind,  # type: ignore[arg-type]
        owner=owner,
        source="http",
        datasets=(
            {"investigation": investigation, "visit_id": "1", "dataset": "d", "datafiles": 20},
        ),
        jobs=(LedgerJob(job_id, tuple(PlannedFile(f, 10) for f in FILES)),),
    )


def status(request_id: str, job_id: str, states: list[str]) -> TransferStatus:
    return TransferStatus(
        request_id=request_id,
        kind="archive",
        job_id=job_id,
        fts_endpoint="https://fts",
        job_state=states[0],
        files=[
            FileState(source="s", destination=f, state=s)
            for f, s in zip(FILES, states, strict=True)
        ],
    )


async def test_replicas_apply_shuffled_duplicated_events_to_one_forward_only_truth(
    replicas: list[Ledger],
) -> None:
    request_id, job_id = unique_name("req"), unique_name("job")
    await asyncio.gather(*(r.record(new(request_id, job_id)) for r in replicas))  # all three
    events = [
        status(request_id, job_id, ["ACTIVE"] * 20),
        status(request_id, job_id, ["FINISHED"] * 10 + ["ACTIVE"] * 10),
        status(request_id, job_id, ["FINISHED"] * 20),
        status(request_id, job_id, ["SUBMITTED"] * 20),
    ]
    # Every event twice, latest first, each replica applying some, all at once.
    shuffled = list(reversed(events)) * 2
    await asyncio.gather(
        *(r.apply_status(e) for r, e in zip(itertools.cycle(replicas), shuffled, strict=False))
    )
    for ledger in replicas:
        record = await ledger.get(request_id)
        assert record is not None
        assert record.state == "FINISHED"
        [job] = record.jobs
        assert (job.files_done, job.bytes_done, job.files_total) == (20, 200, 20)


async def test_a_give_up_seen_by_one_replica_is_final_for_all(replicas: list[Ledger]) -> None:
    request_id, job_id = unique_name("req"), unique_name("job")
    await replicas[0].record(new(request_id, job_id))
    await replicas[1].fail(
        RequestFailed(
            request_id=request_id,
            kind="archive",
            failure_class="user",
            reason="unknown",
            job_ids=[job_id],
        )
    )
    await replicas[2].apply_status(status(request_id, job_id, ["ACTIVE"] * 20))
    record = await replicas[0].get(request_id)
    assert record is not None and record.state == "FAILED"
    assert record.failure is not None and record.failure.reason == "unknown"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_any_replica_lists_pages_newest_first_with_the_others_writes() -> None:
    owner, clock = unique_name("db/user"), Clock(1_000.0)
    writer, reader = Ledger(POSTGRES_URL, clock=clock), Ledger(POSTGRES_URL)
    await writer.open()
    await reader.open()
    try:
        for n in range(7):
            clock.now = 1_000.0 + min(n, 4)  # three at one instant: the request id orders them
            await writer.record(new(f"{owner}-r{n}", unique_name("job"), owner=owner))
        seen, after = [], None
        while True:
            page = await reader.page(RequestQuery(owner=owner, limit=3, after=after))
            seen += [record.request_id for record in page.records]
            if page.next is None:
                break
            after = page.next
        assert seen == [f"{owner}-r{n}" for n in (6, 5, 4, 3, 2, 1, 0)]
        [record] = (await reader.page(RequestQuery(owner=owner, limit=1))).records
        assert record == await reader.get(f"{owner}-r6")  # as GET /requests/{id} reads it
        assert (record.jobs[0].files_total, record.jobs[0].bytes_total) == (20, 200)
    finally:
        await writer.close()
        await reader.close()


async def test_filters_on_postgresql(replicas: list[Ledger]) -> None:
    owner = unique_name("db/user")
    investigation = unique_name("INV")
    await replicas[0].record(new(f"{owner}-a", unique_name("job"), owner=owner))
    await replicas[1].record(
        new(f"{owner}-b", unique_name("job"), owner=owner, investigation=investigation)
    )
    restore = new(
        f"{owner}-c", unique_name("job"), owner=owner, investigation=investigation, kind="restore"
    )
    await replicas[2].record(restore)
    await replicas[0].fail(
        RequestFailed(
            request_id=f"{owner}-b", kind="archive", failure_class="system", reason="down"
        )
    )

    async def ids(**filters: object) -> list[str]:
        page = await replicas[1].page(RequestQuery(owner=owner, **filters))  # type: ignore[arg-type]
        return [record.request_id for record in page.records]

    assert await ids(investigation=investigation) == [f"{owner}-c", f"{owner}-b"]
    assert await ids(kind="restore") == [f"{owner}-c"]
    assert await ids(states=("FAILED",)) == [f"{owner}-b"]
    assert await ids(states=("SUBMITTED",), kind="archive") == [f"{owner}-a"]
    newest = (await replicas[1].page(RequestQuery(owner=owner, limit=1))).records[0]
    assert await ids(since=newest.created) == [f"{owner}-c"]
    assert await ids(until=newest.created) == [f"{owner}-b", f"{owner}-a"]
    assert await ids(after=Position(newest.created, newest.request_id), limit=1) == [f"{owner}-b"]
    everyone = await replicas[1].page(RequestQuery(owner=None, investigation=investigation))
    assert {record.owner for record in everyone.records} == {owner}


async def test_a_ledger_of_an_earlier_release_is_indexed_by_investigation_at_start() -> None:
    schema = unique_name("ledger").replace("-", "_").lower()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    url = (
        POSTGRES_URL
        + ("&" if "?" in POSTGRES_URL else "?")
        + urllib.parse.urlencode({"options": f"-csearch_path={schema}"})
    )
    try:
        old = Ledger(url)
        await old.open()
        await old.record(new("old-request", "old-job", investigation="ABC123"))
        await old.close()
        with psycopg.connect(url, autocommit=True) as raw:  # as an earlier release left it
            raw.execute("DROP TABLE ledger_investigations")

        ledger = Ledger(url)
        await ledger.open()
        try:
            page = await ledger.page(RequestQuery(owner=None, investigation="ABC123"))
            assert [record.request_id for record in page.records] == ["old-request"]
        finally:
            await ledger.close()
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
