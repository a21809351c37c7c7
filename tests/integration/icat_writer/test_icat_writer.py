"""icat-writer as a worker on the bus, against the ICAT emulator, the idc (XRootD), RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import os
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import icat
import pytest

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.consumer import HEADER_ERROR, HEADER_ERROR_TYPE
from datastore_common.domain.archival import ARCHIVAL_IDS, ARCHIVAL_STATE
from datastore_common.domain.plan import plan_archive
from datastore_common.messages import (
    ArchiveRegistered,
    ArchiveRequested,
    FileState,
    InvestigationSpec,
    TransferStatus,
    wrap,
)
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import (
    FTS_SUBMITTER,
    ICAT_WRITER_ARCHIVE,
    ICAT_WRITER_STATUS,
    dlq_name,
)
from datastore_common.worker import Cleanup, topology_from
from datastore_icat_writer.app import wire
from tests.integration.xrootd.cli import upload
from tests.support.factories import seed_investigation
from tests.support.icat_fixtures import IcatEmulator
from tests.support.rabbitmq_fixtures import BusFactory, take_payloads, unique_name
from tests.support.workdirs import remove_after_session
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.integration

VO = "test-vo"


@pytest.fixture(scope="module")
def root(seeded_icat: IcatEmulator) -> Iterator[icat.Client]:
    client = icat.Client(seeded_icat.url)
    client.login("simple", {"username": "root", "password": "pw"})
    yield client
    client.cleanup()


@pytest.fixture
def settings(
    seeded_icat: IcatEmulator, rabbitmq_url: str, xrootd_stack: XRootDStack
) -> DatastoreSettings:
    name = unique_name("iw")
    return DatastoreSettings(
        icat={"url": seeded_icat.url},  # type: ignore[arg-type]
        broker={  # type: ignore[arg-type]
            "url": rabbitmq_url,
            "exchange": name,
            "queue_prefix": f"{name}.",
            "retry_delays": (0.2, 0.5),
        },
        fts3={"endpoint": "https://fts.test:8446", "vo": VO},  # type: ignore[arg-type]
        instrument_data_cache=f"{xrootd_stack.idc}//",
        tape_archive=f"{xrootd_stack.tape}//",
    )


Writers = Callable[[int], Awaitable[Bus]]


@pytest.fixture
async def writers(bus_factory: BusFactory, settings: DatastoreSettings) -> AsyncIterator[Writers]:
    """``await writers(n)``: n icat-writer replicas (own bus and ICAT client each) and a bus
    for the test itself."""
    cleanups: list[Cleanup] = []

    async def start(count: int) -> Bus:
        topology = topology_from(settings)
        for _ in range(count):
            cleanups.append(await wire(await bus_factory(topology), settings))
        return await bus_factory(topology)

    yield start
    for cleanup in cleanups:
        await cleanup()


def put_sources(
    settings: DatastoreSettings, investigation: InvestigationSpec, tmp_path: Path, *, skip: str = ""
) -> dict[str, tuple[int, str]]:
    """Write each datafile to the idc (random bytes); (size, adler32) by datafile name."""
    truth = {}
    for job in plan(settings, investigation, "x"):
        for transfer in job.transfers:
            assert transfer.datafile is not None
            name = transfer.datafile.datafile
            if name == skip:
                continue
            data = os.urandom(1000 + len(truth) * 37)
            # instrument/cycle/<investigation>-<visit>/<type>/<dataset>/<file>: the
            # investigation's folder goes at the end of the session.
            relative = transfer.source.removeprefix(settings.instrument_data_cache)
            remove_after_session(str(PurePosixPath(relative).parents[2]))
            local = tmp_path / name
            local.write_bytes(data)
            upload(local, transfer.source)
            truth[name] = (len(data), f"adler32:{zlib.adler32(data):08x}")
    return truth


def plan(settings: DatastoreSettings, investigation: InvestigationSpec, request_id: str) -> Any:
    return plan_archive(
        request_id,
        [investigation],
        instrument_data_cache=settings.instrument_data_cache,
        tape_archive=settings.tape_archive,
        tape_root_dir=settings.tape_root_dir,
        vo=VO,
        max_files_per_job=settings.fts3.max_files_per_job,
    )


def archive_requested(settings: DatastoreSettings, investigation: InvestigationSpec) -> Any:
    request_id = unique_name("req")
    data = ArchiveRequested(
        request_id=request_id,
        investigations=[investigation],
        jobs=plan(settings, investigation, request_id),
    )
    return wrap(data, source="tests", correlation_id=request_id, user="simple/root")


async def registered(bus: Bus, count: int, wait: float = 60.0) -> list[ArchiveRegistered]:
    """``archive.registered`` messages waiting in the fts-submitter queue (none runs here)."""
    queue = bus.topology.queue(FTS_SUBMITTER)
    found = await take_payloads(bus, queue, ArchiveRegistered, count, wait)
    assert len(found) == count, f"{len(found)} of {count} archive.registered within {wait} s"
    return found


def datafiles(root: icat.Client, name: str) -> list[Any]:
    return list(
        root.search(
            "SELECT o FROM Datafile o JOIN o.dataset ds JOIN ds.investigation i "
            f"WHERE i.name = '{name}' ORDER BY o.name INCLUDE o.parameters.type"
        )
    )


def parameters(entity: Any) -> dict[str, str]:
    return {p.type.name: p.stringValue for p in entity.parameters}


def dataset(root: icat.Client, name: str) -> Any:
    [found] = root.search(
        "SELECT o FROM Dataset o JOIN o.investigation i "
        f"WHERE i.name = '{name}' INCLUDE o.parameters.type"
    )
    return found


async def test_the_seed_request_is_registered_with_real_sizes_and_checksums(
    writers: Writers, settings: DatastoreSettings, root: icat.Client, tmp_path: Path
) -> None:
    investigation = seed_investigation()
    truth = put_sources(settings, investigation, tmp_path)
    bus = await writers(1)
    envelope = archive_requested(settings, investigation)
    await bus.publish(envelope)
    [announced] = await registered(bus, 1)

    [job] = envelope.data.jobs
    assert [j.job_id for j in announced.jobs] == [job.job_id]
    files = datafiles(root, investigation.name)
    assert {f.name: (f.fileSize, f.checksum) for f in files} == truth
    assert {f.id for f in files} == {t.datafile_id for t in announced.jobs[0].transfers}
    assert [t.checksum for t in announced.jobs[0].transfers] == [truth[f.name][1] for f in files]
    for datafile in files:
        assert parameters(datafile)[ARCHIVAL_STATE] == "SUBMITTED"
        assert parameters(datafile)[ARCHIVAL_IDS] == job.job_id
    ds = dataset(root, investigation.name)
    assert parameters(ds)[ARCHIVAL_STATE] == "SUBMITTED"
    assert (ds.fileCount, ds.fileSize) == (4, sum(size for size, _ in truth.values()))


async def test_redelivery_creates_nothing_new(
    writers: Writers, settings: DatastoreSettings, root: icat.Client, tmp_path: Path
) -> None:
    investigation = seed_investigation()
    put_sources(settings, investigation, tmp_path, skip="file_0003.nxs")
    bus = await writers(1)
    envelope = archive_requested(settings, investigation)
    await bus.publish(envelope)
    first = await registered(bus, 1)
    before = [(f.id, f.modTime, parameters(f)) for f in datafiles(root, investigation.name)]
    await bus.publish(envelope)  # the same message again, as after a lost ack
    second = await registered(bus, 1)
    assert first == second
    after = [(f.id, f.modTime, parameters(f)) for f in datafiles(root, investigation.name)]
    assert after == before
    assert parameters(datafiles(root, investigation.name)[3])[ARCHIVAL_STATE] == "FAILED"


async def test_two_replicas_consuming_at_once_create_no_duplicates(
    writers: Writers, settings: DatastoreSettings, root: icat.Client, tmp_path: Path
) -> None:
    investigation = seed_investigation(datasets=3, files=10)
    put_sources(settings, investigation, tmp_path)
    bus = await writers(2)
    envelope = archive_requested(settings, investigation)
    for _ in range(4):
        await bus.publish(envelope)
    # Eight handlers at once on one request: slow on 2 cores (and an SQLite emulator), so
    # a generous wait; what is asserted is that they make one set of entities.
    announced = await registered(bus, 4, wait=180)
    assert all(a == announced[0] for a in announced)
    files = datafiles(root, investigation.name)
    assert len(files) == 30
    assert all(len(f.parameters) == 3 for f in files)  # state, ids, endpoint: once each
    count = root.search(
        "SELECT COUNT(o) FROM Dataset o JOIN o.investigation i "
        f"WHERE i.name = '{investigation.name}'"
    )
    assert count == [3]


async def test_a_status_event_moves_icat_to_finished(
    writers: Writers, settings: DatastoreSettings, root: icat.Client, tmp_path: Path
) -> None:
    investigation = seed_investigation()
    put_sources(settings, investigation, tmp_path)
    bus = await writers(1)
    envelope = archive_requested(settings, investigation)
    await bus.publish(envelope)
    [announced] = await registered(bus, 1)
    [job] = announced.jobs
    status = TransferStatus(
        request_id=announced.request_id,
        kind="archive",
        job_id=job.job_id,
        fts_endpoint=str(settings.fts3.endpoint),
        job_state="FINISHED",
        files=[
            FileState(
                source=t.source,
                destination=t.destination,
                datafile_id=t.datafile_id,
                dataset_id=t.dataset_id,
                state="FINISHED",
            )
            for t in job.transfers
        ],
    )
    await bus.publish(wrap(status, source="tests", correlation_id=announced.request_id))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if parameters(dataset(root, investigation.name)).get(ARCHIVAL_STATE) == "FINISHED":
            break
        await asyncio.sleep(0.2)
    assert parameters(dataset(root, investigation.name))[ARCHIVAL_STATE] == "FINISHED"
    assert {parameters(f)[ARCHIVAL_STATE] for f in datafiles(root, investigation.name)} == {
        "FINISHED"
    }


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


async def test_an_archive_request_with_a_tampered_plan_is_dead_lettered_and_changes_nothing(
    writers: Writers, settings: DatastoreSettings, root: icat.Client, tmp_path: Path
) -> None:
    """Published straight to the broker with a job whose source is on another server: the
    icat-writer recomputes the plan, refuses it before writing anything, and the message
    ends in its DLQ with the reason; no job reaches the fts-submitter's queue."""
    investigation = seed_investigation(files=2)
    put_sources(settings, investigation, tmp_path)
    bus = await writers(1)
    envelope = archive_requested(settings, investigation)
    [job] = envelope.data.jobs
    forged_source = "root://evil.example:1094//etc/passwd"
    tampered = job.model_copy(
        update={
            "transfers": [
                job.transfers[0].model_copy(update={"source": forged_source}),
                *job.transfers[1:],
            ]
        }
    )
    forged = wrap(
        envelope.data.model_copy(update={"jobs": [tampered]}),
        source="instrument",
        correlation_id=envelope.correlation_id,
        user="simple/root",
    )

    await bus.publish(forged)
    dead = await dead_letter(bus, ICAT_WRITER_ARCHIVE)

    assert dead.headers[HEADER_ERROR_TYPE] == "UntrustedMessageError"
    assert "not the ones its plan gives" in str(dead.headers[HEADER_ERROR])
    assert forged_source in str(dead.headers[HEADER_ERROR])
    assert json.loads(dead.body)["data"]["request_id"] == envelope.data.request_id
    assert root.search(f"SELECT o FROM Investigation o WHERE o.name = '{investigation.name}'") == []
    queue = bus.topology.queue(FTS_SUBMITTER)
    assert await take_payloads(bus, queue, ArchiveRegistered, 1, wait=2) == []


async def test_a_status_naming_other_urls_is_dead_lettered_and_changes_nothing(
    writers: Writers, settings: DatastoreSettings, root: icat.Client, tmp_path: Path
) -> None:
    """A forged FINISHED for a registered job, its files named by URLs that are not their
    place: refused before anything is recorded; ICAT still says SUBMITTED."""
    investigation = seed_investigation(files=2)
    put_sources(settings, investigation, tmp_path)
    bus = await writers(1)
    await bus.publish(archive_requested(settings, investigation))
    [announced] = await registered(bus, 1)
    [job] = announced.jobs
    elsewhere = f"{settings.tape_archive}somewhere/else.nxs"
    forged = TransferStatus(
        request_id=announced.request_id,
        kind="archive",
        job_id=job.job_id,
        fts_endpoint=str(settings.fts3.endpoint),
        job_state="FINISHED",
        files=[
            FileState(
                source=t.source,
                destination=elsewhere,
                datafile_id=t.datafile_id,
                dataset_id=t.dataset_id,
                state="FINISHED",
            )
            for t in job.transfers
        ],
    )

    await bus.publish(wrap(forged, source="status-poller", correlation_id=announced.request_id))
    dead = await dead_letter(bus, ICAT_WRITER_STATUS)

    assert dead.headers[HEADER_ERROR_TYPE] == "UntrustedMessageError"
    assert elsewhere in str(dead.headers[HEADER_ERROR])
    assert parameters(dataset(root, investigation.name))[ARCHIVAL_STATE] == "SUBMITTED"
    assert {parameters(f)[ARCHIVAL_STATE] for f in datafiles(root, investigation.name)} == {
        "SUBMITTED"
    }
