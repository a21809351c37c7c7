"""GET /datasets (by name) and /datasets/{dataset_id}/status|complete|percentage: datasets
and their archival as ICAT records them, read with the caller's own session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from datastore_gateway import control, following
from datastore_gateway.api.deps import (
    CurrentUser,
    IdempotencyDep,
    IdempotencyKeyHeader,
    LedgerDep,
    LookupPageDep,
    OptionalLedgerDep,
    PublisherDep,
    SelectionsDep,
    SettingsDep,
    VoDep,
)
from datastore_gateway.api.problems import UNAUTHENTICATED, Responses, invalid, problem
from datastore_gateway.schemas import (
    DatasetComplete,
    DatasetPercentage,
    DatasetsFound,
    DatasetStateSet,
    DatasetStateSetAccepted,
    DatasetStatus,
    RetryAccepted,
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
        "The investigation is not given as <name>-<visitId>, a limit outside 1-500, a cursor "
        "that is not a page's next_cursor",
        ("query.investigation", "missing", "Field required"),
        ("query.limit", "less_than_equal", "Input should be less than or equal to 500"),
        details=(
            "investigation 'ABC123': give it as <name>-<visitId>, e.g. ABC123-1",
            "cursor: not a cursor of this gateway; pass a page's next_cursor as it is",
        ),
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
    page: LookupPageDep,
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
) -> DatasetsFound:
    """The datasets of an investigation of the facility (`icat.facility`), of this name when
    given, that ICAT lets you read, by id, with their 'Archival state' (only as Datastore
    wrote it: one written by anyone else counts as none): restore one by its `id` without
    looking it up in ICAT. None is an empty page.

    At most `limit` (50, up to 500) per page: pass `next_cursor` back as `cursor` for the
    next one."""
    return await following.find_datasets(
        investigation, name, page, user=user, selections=selections
    )


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
    Only what Datastore wrote counts (ICAT's modId is the functional account): a state
    written by anyone else is shown as none (null), and the file as not ended.
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


RETRY_RESPONSES: Responses = {
    **RESPONSES,
    403: problem(
        "Not an archiver (gateway.archivers)",
        "user 'db/alice' may not archive: not one of gateway.archivers",
    ),
    409: problem(
        "Nothing to retry: the dataset's archive is in flight, FINISHED, or was never made",
        "retry refused: dataset 42 is ACTIVE: its archive is still in flight; cancel it or "
        "wait for it to end",
        "retry refused: dataset 42 is FINISHED: every file is on tape",
    ),
    422: invalid(
        "A parameter or header is not valid, or a datafile to retry has no safe location",
        ("path.dataset_id", "int_parsing", "Input should be a valid integer"),
        details=("cannot retry: datafile 7: it is empty",),
    ),
    503: problem(
        "ICAT or the broker unavailable: nothing accepted",
        "icat dataset_archival: <urlopen error [Errno 111] Connection refused>",
        "the broker did not confirm within 10 s",
    ),
}


@router.post("/{dataset_id}/retry", status_code=202, responses=RETRY_RESPONSES)
async def retry_dataset(
    dataset_id: int,
    user: CurrentUser,
    selections: SelectionsDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    vo: VoDep,
    idempotency: IdempotencyDep,
    ledger: OptionalLedgerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> RetryAccepted:
    """Archive again the datafiles FAILED or CANCELED of a dataset whose archive ended
    (FAILED, CANCELED, FINISHEDDIRTY); files already on tape stay. Archivers only; the dataset
    is read with your ICAT session (404 if it does not let you). 409 with why while the
    dataset is in flight or once FINISHED. The retry is a request of its own: follow
    `request_id` with `GET /requests/{request_id}`; the files travel under new FTS jobs
    (`job_ids`), recorded in the dataset's "Archival ids"."""
    return await control.retry_dataset(
        dataset_id,
        user=user,
        selections=selections,
        publisher=publisher,
        settings=settings,
        vo=vo,
        ledger=ledger,
        idempotency=idempotency,
        idempotency_key=idempotency_key,
    )


SET_RESPONSES: Responses = {
    401: UNAUTHENTICATED,
    404: problem(
        "Not an admin (gateway.admins), or no such dataset ICAT lets you read",
        "no dataset 42 whose state you may set",
        "not found, or not readable with your ICAT session: Dataset 42",
    ),
    422: invalid(
        "The body is not valid: a state that cannot be set by hand, no reason",
        (
            "body.state",
            "literal_error",
            "Input should be 'FINISHED', 'FINISHEDDIRTY', 'FAILED' or 'CANCELED'",
        ),
        ("body.reason", "missing", "Field required"),
    ),
    503: problem(
        "ICAT, the broker or the ledger unavailable: nothing changed in ICAT",
        "icat dataset_archival: <urlopen error [Errno 111] Connection refused>",
        "the broker did not confirm within 10 s",
    ),
}


@router.put("/{dataset_id}/status", status_code=202, responses=SET_RESPONSES)
async def set_dataset_status(
    dataset_id: int,
    body: DatasetStateSet,
    user: CurrentUser,
    selections: SelectionsDep,
    publisher: PublisherDep,
    ledger: LedgerDep,
    settings: SettingsDep,
) -> DatasetStateSetAccepted:
    """gateway.admins only (anyone else: 404): set the dataset's 'Archival state' by hand
    (and every datafile's, unless `datafiles` is false), optionally with a 'Deletion date'.
    Who, when, old -> new and the reason are kept in the audit trail (the ledger's database
    and the log); the icat-writer writes ICAT in a moment (`GET /datasets/{id}/status` shows
    it). A state with failures records "set <state> by hand by <admin>: <reason>" as the
    'Archival failure'."""
    return await control.set_dataset_state(
        dataset_id,
        body,
        user=user,
        selections=selections,
        publisher=publisher,
        ledger=ledger,
        settings=settings,
    )


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
