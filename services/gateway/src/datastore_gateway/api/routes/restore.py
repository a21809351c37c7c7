"""POST /restore: ICAT ids in (the seed's body), 202 with the request id and FTS job ids out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from datastore_gateway import handlers
from datastore_gateway.api.deps import (
    CurrentUser,
    IdempotencyDep,
    IdempotencyKeyHeader,
    LedgerDep,
    OptionalLedgerDep,
    PublisherDep,
    SelectionsDep,
    SettingsDep,
    UserCacheDep,
    VoDep,
)
from datastore_gateway.schemas import (
    Problem,
    RestoreAccepted,
    RestorePreview,
    RestoreQueue,
    RestoreRequest,
)

router = APIRouter(tags=["Restore"])


@router.post(
    "/restore",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RestoreAccepted | RestorePreview,
    responses={
        200: {
            "model": RestorePreview,
            "description": "dry_run=true (or get_size=true): what it would do; nothing submitted",
        },
        428: {
            "model": Problem,
            "description": "Above restore.confirm_above_bytes without confirm=true (its size)",
        },
        401: {"model": Problem, "description": "No, unknown or expired ICAT session"},
        404: {"model": Problem, "description": "Ids ICAT does not let this user read (named)"},
        409: {
            "model": Problem,
            "description": 'Datafiles not (yet) FINISHED on tape (named): their "Archival '
            "state\" is not FINISHED, or was not written by Datastore's own ICAT account "
            "(with partial=true: only when none is)",
        },
        413: {
            "model": Problem,
            "description": "Over a limit: ids, files, bytes or body size; or it alone recalls "
            "more than a cap of restore.* allows (it could never start: split it)",
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
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
    partial: Annotated[
        bool,
        Query(
            description="Restore the archived part of the selection: datafiles not (yet) "
            "FINISHED on tape are left out and listed in left_out with why, instead of a 409."
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        Query(
            description="Say what it would do (files, bytes, already online, from tape, "
            "would it queue), 200; nothing is submitted."
        ),
    ] = False,
    get_size: Annotated[
        bool, Query(description="The original API's name for dry_run=true.")
    ] = False,
    confirm: Annotated[
        bool,
        Query(description="Needed above restore.confirm_above_bytes (428 without)."),
    ] = False,
) -> RestoreAccepted | RestorePreview:
    """Restore archived datafiles from tape to the user data cache (same relative paths).

    The ids are resolved in ICAT with the caller's own session, so ICAT decides what they may
    restore; every datafile named directly or through its dataset or investigation must be
    FINISHED on tape (a state Datastore wrote), and is restored only from the place its
    investigation, dataset and name give (its location in ICAT must be that one). FTS stages
    then copies them under the returned job ids (follow them with ``GET /job/{job_id}``).
    Files whose copy on the user data cache already has the catalogue's size and adler32 are
    not recalled (``already_online``; all of them: no job, FINISHED at once); a different
    file there is replaced; a file another restore is recalling to the same place is
    followed, not recalled twice (``already_in_flight``). Past a cap of ``restore.*`` (your
    files or bytes being recalled, or the facility's bytes being staged) the answer is still
    202, ``state`` QUEUED with its place: it starts by itself as capacity frees up. A
    restore changes nothing in ICAT.
    """
    if dry_run or get_size:
        response.status_code = status.HTTP_200_OK
        return await handlers.preview_restore(
            body,
            user=user,
            selections=selections,
            user_cache=user_cache,
            settings=settings,
            ledger=ledger,
            partial=partial,
        )
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
        confirm=confirm,
    )


@router.get(
    "/restore-queue",
    responses={
        401: {"model": Problem, "description": "No, unknown or expired ICAT session"},
        503: {"model": Problem, "description": "The ledger's database is unavailable"},
    },
)
async def restore_queue(
    user: CurrentUser, ledger: LedgerDep, settings: SettingsDep
) -> RestoreQueue:
    """Restores waiting their turn (QUEUED, with position and why) and those starting, in
    the order they are served: priority (restore.user_priorities), then arrival.
    gateway.admins see everyone's; anyone else sees their own."""
    return await handlers.restore_queue(user=user, ledger=ledger, settings=settings)
