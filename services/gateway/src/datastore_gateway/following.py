"""What the gateway tells users following their data, free of HTTP: their requests as the
ledger follows them, listed and paged.

Nothing here writes anything or asks FTS: the ledger answers for requests.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from datetime import UTC, datetime

from datastore_common.domain.ledger import Position, RequestQuery, listed_owner
from datastore_common.errors import InvalidRequestError
from datastore_common.ports import UserSession
from datastore_common.settings import DatastoreSettings
from datastore_gateway.ledger import Ledger, RequestRecord
from datastore_gateway.schemas import (
    RequestFailure,
    RequestFilter,
    RequestJob,
    RequestPage,
    RequestStatus,
)


def request_status_of(record: RequestRecord) -> RequestStatus:
    """A ledger record as ``GET /requests/{id}`` shows it (and every item of a listing)."""
    return RequestStatus(
        request_id=record.request_id,
        kind=record.kind,
        owner=record.owner,
        source=record.source,
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
    )


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


_NOT_A_CURSOR = "cursor: not a cursor of this gateway; pass a page's next_cursor as it is"
