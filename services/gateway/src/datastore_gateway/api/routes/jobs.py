"""GET /job/{job_id}[/status|/complete|/percentage]: an FTS job (archive or restore) as FTS
sees it now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from datastore_gateway import handlers
from datastore_gateway.api.deps import CurrentUser, TransfersDep
from datastore_gateway.schemas import JobComplete, JobPercentage, JobState, JobStatus, Problem

router = APIRouter(prefix="/job", tags=["Jobs"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No, unknown or expired ICAT session"},
    404: {"model": Problem, "description": "FTS knows no such job"},
    503: {"model": Problem, "description": "FTS unavailable"},
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
