"""What the gateway tells users following their data, free of HTTP: their requests as the
ledger follows them, listed and paged; the archival of datasets and investigations as ICAT
records it; investigations and datasets by name, so they can be restored without knowing
ICAT's ids.

Nothing here writes anything or asks FTS: the ledger answers for requests, ICAT (with the
caller's own session, so ICAT decides what they may see: anything else is a 404) for the rest.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from datastore_common.domain.archival import (
    ARCHIVAL_STATE,
    ArchivalRecords,
    CatalogueDatafile,
    CatalogueDataset,
)
from datastore_common.domain.following import (
    ArchivalStatus,
    combined_status,
    dataset_status,
    file_states,
    split_investigation,
    state_of,
)
from datastore_common.domain.ledger import Position, RequestQuery, listed_owner
from datastore_common.errors import InvalidRequestError
from datastore_common.messages import LeftOutFile, NotifyTargets, RequestCompleted
from datastore_common.ports import Selections, UserSession
from datastore_common.settings import DatastoreSettings
from datastore_gateway.ledger import Ledger, RequestRecord
from datastore_gateway.schemas import (
    DatasetFound,
    DatasetsFound,
    DatasetStatus,
    InvestigationFound,
    InvestigationsFound,
    InvestigationStatus,
    LookupPage,
    RequestFailure,
    RequestFilter,
    RequestJob,
    RequestNotification,
    RequestPage,
    RequestStatus,
)

_NOT_A_CURSOR = "cursor: not a cursor of this gateway; pass a page's next_cursor as it is"


def request_status_of(record: RequestRecord) -> RequestStatus:
    """A ledger record as ``GET /requests/{id}`` shows it (and every item of a listing)."""
    return RequestStatus(
        request_id=record.request_id,
        kind=record.kind,
        owner=record.owner,
        source=record.source,
        instrument=record.instrument,
        created=datetime.fromtimestamp(record.created, UTC),
        updated=datetime.fromtimestamp(record.updated, UTC),
        state=record.state,
        jobs=[RequestJob(**dataclasses.asdict(job)) for job in record.jobs],
        datasets=list(record.datasets),
        failure=None
        if record.failure is None
        else RequestFailure(
            failure_class=record.failure.failure_class, reason=record.failure.reason
        ),
        waiting_on=record.waiting_on,
        notify=NotifyTargets.model_validate(record.notify) if record.notify else None,
        notifications=[
            RequestNotification(
                channel=n.channel,
                state=n.state,
                attempts=n.attempts,
                error=n.last_error,
            )
            for n in record.notifications
        ],
        left_out=[LeftOutFile.model_validate(f) for f in record.left_out],
        copies_until=copies_until(record),
    )


def copies_until(record: RequestRecord) -> datetime | None:
    """An ended restore: until when its copies stay, as its ``request.completed`` said."""
    if record.kind != "restore" or not record.notifications:
        return None
    return RequestCompleted.model_validate_json(record.notifications[0].payload).copies_until


async def list_requests(
    filters: RequestFilter, *, user: UserSession, ledger: Ledger, settings: DatastoreSettings
) -> RequestPage:
    """A page of the caller's requests (everyone's for an admin asking for all), newest
    first, with the cursor of the next page."""
    query = RequestQuery(
        owner=listed_owner(user.user_name, settings.gateway.admins, mine=filters.mine),
        kind=filters.kind,
        states=tuple(dict.fromkeys(filters.state)),
        investigation=filters.investigation,
        since=_epoch(filters.since),
        until=_epoch(filters.until),
        limit=filters.limit,
        after=decode_cursor(filters.cursor),
    )
    page = await ledger.page(query)
    return RequestPage(
        items=[request_status_of(record) for record in page.records],
        next_cursor=encode_cursor(page.next),
    )


def _epoch(moment: datetime | None) -> float | None:
    """Seconds since the epoch; a date or time without an offset is UTC."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def encode_cursor(position: Position | None) -> str | None:
    """An opaque cursor for the page after ``position`` (URL-safe, no padding)."""
    if position is None:
        return None
    raw = json.dumps([position.created, position.request_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    """The position a cursor of ours stands for; InvalidRequestError (422) for anything else."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, request_id = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidRequestError(_NOT_A_CURSOR) from exc
    if not isinstance(created, int | float) or isinstance(created, bool):
        raise InvalidRequestError(_NOT_A_CURSOR)
    if not isinstance(request_id, str):
        raise InvalidRequestError(_NOT_A_CURSOR)
    return Position(float(created), request_id)


# -- archival, from ICAT as the user ------------------------------------------------------


def _archival(status: ArchivalStatus) -> dict[str, Any]:
    failure = status.failure
    return {
        "state": status.state,
        "files_total": status.files_total,
        "files_ended": status.files_ended,
        "files_failed": status.files_failed,
        "percentage_complete": status.percentage,
        "complete": status.complete,
        "failure": None
        if failure is None
        else RequestFailure(failure_class=failure[0], reason=failure[1]),
        "waiting_on": status.waiting_on,
    }


def _dataset_statuses(
    records: ArchivalRecords, *, list_files: bool
) -> list[tuple[DatasetStatus, ArchivalStatus]]:
    """Each dataset's status (by id), from its datafiles among ``records``."""
    by_dataset: dict[int, list[CatalogueDatafile]] = {}
    for datafile in records.datafiles:
        by_dataset.setdefault(datafile.dataset_id, []).append(datafile)
    statuses = []
    for dataset in sorted(records.datasets, key=lambda d: d.dataset_id):
        files = by_dataset.get(dataset.dataset_id, [])
        status = dataset_status(files)
        shown = DatasetStatus(
            dataset_id=dataset.dataset_id,
            name=dataset.name,
            investigation_id=dataset.investigation_id,
            file_states=file_states(files) if list_files else None,
            **_archival(status),
        )
        statuses.append((shown, status))
    return statuses


async def dataset_status_of(
    dataset_id: int, *, user: UserSession, selections: Selections, list_files: bool = True
) -> DatasetStatus:
    """The dataset's archival from its datafiles' "Archival" parameters (404 if the caller
    cannot read it); ``list_files=False`` leaves each file's state out."""
    records = await selections.dataset_archival(user.session_id, dataset_id)
    [(shown, _)] = _dataset_statuses(records, list_files=list_files)
    return shown


async def investigation_status_of(
    investigation_id: int, *, user: UserSession, selections: Selections
) -> InvestigationStatus:
    """The investigation's archival over all its datasets, and each dataset's (no files)."""
    investigation, records = await selections.investigation_archival(
        user.session_id, investigation_id
    )
    datasets = _dataset_statuses(records, list_files=False)
    return InvestigationStatus(
        investigation_id=investigation.investigation_id,
        name=investigation.name,
        visit_id=investigation.visit_id,
        datasets=[shown for shown, _ in datasets],
        **_archival(combined_status([status for _, status in datasets])),
    )


async def find_investigations(
    name: str,
    visit_id: str | None,
    page: LookupPage,
    *,
    user: UserSession,
    selections: Selections,
) -> InvestigationsFound:
    """A page of the facility's investigations of this name (and visit id) the caller may
    read, by id."""
    after = decode_lookup_cursor("investigations", page.cursor)
    found = await selections.find_investigations(
        user.session_id, name, visit_id, after=after, limit=page.limit + 1
    )
    shown = found[: page.limit]
    return InvestigationsFound(
        items=[
            InvestigationFound(
                id=investigation.investigation_id,
                name=investigation.name,
                visit_id=investigation.visit_id,
                title=investigation.title,
                state=state_of(investigation.dataset_states),
            )
            for investigation in shown
        ],
        next_cursor=encode_lookup_cursor(
            "investigations", shown[-1].investigation_id if len(found) > page.limit else None
        ),
    )


async def find_datasets(
    investigation: str,
    name: str | None,
    page: LookupPage,
    *,
    user: UserSession,
    selections: Selections,
) -> DatasetsFound:
    """A page of the datasets (of this name) of the facility's investigation named
    ``<name>-<visitId>`` the caller may read, by id."""
    investigation_name, visit_id = split_investigation(investigation)
    after = decode_lookup_cursor("datasets", page.cursor)
    found = await selections.find_datasets(
        user.session_id, investigation_name, visit_id, name, after=after, limit=page.limit + 1
    )
    shown = found[: page.limit]
    return DatasetsFound(
        items=[_dataset_found(dataset, investigation_name, visit_id) for dataset in shown],
        next_cursor=encode_lookup_cursor(
            "datasets", shown[-1].dataset_id if len(found) > page.limit else None
        ),
    )


def encode_lookup_cursor(what: str, last_id: int | None) -> str | None:
    """An opaque cursor for the page of ``what`` after the one ending at ``last_id``."""
    if last_id is None:
        return None
    raw = json.dumps([what, last_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_lookup_cursor(what: str, cursor: str | None) -> int | None:
    """The id a cursor of ``what`` of ours follows; InvalidRequestError (422) for anything
    else (another route's cursor included)."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, last_id = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidRequestError(_NOT_A_CURSOR) from exc
    if kind != what or not isinstance(last_id, int) or isinstance(last_id, bool):
        raise InvalidRequestError(_NOT_A_CURSOR)
    return last_id


def _dataset_found(dataset: CatalogueDataset, investigation: str, visit_id: str) -> DatasetFound:
    return DatasetFound(
        id=dataset.dataset_id,
        name=dataset.name,
        investigation_id=dataset.investigation_id,
        investigation=investigation,
        visit_id=visit_id,
        state=dataset.archival.get(ARCHIVAL_STATE),
    )
