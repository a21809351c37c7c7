"""Restores on a real PostgreSQL shared by gateway replicas: two restores claiming the same
destinations at once (in any order) never both hold one, and never deadlock; admissions under
a cap taken at once never let more start than the cap allows; queued restores are started
once; an expired copy is claimed by one cleaner at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from datastore_common.domain.ledger import new_request
from datastore_common.domain.restore import Usage
from datastore_common.domain.restore_queue import Limits, Waiting
from datastore_common.messages import (
    FileState,
    PlannedJob,
    PlannedTransfer,
    RestoreRequested,
    TransferStatus,
)
from datastore_gateway.ledger import Ledger
from tests.integration.gateway.test_idempotency_postgres import POSTGRES_URL
from tests.support.rabbitmq_fixtures import unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
async def replicas() -> AsyncIterator[list[Ledger]]:
    ledgers = [Ledger(POSTGRES_URL) for _ in range(4)]
    for ledger in ledgers:
        await ledger.open()  # fails loudly when PostgreSQL is not there
    yield ledgers
    for ledger in ledgers:
        await ledger.close()


async def test_replicas_claiming_the_same_destinations_at_once_hold_each_once(
    replicas: list[Ledger],
) -> None:
    folder = unique_name("udc")
    wanted = [f"root://udc//{folder}/f{i}" for i in range(40)]
    requests = [unique_name("req") for _ in replicas]
    orders = [wanted, wanted[::-1], wanted[::2] + wanted[1::2], wanted[1::2] + wanted[::2]]
    held = await asyncio.gather(
        *(
            r.claim_recalls(req, order)
            for r, req, order in zip(replicas, requests, orders, strict=True)
        )
    )
    holders: dict[str, set[str]] = {d: set() for d in wanted}
    for request_id, others in zip(requests, held, strict=True):
        for destination in wanted:
            holders[destination].add(others.get(destination, request_id))
    # Every caller names the same holder for each destination.
    assert all(len(h) == 1 for h in holders.values()), holders
    for request_id in requests:
        await replicas[0].release_recalls(request_id)


async def test_admissions_at_once_never_let_more_start_than_the_cap(
    replicas: list[Ledger],
) -> None:
    owner = unique_name("user")
    limits = Limits(user_files=4)
    entries = [Waiting(unique_name("req"), owner, 0, float(i), Usage(2, 20)) for i in range(8)]
    decisions = await asyncio.gather(
        *(replicas[i % len(replicas)].admit(e, "{}", limits) for i, e in enumerate(entries))
    )
    assert sum(d is None for d in decisions) == 2  # 2 x 2 files = the cap
    queued = [e.request_id for e, d in zip(entries, decisions, strict=True) if d is not None]
    rows = {row.request_id: row for row in await replicas[0].queue()}
    assert all(rows[q].state == "QUEUED" for q in queued)
    for entry in entries:
        await replicas[0].not_started(entry.request_id, None)
        await replicas[0].drop_queued(entry.request_id)


async def test_queued_restores_are_started_once_by_replicas_at_once(
    replicas: list[Ledger],
) -> None:
    owner = unique_name("user")
    blocker = Waiting(unique_name("req"), owner, 0, 0.0, Usage(4, 40))
    limits = Limits(user_files=4)
    assert await replicas[0].admit(blocker, "{}", limits) is None
    waiting = [Waiting(unique_name("req"), owner, 0, float(i), Usage(1, 10)) for i in range(1, 5)]
    for entry in waiting:
        assert await replicas[0].admit(entry, "{}", limits) is not None
    await replicas[0].not_started(blocker.request_id, None)  # its share freed
    claimed = await asyncio.gather(*(r.claim_startable(limits) for r in replicas))
    started = [request_id for batch in claimed for request_id, _, _ in batch]
    ours = [w.request_id for w in waiting]
    assert sorted(s for s in started if s in ours) == sorted(ours)  # each once, all four fit
    for request_id in ours:
        await replicas[0].not_started(request_id, "test over")
        await replicas[0].drop_queued(request_id)


async def test_an_expired_copy_is_claimed_by_one_cleaner_at_a_time() -> None:
    now = [1_000_000.0]
    ledgers = [Ledger(POSTGRES_URL, clock=lambda: now[0], copy_retention_days=1) for _ in range(3)]
    for ledger in ledgers:
        await ledger.open()
    try:
        request_id = unique_name("req")
        names = [f"{request_id}/f{i}" for i in range(6)]
        transfers = [
            PlannedTransfer(
                source=f"root://tape//{n}",
                destination=f"root://udc//{n}",
                checksum="adler32:0000abcd",
                filesize=10,
            )
            for n in names
        ]
        job = PlannedJob(job_id=f"job-{request_id}", sid="s", kind="restore", transfers=transfers)
        message = RestoreRequested(request_id=request_id, jobs=[job])
        await ledgers[0].record(new_request(message, owner="root", source="http"))
        await ledgers[0].apply_status(
            TransferStatus(
                request_id=request_id,
                kind="restore",
                job_id=job.job_id,
                fts_endpoint="https://fts",
                job_state="FINISHED",
                files=[
                    FileState(source=t.source, destination=t.destination, state="FINISHED")
                    for t in transfers
                ],
            )
        )
        now[0] += 2 * 86400
        batches = await asyncio.gather(
            *(ledger.claim_expired(limit=1000, lease_seconds=60) for ledger in ledgers)
        )
        claimed = [e.copy.destination for b in batches for e in b]
        ours = [t.destination for t in transfers]
        assert sorted(d for d in claimed if d in ours) == sorted(ours)  # each by one
        for destination in ours:
            await ledgers[0].settle_copy(destination, "forget", "test over")
    finally:
        for ledger in ledgers:
            await ledger.close()
