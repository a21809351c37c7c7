"""POST /archive: the seed's body in, 202 with the request id and FTS job ids out."""

from __future__ import annotations

from fastapi import APIRouter, status

from datastore_gateway import handlers
from datastore_gateway.api.deps import (
    CurrentUser,
    IdempotencyDep,
    IdempotencyKeyHeader,
    PublisherDep,
    SettingsDep,
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
        422: {"description": "The body is not a valid archive request (reason given)"},
        503: {"model": Problem, "description": "The broker did not confirm; nothing accepted"},
    },
)
async def archive(
    body: ArchiveRequest,
    user: CurrentUser,
    publisher: PublisherDep,
    settings: SettingsDep,
    vo: VoDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ArchiveAccepted:
    """Archive the datafiles the body names, from the instrument data cache to tape.

    Answers once the request is safely on the broker; ICAT registration and FTS transfers
    follow asynchronously under the returned job ids.
    """
    return await handlers.request_archive(
        body,
        user=user,
        publisher=publisher,
        settings=settings,
        vo=vo,
        idempotency=idempotency,
        idempotency_key=idempotency_key,
    )
