"""GET /job/{job_id}[/status|/percentage]: an FTS job (archive or restore) as FTS sees it now,
to the owner of its request and to ``gateway.admins`` only (others: 404)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from datastore_gateway import handlers
from datastore_gateway.api.deps import CurrentUser, LedgerDep, SettingsDep, TransfersDep
from datastore_gateway.schemas import JobPercentage, JobState, JobStatus, Problem

router = APIRouter(prefix="/job", tags=["Jobs"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No, unknown or expired ICAT session"},
    404: {
        "model": Problem,
        "description": "No such job of yours: not a job of a request you made (admins: "
        "gateway.admins see every job), or FTS knows no such job",
    },
    503: {"model": Problem, "description": "FTS or the request ledger unavailable"},
}


@router.get("/{job_id}", responses=RESPONSES)
async def job(
    job_id: str,
    user: CurrentUser,
    transfers: TransfersDep,
    ledger: LedgerDep,
    settings: SettingsDep,
) -> JobStatus:
    """The job's state, percentage and every file's state."""
    progress = await handlers.job_progress(
        job_id, transfers, user=user, ledger=ledger, settings=settings
    )
    return handlers.job_status(progress)


@router.get("/{job_id}/status", responses=RESPONSES)
async def job_status(
    job_id: str,
    user: CurrentUser,
    transfers: TransfersDep,
    ledger: LedgerDep,
    settings: SettingsDep,
) -> JobState:
    """The job's FTS state (STAGING, SUBMITTED, ACTIVE, FINISHED, ...) and whether it is final."""
    progress = await handlers.job_progress(
        job_id, transfers, user=user, ledger=ledger, settings=settings
    )
    return handlers.job_state(progress)


@router.get("/{job_id}/percentage", responses=RESPONSES)
async def job_percentage(
    job_id: str,
    user: CurrentUser,
    transfers: TransfersDep,
    ledger: LedgerDep,
    settings: SettingsDep,
) -> JobPercentage:
    """Finished files / all files x 100."""
    progress = await handlers.job_progress(
        job_id, transfers, user=user, ledger=ledger, settings=settings
    )
    return handlers.job_percentage(progress)
