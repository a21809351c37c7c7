"""fts-submitter through the bus against the FTS3 emulator: idempotent, refusals shown."""

from __future__ import annotations

import uuid

import pytest

from datastore_common.bus import Bus
from datastore_common.messages import TransferSubmitted
from datastore_common.topology import FTS_SUBMITTER, STATUS_POLLER_POLL, dlq_name
from tests.integration.fts3_service.workflow import (
    TERMINAL,
    archive_registered,
    archive_transfers,
    jobs_in_fts,
    planned_job,
    running_workers,
    service_settings,
    status_capture,
    whoami_vo,
)
from tests.support.fts3_fixtures import Fts3Emulator
from tests.support.rabbitmq_fixtures import BusFactory, take_payloads
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.integration


async def announced(bus: Bus, count: int, wait: float = 30.0) -> list[TransferSubmitted]:
    """The ``TransferSubmitted`` waiting in the poll queue (no poller runs in these tests)."""
    queue = bus.topology.queue(STATUS_POLLER_POLL)
    return await take_payloads(bus, queue, TransferSubmitted, count, wait)


async def test_redelivered_archive_registered_creates_no_second_job(
    bus_factory: BusFactory,
    rabbitmq_url: str,
    fts3_emulator: Fts3Emulator,
    xrootd_stack: XRootDStack,
    xrootd_test_path: str,
) -> None:
    settings = service_settings(fts3_emulator, rabbitmq_url)
    request_id = f"redeliver-{uuid.uuid4()}"
    job = planned_job(
        request_id, whoami_vo(fts3_emulator), archive_transfers(xrootd_stack, xrootd_test_path, 2)
    )
    message = archive_registered(request_id, [job])

    async with running_workers(bus_factory, settings, poller=False) as bus:
        await bus.publish(message)
        await bus.publish(message)  # the same message again, as after a lost ack
        first, second = await announced(bus, 2)

    assert first.job_id == second.job_id == job.job_id
    assert first.transfers == job.transfers and first.fts_endpoint == fts3_emulator.url
    assert jobs_in_fts(fts3_emulator, request_id) == 1


async def test_fts_refusing_the_job_publishes_failed_with_its_message(
    bus_factory: BusFactory,
    rabbitmq_url: str,
    fts3_emulator: Fts3Emulator,
    xrootd_stack: XRootDStack,
    xrootd_test_path: str,
) -> None:
    # A token FTS does not know: FTS refuses every submission with 401 and a message.
    settings = service_settings(fts3_emulator, rabbitmq_url, token="revoked-token", vo="some-vo")
    request_id = f"refused-{uuid.uuid4()}"
    job = planned_job(request_id, "some-vo", archive_transfers(xrootd_stack, xrootd_test_path, 2))

    async with running_workers(bus_factory, settings, poller=False) as bus:
        async with status_capture(bus) as capture:
            await bus.publish(archive_registered(request_id, [job]))
            status = await capture.until(job.job_id, TERMINAL, wait=30)
        # Done with: not retried, not dead-lettered, nothing for the poller.
        channel = await bus.new_channel(1)
        for queue_name in (
            bus.topology.queue(FTS_SUBMITTER),
            dlq_name(bus.topology.queue(FTS_SUBMITTER)),
            bus.topology.queue(STATUS_POLLER_POLL),
        ):
            queue = await channel.declare_queue(queue_name, passive=True)
            assert queue.declaration_result.message_count == 0, queue_name
        await channel.close()

    assert status.job_state == "FAILED"
    assert status.reason and "FTS3 POST /jobs" in status.reason
    assert [(f.datafile_id, f.state, f.failure_class) for f in status.files] == [
        (1000, "FAILED", "system"),
        (1001, "FAILED", "system"),
    ]
    assert jobs_in_fts(fts3_emulator, request_id) == 0
