"""POST /archive: the seed's body in, 202 with the request id and FTS job ids out."""

from __future__ import annotations

from fastapi import APIRouter, status

from datastore_gateway import handlers
from datastore_gateway.api.deps import (
    CurrentUser,
    IdempotencyDep,
    IdempotencyKeyHeader,
    OptionalLedgerDep,
    PublisherDep,
    SettingsDep,
    VocabularyDep,
    VoDep,
)
from datastore_gateway.schemas import ArchiveAccepted, ArchiveRequest, Problem

router = APIRouter(tags=["Archive"])


@router.post(
    "/archive",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        401: {"model": Problem, "description": "No, unknown or expired ICAT session"},
        403: {"model": Problem, "description": "The user is not one of gateway.archivers"},
        413: {"model": Problem, "description": "Over a limit: files, bytes or body size"},
        422: {
            "description": "The body is not a valid archive request (reason given): a name "
            "that becomes a path component (instrument, facilityCycle, investigation name and "
            "visitId, datasetType, dataset and datafile names) is not a safe name (ASCII "
            "letters, digits and . _ + - only, pattern ^[A-Za-z0-9._+-]+$, not '.' or '..', "
            "no '..' inside), or a facility, investigationType, instrument, facilityCycle, "
            "datasetType or datafileFormat (name, version) is unknown in ICAT for the facility "
            "this Datastore serves (each unknown value named)"
        },
        503: {
            "model": Problem,
            "description": "ICAT could not check the names used, or the broker did not "
            "confirm; nothing accepted",
        },
    },
)
async def archive(
    body: ArchiveRequest,
    user: CurrentUser,
    publisher: PublisherDep,
    settings: SettingsDep,
    vo: VoDep,
    vocabulary: VocabularyDep,
    idempotency: IdempotencyDep,
    ledger: OptionalLedgerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ArchiveAccepted:
    """Archive the datafiles the body names, from the instrument data cache to tape.

    Names are checked first: path components must be safe names, and every facility,
    investigation type, instrument, facility cycle, dataset type and datafile format must
    exist in ICAT (else 422, naming each). Answers once the request is safely on the broker;
    ICAT registration and FTS transfers follow asynchronously under the returned job ids.
    """
    return await handlers.request_archive(
        body,
        user=user,
        publisher=publisher,
        settings=settings,
        vo=vo,
        vocabulary=vocabulary,
        idempotency=idempotency,
        idempotency_key=idempotency_key,
        ledger=ledger,
    )
