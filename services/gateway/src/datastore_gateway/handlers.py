"""What the gateway does for a request, free of HTTP: plain async functions with their deps.

Routes turn HTTP into arguments and errors into status codes (``main.py``); everything a
request *means* happens here. No ICAT or FTS call happens on the archive path: the user's
session was checked (and cached) before we get here, and the VO was read at start-up.
"""

from __future__ import annotations

import asyncio
import uuid

from datastore_common.domain.plan import plan_archive
from datastore_common.errors import (
    DatastoreError,
    ForbiddenError,
    PeerTimeoutError,
    PeerUnavailableError,
    PermanentError,
)
from datastore_common.logging import get_logger
from datastore_common.messages import ArchiveRequested
from datastore_common.ports import Publisher, UserSession
from datastore_common.settings import DatastoreSettings
from datastore_gateway.idempotency import IdempotencyStore, fingerprint_of, run_once, scope_key
from datastore_gateway.metrics import ARCHIVE_REQUESTS, ARCHIVED_DATAFILES
from datastore_gateway.schemas import ArchiveAccepted, ArchiveRequest

log = get_logger(__name__)

#: The broker must confirm within this time, or the client hears 503 (never a 202 unconfirmed).
PUBLISH_TIMEOUT_SECONDS = 10.0


class RequestTooLargeError(PermanentError):
    """The request is over one of the configured gateway limits."""


def check_may_archive(user: UserSession, settings: DatastoreSettings) -> None:
    if user.user_name not in settings.gateway.archivers:
        raise ForbiddenError(
            f"user {user.user_name!r} may not archive: not one of gateway.archivers"
        )


def check_limits(body: ArchiveRequest, settings: DatastoreSettings) -> None:
    limits = settings.gateway
    if body.datafile_count > limits.max_datafiles_per_request:
        raise RequestTooLargeError(
            f"{body.datafile_count} datafiles in one request; the limit is "
            f"{limits.max_datafiles_per_request} (gateway.max_datafiles_per_request)"
        )
    if body.total_bytes > limits.max_bytes_per_request:
        raise RequestTooLargeError(
            f"{body.total_bytes} bytes of datafiles in one request; the limit is "
            f"{limits.max_bytes_per_request} (gateway.max_bytes_per_request)"
        )


async def request_archive(
    body: ArchiveRequest,
    *,
    user: UserSession,
    publisher: Publisher,
    settings: DatastoreSettings,
    vo: str,
    idempotency: IdempotencyStore | None,
    idempotency_key: str | None = None,
) -> ArchiveAccepted:
    """Plan the request's FTS jobs, publish ``archive.requested`` (confirmed), answer the plan.

    The same request again (same ``idempotency_key``, or the same body from the same user
    within ``gateway.idempotency_window_seconds``) gets the first answer and publishes nothing.
    """
    check_may_archive(user, settings)
    check_limits(body, settings)

    async def archive() -> str:
        request_id = str(uuid.uuid4())
        jobs = plan_archive(
            request_id,
            body.investigations,
            instrument_data_cache=settings.instrument_data_cache,
            tape_archive=settings.tape_archive,
            tape_root_dir=settings.tape_root_dir,
            vo=vo,
            max_files_per_job=settings.fts3.max_files_per_job,
        )
        message = ArchiveRequested(
            request_id=request_id, investigations=body.investigations, jobs=jobs
        )
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await publisher.publish(message, correlation_id=request_id, user=user.user_name)
        except TimeoutError as exc:
            raise PeerTimeoutError(
                f"the broker did not confirm within {PUBLISH_TIMEOUT_SECONDS:g} s"
            ) from exc
        except DatastoreError:
            raise
        except Exception as exc:
            # Whatever went wrong, the broker has not confirmed: the request is not accepted,
            # and the client may retry (503), never a 202 without a confirm.
            raise PeerUnavailableError(f"publish to the broker failed: {exc!r}") from exc
        accepted = ArchiveAccepted(request_id=request_id, job_ids=[job.job_id for job in jobs])
        ARCHIVED_DATAFILES.inc(body.datafile_count)
        log.info(
            "archive_requested",
            correlation_id=request_id,
            user=user.user_name,
            datafiles=body.datafile_count,
            jobs=len(jobs),
        )
        return accepted.model_dump_json()

    fingerprint = fingerprint_of(body.model_dump_json().encode())
    answer, replayed = await run_once(
        idempotency,
        scope_key(user.user_name, idempotency_key=idempotency_key, fingerprint=fingerprint),
        fingerprint,
        archive,
        window=settings.gateway.idempotency_window_seconds,
    )
    accepted = ArchiveAccepted.model_validate_json(answer)
    if replayed:
        log.info("archive_replayed", correlation_id=accepted.request_id, user=user.user_name)
    ARCHIVE_REQUESTS.labels(outcome="replayed" if replayed else "accepted").inc()
    return accepted
