"""GET /requests and /requests/{request_id}: accepted requests as the ledger follows them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from datastore_gateway import control, following, handlers
from datastore_gateway.api.deps import CurrentUser, LedgerDep, SettingsDep, TransfersDep
from datastore_gateway.api.problems import UNAUTHENTICATED, Responses, invalid, problem
from datastore_gateway.schemas import (
    CancelAccepted,
    Problem,
    RequestFilter,
    RequestPage,
    RequestStatus,
)

router = APIRouter(prefix="/requests", tags=["Requests"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No, unknown or expired ICAT session"},
    404: {"model": Problem, "description": "No such request of yours (or it was forgotten)"},
    503: {"model": Problem, "description": "The ledger's database is unavailable"},
}
LIST_RESPONSES: Responses = {
    401: UNAUTHENTICATED,
    422: invalid(
        "A filter is not valid (reason given): an unknown kind or state, a limit outside "
        "1-500, a date that is not ISO 8601, a cursor that is not a page's next_cursor",
        ("query.limit", "less_than_equal", "Input should be less than or equal to 500"),
        (
            "query.state.0",
            "literal_error",
            "Input should be 'QUEUED', 'SUBMITTED', 'STAGING', 'READY', 'ACTIVE', 'ARCHIVING', "
            "'FINISHED', 'FINISHEDDIRTY', 'FAILED', 'CANCELED' or 'UNKNOWN'",
        ),
        (
            "query.since",
            "datetime_from_date_parsing",
            "Input should be a valid datetime or date, input is too short",
        ),
        details=("cursor: not a cursor of this gateway; pass a page's next_cursor as it is",),
    ),
    503: problem(
        "The ledger's database is unavailable",
        'request ledger (list): connection to server at "127.0.0.1", port 5432 failed',
    ),
}


@router.get("", responses=LIST_RESPONSES)
async def list_requests(
    filters: Annotated[RequestFilter, Query()],
    user: CurrentUser,
    ledger: LedgerDep,
    settings: SettingsDep,
) -> RequestPage:
    """Your requests, newest first (by acceptance), each as `GET /requests/{request_id}` shows
    it; `mine=false` lists everyone's for gateway.admins, and only your own for anyone else.

    Filters: `kind`, `state` (repeatable), `investigation` (name), `since` (inclusive) and
    `until` (exclusive) on the time of acceptance. At most `limit` (50, up to 500) per page:
    pass `next_cursor` back as `cursor` for the next one. Kept
    `gateway.ledger_retention_days` after they end.
    """
    return await following.list_requests(filters, user=user, ledger=ledger, settings=settings)


@router.get("/{request_id}", responses=RESPONSES)
async def request_status(
    request_id: str, user: CurrentUser, ledger: LedgerDep, settings: SettingsDep
) -> RequestStatus:
    """State, jobs, datasets, failure and what it waits for; the owner's and admins' only.

    Kept for `gateway.ledger_retention_days` after it ends, also once FTS forgot its jobs.
    """
    return await handlers.request_status(request_id, user=user, ledger=ledger, settings=settings)


#: ``?force=true``: an admin cancels an archive (anyone else's force is ignored).
ForceQuery = Annotated[
    bool,
    Query(
        description="gateway.admins only: cancel an archive too (ICAT then records its files "
        "CANCELED); ignored for anyone else"
    ),
]

CANCEL_RESPONSES: Responses = {
    401: UNAUTHENTICATED,
    404: problem(
        "No such request of yours (owner and gateway.admins only), or it was forgotten",
        "no request 0b7c3f8e-2f4a-4c55-9d43-0e4bba1f7d10 of yours in the ledger",
    ),
    409: problem(
        "Not cancelled: it has ended, or it is an archive (admins: force=true)",
        "request 0b7c3f8e-2f4a-4c55-9d43-0e4bba1f7d10: the request has ended FINISHED: "
        "nothing to cancel",
        "request 0b7c3f8e-2f4a-4c55-9d43-0e4bba1f7d10: an archive request cannot be cancelled: "
        "its files may already be on tape and ICAT records them; only an admin may force it",
    ),
    503: problem("FTS or the ledger's database unavailable", "request ledger (read): ..."),
}


@router.delete("/{request_id}", status_code=202, responses=CANCEL_RESPONSES)
async def cancel_request(
    request_id: str,
    user: CurrentUser,
    ledger: LedgerDep,
    transfers: TransfersDep,
    settings: SettingsDep,
    force: ForceQuery = False,
) -> CancelAccepted:
    """Cancel a restore in flight: FTS cancels its jobs (files not yet done end CANCELED,
    partial copies are removed) and the request ends CANCELED as the status-poller reports it.
    An archive is refused (409) unless an admin passes `force=true`; an ended request is a 409
    with its state; cancelling twice is harmless. The owner's and admins' only (others: 404).
    """
    return await control.cancel_request(
        request_id, force=force, user=user, ledger=ledger, transfers=transfers, settings=settings
    )
