"""GET /job/{job_id}[/status|/complete|/percentage]: an FTS job (archive or restore) as FTS
sees it now."""

from __future__ import annotations

from fastapi import APIRouter

from datastore_gateway import handlers
from datastore_gateway.api.deps import CurrentUser, TransfersDep
from datastore_gateway.api.problems import UNAUTHENTICATED, Responses, problem
from datastore_gateway.schemas import JobComplete, JobPercentage, JobState, JobStatus

router = APIRouter(prefix="/job", tags=["Jobs"])

RESPONSES: Responses = {
    401: UNAUTHENTICATED,
    404: problem(
        "FTS knows no such job",
        "FTS at https://fts3.example.org:8446 knows no job 8d0f6a8e-5b5e-5d2c-9a57-3c1e2f4b6a70",
        "no such job: 'abc' is not an FTS job id",
    ),
    503: problem(
        "FTS unavailable",
        "FTS is not configured for job status (fts3 credentials)",
    ),
}


@router.get("/{job_id}", responses=RESPONSES)
async def job(job_id: str, _: CurrentUser, transfers: TransfersDep) -> JobStatus:
    """The job's state, percentage and every file's state."""
    return handlers.job_status(await handlers.job_progress(job_id, transfers))


@router.get("/{job_id}/status", responses=RESPONSES)
async def job_status(job_id: str, _: CurrentUser, transfers: TransfersDep) -> JobState:
    """The job's FTS state (STAGING, SUBMITTED, ACTIVE, FINISHED, ...) and whether it is final."""
    return handlers.job_state(await handlers.job_progress(job_id, transfers))


@router.get("/{job_id}/complete", responses=RESPONSES)
async def job_complete(job_id: str, _: CurrentUser, transfers: TransfersDep) -> JobComplete:
    """Whether the job has ended: FINISHED, FINISHEDDIRTY (some files failed), FAILED or
    CANCELED."""
    return handlers.job_complete(await handlers.job_progress(job_id, transfers))


@router.get("/{job_id}/percentage", responses=RESPONSES)
async def job_percentage(job_id: str, _: CurrentUser, transfers: TransfersDep) -> JobPercentage:
    """Files whose transfer ended (failures included) / all files x 100; 100 for no files."""
    return handlers.job_percentage(await handlers.job_progress(job_id, transfers))
