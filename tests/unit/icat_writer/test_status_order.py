"""Status events of one job are recorded one at a time (ICAT has no conditional update)."""

from __future__ import annotations

import asyncio
from typing import Any

from datastore_common.messages import Envelope, TransferStatus, wrap
from datastore_icat_writer.bootstrap import one_at_a_time_per_job


def event(job_id: str) -> Envelope[Any]:
    status = TransferStatus(
        request_id="r", kind="archive", job_id=job_id, fts_endpoint="https://f", job_state="ACTIVE"
    )
    return wrap(status, source="tests", correlation_id="r")


async def test_one_job_at_a_time_and_different_jobs_together() -> None:
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    overlap_of_jobs = 0

    async def record(envelope: Envelope[Any]) -> None:
        nonlocal overlap_of_jobs
        job = envelope.data.job_id
        running[job] = running.get(job, 0) + 1
        most[job] = max(most.get(job, 0), running[job])
        overlap_of_jobs = max(overlap_of_jobs, sum(1 for n in running.values() if n))
        await asyncio.sleep(0.01)
        running[job] -= 1

    handler = one_at_a_time_per_job(record)
    await asyncio.gather(*(handler(event(job)) for job in ["a", "b", "a", "b", "a"]))

    assert most == {"a": 1, "b": 1}
    assert overlap_of_jobs == 2  # a and b did run side by side
