"""What an instrument is answered when it publishes ``archive.requested`` on the broker (pure).

The icat-writer answers each request of an instrument account exactly once:
``archive.accepted`` once registered, ``archive.rejected`` (``RejectionClass`` and the reason)
when nothing of it will happen. An answer's envelope id is derived from what it answers
(``answer_id``), so a request published again, or redelivered, is answered by the same message
(receivers de-duplicate by it) and never by a second, different one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Final

from pydantic_core import from_json

from datastore_common.domain.completion import status_url
from datastore_common.domain.senders import RefusedSenderError
from datastore_common.errors import InvalidMessageError, PermanentError
from datastore_common.messages import (
    ArchiveAccepted,
    ArchiveRejected,
    ArchiveRequested,
    InvestigationSpec,
    RejectionClass,
)

#: Names every answer's envelope id (uuid5) and a helper's request ids.
ANSWERS_NAMESPACE: Final = uuid.UUID("5b0f6a52-3a4e-4f0e-9d0c-6c7c9b1e2a11")


def answer_id(answered: str, answer: str) -> uuid.UUID:
    """The envelope id of the answer ``answer`` (accepted, rejected) to ``answered`` (the
    request's id, or the refused message's id): the same whenever it is sent again."""
    return uuid.uuid5(ANSWERS_NAMESPACE, f"{answered}:{answer}")


def instrument_of(broker_user: str | None, instrument_users: Iterable[str]) -> str | None:
    """``broker_user`` when it is an instrument account's (answers go to it), else None."""
    return broker_user if broker_user and broker_user in set(instrument_users) else None


def rejection_of(error: BaseException) -> RejectionClass:
    """How a message refused before any handler ran is classed for its instrument."""
    if isinstance(error, RefusedSenderError):
        return "not_allowed"
    if isinstance(error, InvalidMessageError):
        return "schema"
    return "given_up"


def request_id_in(body: bytes) -> str | None:
    """The ``data.request_id`` a message body names, if it can be read at all (an invalid
    message is answered with the id its sender gave it where there is one)."""
    try:
        raw = from_json(body)
    except ValueError:
        return None
    data = raw.get("data") if isinstance(raw, dict) else None
    request_id = data.get("request_id") if isinstance(data, dict) else None
    return request_id if isinstance(request_id, str) and 0 < len(request_id) <= 200 else None


def rejected(
    *,
    instrument: str,
    request_id: str | None,
    request_message_id: str | None,
    rejection: RejectionClass,
    reason: str,
) -> ArchiveRejected:
    return ArchiveRejected(
        request_id=request_id,
        instrument=instrument,
        request_message_id=request_message_id,
        rejection=rejection,
        reason=reason,
    )


def accepted(
    request: ArchiveRequested,
    *,
    instrument: str,
    owner: str,
    job_ids: Sequence[str],
    public_url: str,
    request_message_id: str | None,
) -> ArchiveAccepted:
    return ArchiveAccepted(
        request_id=request.request_id,
        instrument=instrument,
        request_message_id=request_message_id,
        owner=owner,
        job_ids=list(job_ids),
        status_url=status_url(public_url, request.request_id),
        datasets=[
            {
                "investigation": investigation.name,
                "visit_id": investigation.visitId,
                "dataset": dataset.name,
                "datafiles": len(dataset.datafiles),
            }
            for investigation in request.investigations
            for dataset in investigation.datasets
        ],
        notify=request.notify,
    )


class TooLargeError(PermanentError):
    """More datafiles or bytes in one request than ``gateway.max_*_per_request`` allow."""


def check_size(
    investigations: Sequence[InvestigationSpec], *, max_datafiles: int, max_bytes: int
) -> None:
    """The HTTP path's limits, for a request published on the broker."""
    files = [f for i in investigations for d in i.datasets for f in d.datafiles]
    if len(files) > max_datafiles:
        raise TooLargeError(
            f"{len(files)} datafiles in one request; the limit is {max_datafiles} "
            "(gateway.max_datafiles_per_request)"
        )
    size = sum(f.fileSize or 0 for f in files)
    if size > max_bytes:
        raise TooLargeError(
            f"{size} bytes in one request; the limit is {max_bytes} (gateway.max_bytes_per_request)"
        )


def request_id_for(
    broker_user: str, investigations: Sequence[dict[str, Any]], *, now: float, window: float
) -> str:
    """A request id for a body that came without one: the same for the same body from the
    same instrument within one ``window`` (seconds), so that publishing it again after a
    lost confirm names the same request (and so the same jobs, the same answer)."""
    canonical = json.dumps(investigations, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    bucket = int(now // window) if window > 0 else int(now)
    return str(uuid.uuid5(ANSWERS_NAMESPACE, f"{broker_user}:{bucket}:{digest}"))
