"""The request ledger on a real PostgreSQL, as gateway replicas on several hosts share it:
events applied by different replicas, concurrently and out of order, end in one truth."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from datastore_common.domain.ledger import LedgerJob, NewRequest, PlannedFile
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


def new(request_id: str, job_id: str) -> NewRequest:
    return NewRequest(
        request_id=request_id,
        kind="archive",
        owner="simple/root",
        source="http",
        datasets=({"investigation": "X", "visit_id": "1", "dataset": "d", "datafiles": 20},),
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
