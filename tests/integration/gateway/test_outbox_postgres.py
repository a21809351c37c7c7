"""The ledger's outbox on a real PostgreSQL shared by gateway replicas: a request that ends
while replicas apply its events at once, repeated and reordered, gets one completion per
channel; replicas claiming at once never share a notification; a lease that runs out (its
holder gone) lets another replica send it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from datastore_common.domain.completion import completion_message_id
from datastore_common.domain.ledger import LedgerJob, NewRequest, PlannedFile
from datastore_common.messages import FileState, RequestCompleted, TransferStatus
from datastore_gateway.ledger import Delivery, Ledger
from tests.integration.gateway.test_idempotency_postgres import POSTGRES_URL
from tests.support.rabbitmq_fixtures import unique_name

pytestmark = pytest.mark.integration

FILES = [f"root://tape//n/f{i}" for i in range(5)]
NOTIFY = {"webhook": "https://hooks.example.org/x", "email": "a@example.org"}


@pytest.fixture
async def replicas() -> AsyncIterator[list[Ledger]]:
    ledgers = [Ledger(POSTGRES_URL, public_url="https://ds.example.org") for _ in range(3)]
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
        datasets=({"investigation": "N", "visit_id": "1", "dataset": "d", "datafiles": 5},),
        jobs=(LedgerJob(job_id, tuple(PlannedFile(f, 10) for f in FILES)),),
        notify=NOTIFY,
    )


def status(request_id: str, job_id: str, state: str) -> TransferStatus:
    return TransferStatus(
        request_id=request_id,
        kind="archive",
        job_id=job_id,
        fts_endpoint="https://fts",
        job_state=state,
        files=[FileState(source="s", destination=f, state=state) for f in FILES],
    )


async def test_replicas_ending_a_request_at_once_write_one_completion_per_channel(
    replicas: list[Ledger],
) -> None:
    request_id, job_id = unique_name("req"), unique_name("job")
    await replicas[0].record(new(request_id, job_id))
    events = [status(request_id, job_id, s) for s in ("ACTIVE", "FINISHED")] * 3
    await asyncio.gather(
        *(r.apply_status(e) for r, e in zip(itertools.cycle(replicas), events, strict=False))
    )
    deliveries = await replicas[1].deliveries(request_id)
    assert [d.channel for d in deliveries] == ["broker", "email", "webhook"]
    assert {d.message_id for d in deliveries} == {str(completion_message_id(request_id))}
    assert RequestCompleted.model_validate_json(deliveries[0].payload).state == "FINISHED"


async def test_replicas_claiming_at_once_never_share_one_and_a_lapsed_lease_frees_it(
    replicas: list[Ledger],
) -> None:
    request_id, job_id = unique_name("req"), unique_name("job")
    await replicas[0].record(new(request_id, job_id))
    await replicas[0].apply_status(status(request_id, job_id, "FINISHED"))

    def mine(claimed: list[Delivery]) -> list[str]:
        return [d.channel for d in claimed if d.request_id == request_id]

    # Other tests' ended requests may be pending too: claims of them are harmless leases.
    claims = await asyncio.gather(*(r.claim_due(limit=10_000, lease_seconds=0.5) for r in replicas))
    channels = [channel for claimed in claims for channel in mine(claimed)]
    assert sorted(channels) == ["broker", "email", "webhook"]  # each once, by one replica
    assert mine(await replicas[0].claim_due(limit=10_000, lease_seconds=0.5)) == []
    await asyncio.sleep(0.6)  # the holders never marked them: their leases run out
    again = await replicas[2].claim_due(limit=10_000, lease_seconds=30)
    assert sorted(mine(again)) == ["broker", "email", "webhook"]
    for delivery in again:
        if delivery.request_id == request_id:
            assert delivery.attempts == 2
            await replicas[2].delivered(delivery)
    states = {d.state for d in await replicas[0].deliveries(request_id)}
    assert states == {"SENT"}
