"""GET /job/{job_id}[/status|/complete|/percentage]: an FTS job (archive or restore) as FTS
sees it now, to the owner of its request and to ``gateway.admins`` only (others: 404);
DELETE /job/{job_id} cancels a restore job (the original API's cancel)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from datastore_common.ports import JobProgress
from datastore_gateway import control, handlers
from datastore_gateway.api.deps import CurrentUser, LedgerDep, SettingsDep, TransfersDep
from datastore_gateway.api.problems import UNAUTHENTICATED, Responses, problem
from datastore_gateway.schemas import (
    CancelAccepted,
    JobComplete,
    JobPercentage,
    JobState,
    JobStatus,
)

router = APIRouter(prefix="/job", tags=["Jobs"])

RESPONSES: Responses = {
    401: UNAUTHENTICATED,
    404: problem(
        "No such job of yours: not a job of a request you made (admins: gateway.admins see "
        "every job), or FTS knows no such job",
        "no job 8d0f6a8e-5b5e-5d2c-9a57-3c1e2f4b6a70 of yours",
        "FTS at https://fts3.example.org:8446 knows no job 8d0f6a8e-5b5e-5d2c-9a57-3c1e2f4b6a70",
        "no such job: 'abc' is not an FTS job id",
    ),
    503: problem(
        "FTS or the request ledger unavailable",
        "FTS is not configured for job status (fts3 credentials)",
        "the request ledger is not open yet",
    ),
}


async def progress_of(
    job_id: str,
    user: CurrentUser,
    transfers: TransfersDep,
    ledger: LedgerDep,
    settings: SettingsDep,
) -> JobProgress:
    """The job as FTS sees it now, once its owner (or an admin) is checked: every route's
    starting point."""
    return await handlers.job_progress(
        job_id, transfers, user=user, ledger=ledger, settings=settings
    )


ProgressDep = Annotated[JobProgress, Depends(progress_of)]


@router.get("/{job_id}", responses=RESPONSES)
async def job(progress: ProgressDep) -> JobStatus:
    """The job's state, percentage and every file's state."""
    return handlers.job_status(progress)


@router.get("/{job_id}/status", responses=RESPONSES)
async def job_status(progress: ProgressDep) -> JobState:
    """The job's FTS state (STAGING, SUBMITTED, ACTIVE, FINISHED, ...) and whether it is final."""
    return handlers.job_state(progress)


@router.get("/{job_id}/complete", responses=RESPONSES)
async def job_complete(progress: ProgressDep) -> JobComplete:
    """Whether the job has ended: FINISHED, FINISHEDDIRTY (some files failed), FAILED or
    CANCELED."""
    return handlers.job_complete(progress)


@router.get("/{job_id}/percentage", responses=RESPONSES)
async def job_percentage(progress: ProgressDep) -> JobPercentage:
    """Files whose transfer ended (failures included) / all files x 100; 100 for no files."""
    return handlers.job_percentage(progress)


CANCEL_RESPONSES: Responses = {
    **RESPONSES,
    409: problem(
        "Not cancelled: the job has ended, or it is an archive's (admins: force=true)",
        "job 8d0f6a8e-5b5e-5d2c-9a57-3c1e2f4b6a70: the job has ended FINISHED: nothing to cancel",
        "job 8d0f6a8e-5b5e-5d2c-9a57-3c1e2f4b6a70: an archive job cannot be cancelled: its files "
        "may already be on tape and ICAT records them; only an admin may force it",
    ),
}


@router.delete("/{job_id}", status_code=202, responses=CANCEL_RESPONSES)
async def cancel_job(
    job_id: str,
    user: CurrentUser,
    transfers: TransfersDep,
    ledger: LedgerDep,
    settings: SettingsDep,
    force: Annotated[
        bool, Query(description="gateway.admins only: cancel an archive's job too")
    ] = False,
) -> CancelAccepted:
    """Cancel a restore's job (as `DELETE /requests/{request_id}` does for all of them): FTS
    ends its files not yet done CANCELED and removes partial copies. An archive's job is
    refused (409) unless an admin passes `force=true`; an ended job is a 409 with its state."""
    return await control.cancel_job(
        job_id, force=force, user=user, ledger=ledger, transfers=transfers, settings=settings
    )
