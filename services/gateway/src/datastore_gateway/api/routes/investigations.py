"""GET /investigations (by name) and /investigations/{investigation_id}/status|complete|
percentage: investigations and the archival of their datasets as ICAT records them, read
with the caller's own session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from datastore_gateway import following
from datastore_gateway.api.deps import CurrentUser, LookupPageDep, SelectionsDep
from datastore_gateway.api.problems import UNAUTHENTICATED, Responses, invalid, problem
from datastore_gateway.schemas import (
    InvestigationComplete,
    InvestigationPercentage,
    InvestigationsFound,
    InvestigationStatus,
)

router = APIRouter(prefix="/investigations", tags=["Investigations"])

ICAT_UNAVAILABLE = problem(
    "ICAT unavailable",
    "icat investigation_archival: <urlopen error [Errno 111] Connection refused>",
)
RESPONSES: Responses = {
    401: UNAUTHENTICATED,
    404: problem(
        "No such investigation, or not one ICAT lets you read",
        "not found, or not readable with your ICAT session: Investigation 7",
    ),
    422: invalid(
        "The investigation id is not a number",
        (
            "path.investigation_id",
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
    ),
    503: ICAT_UNAVAILABLE,
}
FIND_RESPONSES: Responses = {
    401: UNAUTHENTICATED,
    422: invalid(
        "No name given, a limit outside 1-500, a cursor that is not a page's next_cursor",
        ("query.name", "missing", "Field required"),
        ("query.limit", "less_than_equal", "Input should be less than or equal to 500"),
        details=("cursor: not a cursor of this gateway; pass a page's next_cursor as it is",),
    ),
    503: ICAT_UNAVAILABLE,
}


@router.get("", responses=FIND_RESPONSES)
async def find_investigations(
    name: Annotated[
        str,
        Query(
            min_length=1,
            max_length=255,
            description="The investigation's name.",
            examples=["ABC123"],
        ),
    ],
    page: LookupPageDep,
    user: CurrentUser,
    selections: SelectionsDep,
    visit_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            description="Its visit id; any when not given.",
            examples=["1"],
        ),
    ] = None,
) -> InvestigationsFound:
    """The investigations of the facility (`icat.facility`) of this name (and visit id) that
    ICAT lets you read, by id, with their datasets' 'Archival state' aggregated (only states
    Datastore wrote count): restore one by its `id` without looking it up in ICAT. None is
    an empty page.

    At most `limit` (50, up to 500) per page: pass `next_cursor` back as `cursor` for the
    next one."""
    return await following.find_investigations(
        name, visit_id, page, user=user, selections=selections
    )


@router.get("/{investigation_id}/status", responses=RESPONSES)
async def investigation_status(
    investigation_id: int, user: CurrentUser, selections: SelectionsDep
) -> InvestigationStatus:
    """The investigation's archival over all its datasets' datafiles (state aggregated over
    its datasets'), and each dataset's as `GET /datasets/{id}/status?list_files=false` shows
    it. Read with your ICAT session (an investigation it does not let you read is a 404);
    FTS is not asked."""
    return await following.investigation_status_of(
        investigation_id, user=user, selections=selections
    )


@router.get("/{investigation_id}/complete", responses=RESPONSES)
async def investigation_complete(
    investigation_id: int, user: CurrentUser, selections: SelectionsDep
) -> InvestigationComplete:
    """Whether every datafile of every dataset has ended its archival."""
    status = await following.investigation_status_of(
        investigation_id, user=user, selections=selections
    )
    return InvestigationComplete(investigation_id=investigation_id, complete=status.complete)


@router.get("/{investigation_id}/percentage", responses=RESPONSES)
async def investigation_percentage(
    investigation_id: int, user: CurrentUser, selections: SelectionsDep
) -> InvestigationPercentage:
    """Datafiles whose archival ended (failures included) / all its datafiles x 100; 100 for
    an investigation without datafiles."""
    status = await following.investigation_status_of(
        investigation_id, user=user, selections=selections
    )
    return InvestigationPercentage(
        investigation_id=investigation_id, percentage_complete=status.percentage_complete
    )
