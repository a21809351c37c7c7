"""fts-submitter through the bus against the FTS3 emulator: idempotent, refusals shown."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.consumer import HEADER_ERROR, HEADER_ERROR_TYPE
from datastore_common.messages import PlannedTransfer, RequestDelayed, TransferSubmitted
from datastore_common.topology import FTS_SUBMITTER, STATUS_POLLER_POLL, dlq_name
from tests.integration.fts3_service.workflow import (
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


async def test_fts_refusing_our_credential_retries_with_an_alarm_and_fails_nothing(
    bus_factory: BusFactory,
    rabbitmq_url: str,
    fts3_emulator: Fts3Emulator,
    xrootd_stack: XRootDStack,
    xrootd_test_path: str,
) -> None:
    # A token FTS does not know: FTS refuses every submission with 401. That is our
    # credential, not the request's fault: retried (and alarmed), never FAILED.
    settings = service_settings(fts3_emulator, rabbitmq_url, token="revoked-token", vo="some-vo")
    request_id = f"refused-{uuid.uuid4()}"
    job = planned_job(request_id, "some-vo", archive_transfers(xrootd_stack, xrootd_test_path, 2))

    async with running_workers(bus_factory, settings, poller=False) as bus:
        channel = await bus.new_channel(10)
        exchange = await channel.get_exchange(bus.topology.exchange)
        delays = await channel.declare_queue(exclusive=True, auto_delete=True)
        await delays.bind(exchange, routing_key=RequestDelayed.TYPE)
        async with status_capture(bus) as capture:
            await bus.publish(archive_registered(request_id, [job]))
            # More retries than the ladder has steps: the last step repeats, for ever.
            notices = await take_payloads(bus, delays.name, RequestDelayed, 4, wait=30)
            events = await capture.drain()
        dead = await channel.declare_queue(
            dlq_name(bus.topology.queue(FTS_SUBMITTER)), passive=True
        )
        assert dead.declaration_result.message_count == 0
        await channel.close()

    assert len(notices) == 4 and {n.request_id for n in notices} == {request_id}
    assert all("credential" in n.reason for n in notices)
    assert [e for e in events if e.job_id == job.job_id] == []  # no FAILED, no state at all
    assert jobs_in_fts(fts3_emulator, request_id) == 0


@pytest.mark.parametrize(
    "destination",
    [
        pytest.param("root://evil.example:1094//archive/stolen.nxs", id="another-server"),
        pytest.param("root://127.0.0.1:11096//archive/../../etc/cron.d/x", id="dot-dot"),
    ],
)
async def test_a_transfer_outside_the_storage_roots_is_dead_lettered_and_never_submitted(
    bus_factory: BusFactory, rabbitmq_url: str, fts3_emulator: Fts3Emulator, destination: str
) -> None:
    """An ``archive.registered`` forged on the broker, copying to another server or out of
    the tape folder: refused before FTS is asked (no job), reported FAILED, and kept in the
    DLQ with the reason naming the URL."""
    settings = service_settings(fts3_emulator, rabbitmq_url)
    request_id = f"hostile-{uuid.uuid4()}"
    source = f"{settings.instrument_data_cache}tests/{request_id}/file_0000.nxs"
    transfers = [PlannedTransfer(source=source, destination=destination, datafile_id=1)]
    job = planned_job(request_id, whoami_vo(fts3_emulator), transfers)

    async with running_workers(bus_factory, settings, poller=False) as bus:
        async with status_capture(bus) as capture:
            await bus.publish(archive_registered(request_id, [job]))
            failed = await capture.until(job.job_id, {"FAILED"}, wait=30)
        dead = await dead_letter(bus, FTS_SUBMITTER)

    assert dead.headers[HEADER_ERROR_TYPE] == "UntrustedMessageError"
    assert repr(destination) in str(dead.headers[HEADER_ERROR])
    assert json.loads(dead.body)["data"]["request_id"] == request_id
    assert repr(destination) in (failed.reason or "")
    assert jobs_in_fts(fts3_emulator, request_id) == 0
    assert await announced(bus, 1, wait=2) == []


async def dead_letter(bus: Bus, queue: str, wait: float = 30.0) -> Any:
    """The first message in ``queue``'s DLQ (taken off it), within ``wait`` seconds."""
    channel = await bus.new_channel(1)
    dlq = await channel.get_queue(dlq_name(bus.topology.queue(queue)), ensure=False)
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            message = await dlq.get(no_ack=True, fail=False)
            if message is not None:
                return message
            await asyncio.sleep(0.1)
    finally:
        await channel.close()
    raise AssertionError(f"nothing dead-lettered from {queue} within {wait} s")
