"""The ``TransferService`` contract: ``FakeTransferService`` and ``Fts3TransferService`` (FTS3
emulator, copying with XRootD) alike.

What the fts-submitter, the status-poller and the gateway rely on: a job's id is FTS's
deterministic id of (VO, sid), so submitting a sid again is harmless and gives the same id;
a status answer names every file with the ids the submitter sent in its metadata; a job FTS
does not know is None, never an error; a cancel ends what is still running.
"""

from __future__ import annotations

import uuid

import pytest

from datastore_common.domain.job_ids import fts_job_id
from datastore_common.domain.states import CANCELED, FAILED, TERMINAL
from datastore_common.errors import InvalidRequestError, NotFoundError
from datastore_common.messages import PlannedJob
from datastore_common.ports import JobProgress

from .conftest import TransferWorld


def planned(progress: JobProgress, job: PlannedJob) -> list[tuple[str, str, object]]:
    """(source, destination, metadata) of each file, as FTS reports them."""
    assert progress.job_id == job.job_id
    return [(f.source, f.destination, f.metadata) for f in progress.files]


def expected(job: PlannedJob) -> list[tuple[str, str, object]]:
    return [
        (t.source, t.destination, {"datafile_id": t.datafile_id, "dataset_id": t.dataset_id})
        for t in job.transfers
    ]


async def test_the_job_id_is_the_deterministic_id_of_vo_and_sid(
    transfer_world: TransferWorld,
) -> None:
    service = transfer_world.transfers
    job = await transfer_world.job(2)
    job_id = await service.submit(job)
    assert job_id == job.job_id == fts_job_id(await service.vo(), job.sid)


async def test_submitting_a_sid_again_gives_the_same_job_and_no_second_one(
    transfer_world: TransferWorld,
) -> None:
    service = transfer_world.transfers
    job = await transfer_world.job(2)
    job_id = await service.submit(job)
    assert await service.submit(job) == job_id
    # Even with other files: FTS keeps the job the sid first named.
    other = await transfer_world.job(3, sid=job.sid)
    assert await service.submit(other) == job_id
    progress = (await service.status([job_id]))[job_id]
    assert progress is not None
    assert planned(progress, job) == expected(job)


async def test_a_submitted_job_reports_every_file_with_the_ids_sent(
    transfer_world: TransferWorld,
) -> None:
    service = transfer_world.transfers
    job = await transfer_world.job(3)
    job_id = await service.submit(job)
    progress = (await service.status([job_id]))[job_id]
    assert progress is not None
    assert progress.state not in TERMINAL
    assert planned(progress, job) == expected(job)
    file_ids = [f.file_id for f in progress.files]
    assert all(isinstance(i, int) for i in file_ids) and len(set(file_ids)) == 3
    assert {f.state for f in progress.files}.isdisjoint(TERMINAL)


async def test_jobs_fts_does_not_know_are_none_among_those_it_knows(
    transfer_world: TransferWorld,
) -> None:
    service = transfer_world.transfers
    job = await transfer_world.job(1)
    job_id = await service.submit(job)
    ghosts = [str(uuid.uuid4()) for _ in range(2)]
    answer = await service.status([ghosts[0], job_id, ghosts[1]])
    assert set(answer) == {job_id, *ghosts}
    assert answer[ghosts[0]] is None and answer[ghosts[1]] is None
    assert answer[job_id] is not None and answer[job_id].job_id == job_id
    assert await service.status([ghosts[0]]) == {ghosts[0]: None}
    assert await service.status([]) == {}


async def test_a_job_without_transfers_is_refused(transfer_world: TransferWorld) -> None:
    job = (await transfer_world.job(1)).model_copy(update={"transfers": []})
    with pytest.raises(InvalidRequestError):
        await transfer_world.transfers.submit(job)


async def test_a_cancel_ends_the_job_and_every_file_still_running(
    transfer_world: TransferWorld,
) -> None:
    service = transfer_world.transfers
    job = await transfer_world.job(2)
    job_id = await service.submit(job)
    canceled = await service.cancel(job_id)
    # FTS answers a cancel with the job alone; its files come with a status request.
    assert (canceled.job_id, canceled.state, canceled.files) == (job_id, CANCELED, ())
    assert canceled.reason is not None and "cancel" in canceled.reason.lower()
    after = (await service.status([job_id]))[job_id]
    assert after is not None and after.state == CANCELED
    assert [(f.destination, f.state) for f in after.files] == [
        (t.destination, CANCELED) for t in job.transfers
    ]


async def test_a_cancel_leaves_an_ended_job_as_it_was(transfer_world: TransferWorld) -> None:
    service = transfer_world.transfers
    job = await transfer_world.job(2, fails=True)
    job_id = await service.submit(job)
    ended = await transfer_world.run_to_end(job_id)
    assert ended.state == FAILED
    assert planned(ended, job) == expected(job)  # the ids stay with the files to the end
    canceled = await service.cancel(job_id)
    assert (canceled.job_id, canceled.state, canceled.files) == (job_id, FAILED, ())
    after = (await service.status([job_id]))[job_id]
    assert after is not None
    assert (after.state, [f.state for f in after.files]) == (FAILED, [FAILED, FAILED])
    assert [f.reason for f in after.files] == [f.reason for f in ended.files]


async def test_cancelling_a_job_fts_does_not_know_is_not_found(
    transfer_world: TransferWorld,
) -> None:
    with pytest.raises(NotFoundError):
        await transfer_world.transfers.cancel(str(uuid.uuid4()))
