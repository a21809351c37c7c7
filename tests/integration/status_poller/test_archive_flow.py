"""Archive through the real workers: ArchiveRegistered -> fts-submitter -> FTS3 -> status-poller.

Real RabbitMQ (own exchange and queue prefix per test), the FTS3 emulator moving real files
written with xrdcp between the XRootD servers, polls every 0.5 s. The ``transfer.status``
events are captured from a queue bound like the icat-writer's.
"""

from __future__ import annotations

import uuid

import pytest

from datastore_common.domain.states import ACTIVE_ORDER, normalise
from datastore_common.topology import STATUS_POLLER_POLL
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
from tests.support.rabbitmq_fixtures import BusFactory
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.integration

ORDER = {state: rank for rank, state in enumerate((*ACTIVE_ORDER, "TERMINAL"))}


def rank(state: str) -> int:
    state = normalise(state)
    return ORDER["TERMINAL"] if state in TERMINAL else ORDER[state]


async def test_four_files_are_followed_to_finished_with_events_in_order(
    bus_factory: BusFactory,
    rabbitmq_url: str,
    fts3_emulator: Fts3Emulator,
    xrootd_stack: XRootDStack,
    xrootd_test_path: str,
) -> None:
    settings = service_settings(fts3_emulator, rabbitmq_url)
    request_id = f"flow-{uuid.uuid4()}"
    transfers = archive_transfers(xrootd_stack, xrootd_test_path, 4)
    job = planned_job(request_id, whoami_vo(fts3_emulator), transfers)

    async with running_workers(bus_factory, settings) as bus, status_capture(bus) as capture:
        await bus.publish(archive_registered(request_id, [job]))
        final = await capture.until(job.job_id, TERMINAL, wait=120)

        events = capture.of(job.job_id)
        states = [e.job_state for e in events]
        # SUBMITTED / ACTIVE / ARCHIVING as the polls catch them (the emulator starts copies
        # at once, and a small file's tape migration may end between two polls), then FINISHED.
        assert states[0] in ACTIVE_ORDER, states
        assert final.job_state == "FINISHED" and states[-1] == "FINISHED", states
        assert [rank(s) for s in states] == sorted(rank(s) for s in states), states
        # Every file went through the events and ended FINISHED, with its ICAT ids.
        last: dict[str, str] = {}
        for event in events:
            for file in event.files:
                assert (file.datafile_id, file.dataset_id) == (
                    1000 + int(file.destination[-8:-4]),
                    77,
                )
                last[file.destination] = file.state
        assert last == {t.destination: "FINISHED" for t in transfers}
        assert {e.request_id for e in events} == {request_id}
        # Polled every 0.5 s, announced only on change: each event moves the job or a file.
        assert all(
            e.files or e.job_state != events[i - 1].job_state for i, e in enumerate(events) if i
        )

        # Terminal: nothing of this job is left waiting in the poller's queues.
        channel = await bus.new_channel(1)
        for name in (
            bus.topology.queue(STATUS_POLLER_POLL),
            bus.topology.delay_into(STATUS_POLLER_POLL),
        ):
            queue = await channel.declare_queue(name, passive=True)
            assert queue.declaration_result.message_count == 0, name
        await channel.close()
    assert jobs_in_fts(fts3_emulator, request_id) == 1


async def test_missing_source_fails_that_file_and_the_job_finishes_dirty(
    bus_factory: BusFactory,
    rabbitmq_url: str,
    fts3_emulator: Fts3Emulator,
    xrootd_stack: XRootDStack,
    xrootd_test_path: str,
) -> None:
    settings = service_settings(fts3_emulator, rabbitmq_url)
    request_id = f"dirty-{uuid.uuid4()}"
    transfers = archive_transfers(xrootd_stack, xrootd_test_path, 3, missing=1)
    job = planned_job(request_id, whoami_vo(fts3_emulator), transfers)

    async with running_workers(bus_factory, settings) as bus, status_capture(bus) as capture:
        await bus.publish(archive_registered(request_id, [job]))
        final = await capture.until(job.job_id, TERMINAL, wait=120)

    assert final.job_state == "FINISHEDDIRTY"
    failed = [f for e in capture.of(job.job_id) for f in e.files if f.state == "FAILED"]
    assert [f.destination for f in failed] == [transfers[-1].destination]
    (missing,) = failed
    assert missing.reason and "No such file" in missing.reason
    assert missing.failure_class == "user"
    assert missing.datafile_id == 1002
