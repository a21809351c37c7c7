"""GET /datasets (by name) and /datasets/{dataset_id}/status|complete|percentage: datasets
and their archival as ICAT records them, read with the caller's own session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from datastore_gateway import following
from datastore_gateway.api.deps import CurrentUser, SelectionsDep
from datastore_gateway.api.problems import UNAUTHENTICATED, Responses, invalid, problem
from datastore_gateway.schemas import (
    DatasetComplete,
    DatasetFound,
    DatasetPercentage,
    DatasetStatus,
)

router = APIRouter(prefix="/datasets", tags=["Datasets"])

ICAT_UNAVAILABLE = problem(
    "ICAT unavailable",
    "icat dataset_archival: <urlopen error [Errno 111] Connection refused>",
)
RESPONSES: Responses = {
    401: UNAUTHENTICATED,
    404: problem(
        "No such dataset, or not one ICAT lets you read",
        "not found, or not readable with your ICAT session: Dataset 42",
    ),
    422: invalid(
        "The dataset id is not a number",
        (
            "path.dataset_id",
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
    ),
    503: ICAT_UNAVAILABLE,
}
FIND_RESPONSES: Responses = {
    401: UNAUTHENTICATED,
    422: invalid(
        "The investigation is not given as <name>-<visitId>",
        ("query.investigation", "missing", "Field required"),
        details=("investigation 'ABC123': give it as <name>-<visitId>, e.g. ABC123-1",),
    ),
    503: ICAT_UNAVAILABLE,
}


@router.get("", responses=FIND_RESPONSES)
async def find_datasets(
    investigation: Annotated[
        str,
        Query(
            min_length=3,
            max_length=512,
            description="The investigation as `<name>-<visitId>` (its folder's name), split at "
            "the last '-'.",
            examples=["ABC123-1"],
        ),
    ],
    user: CurrentUser,
    selections: SelectionsDep,
    name: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            description="The dataset's name; all when not given.",
            examples=["scan_0000"],
        ),
    ] = None,
) -> list[DatasetFound]:
    """The datasets of an investigation (of this name) that ICAT lets you read, by id, with
    their 'Archival state': restore one by its `id` without looking it up in ICAT. None is an
    empty list."""
    return await following.find_datasets(investigation, name, user=user, selections=selections)


@router.get("/{dataset_id}/status", responses=RESPONSES)
async def dataset_status(
    dataset_id: int,
    user: CurrentUser,
    selections: SelectionsDep,
    list_files: Annotated[
        bool, Query(description="false: the summary only, without each file's state.")
    ] = True,
) -> DatasetStatus:
    """The dataset's archival from its datafiles' 'Archival state' and 'Archival failure' in
    ICAT: its state, each file's state by location, why files failed, what it waits for.
    Read with your ICAT session (a dataset it does not let you read is a 404); FTS is not
    asked."""
    return await following.dataset_status_of(
        dataset_id, user=user, selections=selections, list_files=list_files
    )


@router.get("/{dataset_id}/complete", responses=RESPONSES)
async def dataset_complete(
    dataset_id: int, user: CurrentUser, selections: SelectionsDep
) -> DatasetComplete:
    """Whether every datafile's archival has ended (FINISHED, FAILED or CANCELED)."""
    status = await following.dataset_status_of(
        dataset_id, user=user, selections=selections, list_files=False
    )
    return DatasetComplete(dataset_id=dataset_id, complete=status.complete)


@router.get("/{dataset_id}/percentage", responses=RESPONSES)
async def dataset_percentage(
    dataset_id: int, user: CurrentUser, selections: SelectionsDep
) -> DatasetPercentage:
    """Datafiles whose archival ended (failures included) / all its datafiles x 100; 100 for
    a dataset without datafiles."""
    status = await following.dataset_status_of(
        dataset_id, user=user, selections=selections, list_files=False
    )
    return DatasetPercentage(dataset_id=dataset_id, percentage_complete=status.percentage_complete)


#: The original Datastore API's paths (``/dataset/{id}/...``, singular): the same answers.
original_router = APIRouter(prefix="/dataset", tags=["Datasets"])
for _suffix, _endpoint in (
    ("status", dataset_status),
    ("complete", dataset_complete),
    ("percentage", dataset_percentage),
):
    original_router.add_api_route(
        f"/{{dataset_id}}/{_suffix}",
        _endpoint,
        methods=["GET"],
        responses=RESPONSES,
        summary=f"Dataset {_suffix} (the original API's path)",
        description=f"The same as `GET /datasets/{{dataset_id}}/{_suffix}`, at the original "
        "Datastore API's path.",
        operation_id=f"original_dataset_{_suffix}",
    )
