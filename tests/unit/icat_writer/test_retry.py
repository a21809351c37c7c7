"""icat-writer ``retry_archive`` on fakes: the FAILED or CANCELED files of an ended archive are
claimed for new jobs, recorded SUBMITTED in them and announced; a redelivery changes nothing;
a retry ICAT no longer allows is refused without touching ICAT."""

from __future__ import annotations

import uuid

import pytest

from datastore_common.domain.archival import ARCHIVAL_FAILURE, ARCHIVAL_IDS, ARCHIVAL_STATE
from datastore_common.domain.control import retry_sid
from datastore_common.domain.failures import give_up_events
from datastore_common.domain.job_ids import fts_job_id
from datastore_common.errors import ConflictError, InvalidRequestError, NotFoundError
from datastore_common.messages import ArchiveRetryRequested, Envelope, RequestFailed, wrap
from tests.support.factories import seed_investigation
from tests.unit.icat_writer.test_handlers import VO, World


def retry_of(dataset_id: int, datafile_ids: list[int], request_id: str | None = None) -> Envelope:
    data = ArchiveRetryRequested(
        request_id=request_id or str(uuid.uuid4()), dataset_id=dataset_id, datafile_ids=datafile_ids
    )
    return wrap(data, source="gateway", correlation_id=data.request_id, user="simple/root")


async def finished_dirty(world: World) -> tuple[int, dict[str, int]]:
    """A dataset of 3 files archived: the first on tape, the second FAILED, the third CANCELED."""
    investigation = seed_investigation(files=3)
    world.put_sources(investigation)
    await world.register(world.request(investigation))
    [job] = world.registered()[0].jobs
    await world.report(job, ["FINISHED", "FAILED", "CANCELED"], reasons=[None, "timeout", None])
    dataset_id = world.dataset(investigation)
    ids = {name: f.id for name, f in world.catalogue.datafiles_in(dataset_id).items()}
    return dataset_id, ids


@pytest.fixture
def world() -> World:
    return World()


async def test_only_failed_and_canceled_files_go_again_under_new_jobs(world: World) -> None:
    dataset_id, ids = await finished_dirty(world)
    assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FINISHEDDIRTY"
    first_job = world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_IDS]
    on_tape, failed, canceled = sorted(ids.values())
    retry = retry_of(dataset_id, [failed, canceled])
    await world.writer.retry_archive(retry)

    [_, announced] = world.registered()
    [job] = announced.jobs
    assert announced.request_id == retry.data.request_id
    assert job.job_id == fts_job_id(VO, retry_sid(retry.data.request_id, 0))
    assert {t.datafile_id for t in job.transfers} == {failed, canceled}
    assert all(t.source.startswith(world.settings.instrument_data_cache) for t in job.transfers)
    dataset = world.catalogue.archival("Dataset", dataset_id)
    assert dataset[ARCHIVAL_IDS] == job.job_id != first_job  # the claim swapped them
    assert dataset[ARCHIVAL_STATE] == "SUBMITTED"
    for datafile_id in (failed, canceled):
        archival = world.catalogue.archival("Datafile", datafile_id)
        assert (archival[ARCHIVAL_STATE], archival[ARCHIVAL_IDS]) == ("SUBMITTED", job.job_id)
        assert ARCHIVAL_FAILURE not in archival
    kept = world.catalogue.archival("Datafile", on_tape)
    assert (kept[ARCHIVAL_STATE], kept[ARCHIVAL_IDS]) == ("FINISHED", first_job)

    # FTS finishes the retry: the dataset is FINISHED.
    await world.report(job, ["FINISHED", "FINISHED"])
    assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FINISHED"


async def test_a_redelivery_announces_the_same_jobs_and_moves_nothing_back(world: World) -> None:
    dataset_id, ids = await finished_dirty(world)
    _, failed, canceled = sorted(ids.values())
    retry = retry_of(dataset_id, [failed, canceled])
    await world.writer.retry_archive(retry)
    [job] = world.registered()[-1].jobs
    await world.report(job, ["ACTIVE", "FINISHED"])
    await world.writer.retry_archive(retry)  # redelivered
    again = world.registered()[-1]
    assert again.jobs == [job]
    assert world.catalogue.archival("Datafile", failed)[ARCHIVAL_STATE] == "ACTIVE"
    assert world.catalogue.archival("Datafile", canceled)[ARCHIVAL_STATE] == "FINISHED"
    assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "ACTIVE"


async def test_a_second_retry_of_a_dataset_in_flight_is_refused_and_changes_nothing(
    world: World,
) -> None:
    dataset_id, ids = await finished_dirty(world)
    _, failed, canceled = sorted(ids.values())
    await world.writer.retry_archive(retry_of(dataset_id, [failed, canceled]))
    before = dict(world.catalogue.archival("Dataset", dataset_id))
    with pytest.raises(ConflictError, match="in flight"):
        await world.writer.retry_archive(retry_of(dataset_id, [failed, canceled]))
    assert world.catalogue.archival("Dataset", dataset_id) == before


async def test_files_no_longer_failed_are_refused(world: World) -> None:
    dataset_id, ids = await finished_dirty(world)
    on_tape, failed, _ = sorted(ids.values())
    with pytest.raises(ConflictError, match=str(on_tape)):
        await world.writer.retry_archive(retry_of(dataset_id, [on_tape, failed]))
    assert world.catalogue.archival("Datafile", on_tape)[ARCHIVAL_STATE] == "FINISHED"


async def test_an_unknown_dataset_or_datafile_is_not_found(world: World) -> None:
    dataset_id, _ = await finished_dirty(world)
    with pytest.raises(NotFoundError, match="no dataset 999999"):
        await world.writer.retry_archive(retry_of(999999, [1]))
    with pytest.raises(NotFoundError, match="not in dataset"):
        await world.writer.retry_archive(retry_of(dataset_id, [999999]))


def test_a_retry_given_up_fails_the_request_alone() -> None:
    data = ArchiveRetryRequested(request_id="r", dataset_id=1, datafile_ids=[2])
    events = give_up_events(data, "retry refused: x", "user", fts_endpoint="https://fts")
    assert events == [
        RequestFailed(
            request_id="r", kind="archive", failure_class="user", reason="retry refused: x"
        )
    ]


async def test_sources_are_checked_again_and_a_missing_one_refuses_the_retry(
    world: World,
) -> None:
    dataset_id, ids = await finished_dirty(world)
    _, failed, canceled = sorted(ids.values())
    before = dict(world.catalogue.archival("Dataset", dataset_id))
    sources = dict(world.storage.files)
    world.storage.files.clear()
    with pytest.raises(InvalidRequestError, match="source not found"):
        await world.writer.retry_archive(retry_of(dataset_id, [failed, canceled]))
    assert world.catalogue.archival("Dataset", dataset_id) == before
    assert len(world.registered()) == 1  # nothing announced

    world.storage.files.update(sources)
    await world.writer.retry_archive(retry_of(dataset_id, [failed, canceled]))
    [job] = world.registered()[-1].jobs
    assert all(t.checksum == sources[t.source].checksum for t in job.transfers)
    assert all(t.filesize == sources[t.source].size for t in job.transfers)


async def test_a_retry_replaces_what_an_earlier_attempt_left_on_tape(world: World) -> None:
    from datastore_common.adapters.fts3.transfer_service import job_params

    dataset_id, ids = await finished_dirty(world)
    _, failed, canceled = sorted(ids.values())
    await world.writer.retry_archive(retry_of(dataset_id, [failed, canceled]))
    [first, retried] = world.registered()
    assert [job.overwrite for job in first.jobs] == [False]  # a first archive never does
    assert [job.overwrite for job in retried.jobs] == [True]
    assert job_params(retried.jobs[0], world.settings.fts3).overwrite is True
