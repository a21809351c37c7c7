"""The icat-writer re-checks what it is told (on fakes): an archive request's jobs must be its
own plan, a status must come from a job its dataset records and name the datafile's URLs."""

from __future__ import annotations

from typing import Any

import pytest

from datastore_common.adapters.rabbitmq.reporters import give_up_reporter
from datastore_common.domain.archival import ARCHIVAL_STATE
from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.domain.trust import UntrustedMessageError
from datastore_common.errors import PermanentError
from datastore_common.messages import (
    ArchiveRequested,
    Envelope,
    PlannedJob,
    RequestFailed,
    TransferStatus,
    wrap,
)
from datastore_common.ports import StoredFile
from datastore_icat_writer.handlers import planned_jobs
from tests.support.factories import seed_investigation
from tests.unit.icat_writer.test_handlers import ENDPOINT, VO, World


@pytest.fixture
def world() -> World:
    return World()


def tampered(envelope: Envelope[ArchiveRequested], jobs: list[PlannedJob]) -> Envelope[Any]:
    return wrap(
        envelope.data.model_copy(update={"jobs": jobs}),
        source="instrument",
        correlation_id=envelope.correlation_id,
        user=envelope.user,
    )


def first_transfer(jobs: list[PlannedJob], **changes: Any) -> list[PlannedJob]:
    job = jobs[0]
    transfers = [job.transfers[0].model_copy(update=changes), *job.transfers[1:]]
    return [job.model_copy(update={"transfers": transfers}), *jobs[1:]]


TAMPERINGS = [
    pytest.param(
        lambda jobs: [jobs[0].model_copy(update={"job_id": fts_job_id(VO, "someone-else:0")})],
        "id ",
        id="job-id",
    ),
    pytest.param(
        lambda jobs: first_transfer(jobs, source="root://evil.example:1094//etc/passwd"),
        "root://evil.example:1094//etc/passwd",
        id="source",
    ),
    pytest.param(
        lambda jobs: first_transfer(
            jobs, destination=jobs[0].transfers[1].destination.replace("file_0001", "x")
        ),
        "destination",
        id="destination",
    ),
    pytest.param(
        lambda jobs: [
            *jobs,
            jobs[0].model_copy(
                update={
                    "sid": job_sid("x", 1),
                    "job_id": fts_job_id(VO, job_sid("x", 1)),
                    "transfers": [],
                }
            ),
        ],
        "not in the plan",
        id="extra-job",
    ),
]


@pytest.mark.parametrize(("tamper", "named"), TAMPERINGS)
async def test_an_archive_request_whose_jobs_are_not_its_plan_is_refused_before_any_write(
    world: World, tamper: Any, named: str
) -> None:
    investigation = seed_investigation(files=4)
    world.put_sources(investigation)
    world.storage.files["root://evil.example:1094//etc/passwd"] = StoredFile(1, "adler32:00000001")
    envelope = world.request(investigation)

    with pytest.raises(UntrustedMessageError, match="not the ones its plan gives") as caught:
        await world.register(tampered(envelope, tamper(envelope.data.jobs)))

    assert isinstance(caught.value, PermanentError)
    assert named in str(caught.value)
    assert world.catalogue.investigations == {} and world.catalogue.writes == 0
    assert world.publisher.published == []
    assert world.storage.described == []  # not even the sources were asked about


async def test_without_a_vo_the_urls_are_still_checked_but_not_the_job_ids() -> None:
    """An icat-writer that does not know the VO (fts3.vo unset: the gateway asks FTS) cannot
    name the jobs; it checks the rest, and the fts-submitter checks the ids against FTS's."""
    world = World(vo=None)
    investigation = seed_investigation(files=2)
    world.put_sources(investigation)
    envelope = world.request(investigation)  # planned with the test VO
    other_vo = [
        j.model_copy(update={"job_id": fts_job_id("instrument-vo", j.sid)})
        for j in envelope.data.jobs
    ]
    with pytest.raises(UntrustedMessageError, match="evil"):
        await world.register(tampered(envelope, first_transfer(other_vo, source="root://evil//x")))
    assert world.catalogue.writes == 0

    await world.register(tampered(envelope, other_vo))
    [registered] = world.registered()
    assert [j.job_id for j in registered.jobs] == [j.job_id for j in other_vo]


async def test_a_request_that_came_without_jobs_is_still_planned_here(world: World) -> None:
    investigation = seed_investigation(files=2)
    world.put_sources(investigation)
    await world.register(world.request(investigation, "instrument-req", planned=False))
    [registered] = world.registered()
    assert [j.job_id for j in registered.jobs] == [fts_job_id(VO, job_sid("instrument-req", 0))]


async def test_giving_a_tampered_request_up_reports_our_own_plan_not_the_forged_one(
    world: World,
) -> None:
    investigation = seed_investigation(files=2)
    envelope = world.request(investigation)
    forged = tampered(envelope, [envelope.data.jobs[0].model_copy(update={"job_id": "forged-job"})])
    assert planned_jobs(forged.data, world.settings) == envelope.data.jobs

    report = give_up_reporter(
        world.publisher,
        fts_endpoint=ENDPOINT,
        planner=lambda data: planned_jobs(data, world.settings),
    )
    await report(forged, "refused", UntrustedMessageError("refused"))
    [failed] = world.publisher.of_type(RequestFailed)
    assert isinstance(failed, RequestFailed)
    assert failed.job_ids == [envelope.data.jobs[0].job_id]
    assert failed.failure_class == "system"
    statuses = world.publisher.of_type(TransferStatus)
    assert [s.job_id for s in statuses] == [envelope.data.jobs[0].job_id]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- status events


async def registered_job(world: World, files: int = 2) -> tuple[int, PlannedJob]:
    investigation = seed_investigation(files=files)
    world.put_sources(investigation)
    await world.register(world.request(investigation))
    return world.dataset(investigation), world.registered()[-1].jobs[0]


async def test_a_status_of_a_job_the_dataset_does_not_record_is_refused(world: World) -> None:
    """Today a forged FINISHED reaches a datafile that records no job (one ICAT holds but
    Datastore never archived): it would claim the file is on tape."""
    dataset_id, job = await registered_job(world)
    for datafile in world.catalogue.datafiles_in(dataset_id).values():
        world.catalogue.parameters.pop(("Datafile", datafile.id), None)  # never archived by us
    writes = world.catalogue.writes
    forged = job.model_copy(update={"job_id": fts_job_id(VO, "forged:0")})

    with pytest.raises(UntrustedMessageError, match="is not one its dataset") as caught:
        await world.report(forged, ["FINISHED", "FINISHED"])

    assert forged.job_id in str(caught.value)
    assert world.catalogue.writes == writes
    assert set(world.file_states(dataset_id).values()) == {None}


async def test_a_status_naming_other_urls_for_a_datafile_is_refused(world: World) -> None:
    dataset_id, job = await registered_job(world)
    writes = world.catalogue.writes
    moved = job.model_copy(
        update={
            "transfers": [
                job.transfers[0].model_copy(update={"source": "root://evil:1094//elsewhere"}),
                job.transfers[1],
            ]
        }
    )

    with pytest.raises(UntrustedMessageError, match="root://evil:1094//elsewhere"):
        await world.report(moved, ["FINISHED", "FINISHED"])

    assert world.catalogue.writes == writes
    assert set(world.file_states(dataset_id).values()) == {"SUBMITTED"}


async def test_the_datasets_own_job_is_recorded_and_a_duplicate_changes_nothing(
    world: World,
) -> None:
    dataset_id, job = await registered_job(world)
    await world.report(job, ["FINISHED", "FINISHED"])
    writes = world.catalogue.writes
    await world.report(job, ["FINISHED", "FINISHED"])
    assert world.catalogue.writes == writes
    assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FINISHED"
