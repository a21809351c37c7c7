"""GET /requests/{request_id}: an accepted request as the ledger follows it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from datastore_gateway import handlers
from datastore_gateway.api.deps import CurrentUser, LedgerDep, SettingsDep
from datastore_gateway.schemas import Problem, RequestStatus

router = APIRouter(prefix="/requests", tags=["Requests"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No, unknown or expired ICAT session"},
    404: {"model": Problem, "description": "No such request of yours (or it was forgotten)"},
    503: {"model": Problem, "description": "The ledger's database is unavailable"},
}


@router.get("/{request_id}", responses=RESPONSES)
async def request_status(
    request_id: str, user: CurrentUser, ledger: LedgerDep, settings: SettingsDep
) -> RequestStatus:
    """State, jobs, datasets, failure and what it waits for; the owner's and admins' only.

    Kept for `gateway.ledger_retention_days` after it ends, also once FTS forgot its jobs.
    """
    return await handlers.request_status(request_id, user=user, ledger=ledger, settings=settings)
