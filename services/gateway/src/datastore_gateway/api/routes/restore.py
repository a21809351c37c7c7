"""POST /restore: ICAT ids in (the seed's body), 202 with the request id and FTS job ids out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from datastore_gateway import handlers
from datastore_gateway.api.deps import (
    CurrentUser,
    IdempotencyDep,
    IdempotencyKeyHeader,
    OptionalLedgerDep,
    PublisherDep,
    SelectionsDep,
    SettingsDep,
    UserCacheDep,
    VoDep,
)
from datastore_gateway.schemas import Problem, RestoreAccepted, RestoreRequest

router = APIRouter(tags=["Restore"])


@router.post(
    "/restore",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        401: {"model": Problem, "description": "No, unknown or expired ICAT session"},
        404: {"model": Problem, "description": "Ids ICAT does not let this user read (named)"},
        409: {
            "model": Problem,
            "description": 'Datafiles not (yet) FINISHED on tape (named): their "Archival '
            "state\" is not FINISHED, or was not written by Datastore's own ICAT account "
            "(with partial=true: only when none is)",
        },
        413: {"model": Problem, "description": "Over a limit: ids, files, bytes or body size"},
        429: {
            "model": Problem,
            "description": "It would take you past your share of files or bytes being "
            "recalled at once (restore.max_user_*_in_flight; why, and Retry-After)",
        },
        422: {
            "description": "The body is not a valid restore request (reason given), or a "
            "selected datafile's location in ICAT is not the one Datastore archived it at: "
            "unsafe (absolute, '..', control characters, ...) or not where its investigation, "
            "dataset and name put it (each named, with why)"
        },
        503: {
            "model": Problem,
            "description": "ICAT, the user data cache or the broker unavailable; nothing accepted",
        },
    },
)
async def restore(
    body: RestoreRequest,
    user: CurrentUser,
    selections: SelectionsDep,
    user_cache: UserCacheDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    vo: VoDep,
    idempotency: IdempotencyDep,
    ledger: OptionalLedgerDep,
    idempotency_key: IdempotencyKeyHeader = None,
    partial: Annotated[
        bool,
        Query(
            description="Restore the archived part of the selection: datafiles not (yet) "
            "FINISHED on tape are left out and listed in left_out with why, instead of a 409."
        ),
    ] = False,
) -> RestoreAccepted:
    """Restore archived datafiles from tape to the user data cache (same relative paths).

    The ids are resolved in ICAT with the caller's own session, so ICAT decides what they may
    restore; every datafile named directly or through its dataset or investigation must be
    FINISHED on tape (a state Datastore wrote), and is restored only from the place its
    investigation, dataset and name give (its location in ICAT must be that one). FTS stages
    then copies them under the returned job ids (follow them with ``GET /job/{job_id}``).
    Files whose copy on the user data cache already has the catalogue's size and adler32 are
    not recalled (``already_online``; all of them: no job, FINISHED at once); a different
    file there is replaced. A restore changes nothing in ICAT.
    """
    return await handlers.request_restore(
        body,
        user=user,
        selections=selections,
        user_cache=user_cache,
        publisher=publisher,
        settings=settings,
        vo=vo,
        idempotency=idempotency,
        idempotency_key=idempotency_key,
        ledger=ledger,
        partial=partial,
    )
