"""fts-submitter: hand planned jobs to FTS and say so on the bus.

``submit_jobs`` is idempotent: every job is submitted under its deterministic ``sid``, so a
redelivered message finds its jobs already at FTS (409, which the adapter reports as success)
and only publishes again. All jobs are submitted before anything is published, so a transient
failure half-way through (the bus retries the whole message) has announced nothing twice.
"""

from __future__ import annotations

from typing import Any

from datastore_common.domain import trust
from datastore_common.errors import PermanentError, TransientError
from datastore_common.logging import get_logger
from datastore_common.messages import (
    ArchiveRegistered,
    Envelope,
    Payload,
    PlannedJob,
    RestoreRequested,
    TransferKind,
    TransferStatus,
    TransferSubmitted,
    job_failed,
)
from datastore_common.ports import Publisher, TransferService
from datastore_common.settings import DatastoreSettings

log = get_logger(__name__)

FAILED = "FAILED"


class JobIdMismatchError(PermanentError):
    """FTS named a job differently from the plan (our VO differs from the planner's)."""


def submitted(request_id: str, job: PlannedJob, fts_endpoint: str) -> TransferSubmitted:
    return TransferSubmitted(
        request_id=request_id,
        kind=job.kind,
        job_id=job.job_id,
        fts_endpoint=fts_endpoint,
        transfers=job.transfers,
    )


def refused(request_id: str, job: PlannedJob, fts_endpoint: str, reason: str) -> TransferStatus:
    """FAILED for the job and each of its files: FTS will never run it."""
    return job_failed(
        request_id=request_id,
        kind=job.kind,
        job_id=job.job_id,
        fts_endpoint=fts_endpoint,
        transfers=job.transfers,
        reason=reason,
    )


def storage_roots(settings: DatastoreSettings) -> trust.StorageRoots:
    """Where this worker's transfers may go, from its settings."""
    return trust.StorageRoots(
        instrument_data_cache=settings.instrument_data_cache,
        tape_archive=settings.tape_archive,
        tape_root_dir=settings.tape_root_dir,
        user_data_cache=settings.user_data_cache,
    )


async def submit_jobs(
    envelope: Envelope[Any],
    *,
    transfers: TransferService,
    publisher: Publisher,
    roots: trust.StorageRoots,
) -> None:
    """Submit every job of an ``ArchiveRegistered`` / ``RestoreRequested``; publish outcomes.

    - accepted (or already there) -> ``TransferSubmitted`` (the status poller follows it);
    - refused for good by FTS (``PermanentError``) -> ``TransferStatus`` FAILED with FTS's
      message, so ICAT shows why; the message is then done (nothing to retry);
    - FTS unreachable or overloaded (``TransientError``) -> raised: the bus retries later;
    - FTS answering with another id than planned -> ``JobIdMismatchError`` (dead-letter): the
      planner and the submitter disagree about the VO, and tracking the wrong id would lie;
    - a transfer from or to anywhere but where its kind goes under ``roots`` (another
      server, ``..``, a query string...) -> ``UntrustedMessageError`` naming the URL, before
      any job is submitted: the broker does not vouch for what is published on it.
    """
    request: ArchiveRegistered | RestoreRequested = envelope.data
    kind: TransferKind = "restore" if isinstance(request, RestoreRequested) else "archive"
    trust.check_transfers(request.jobs, kind=kind, roots=roots)
    outcomes: list[Payload] = []
    for job in request.jobs:
        try:
            job_id = await transfers.submit(job)
        except TransientError:
            raise
        except PermanentError as exc:
            log.error(
                "job_refused",
                request_id=request.request_id,
                job_id=job.job_id,
                sid=job.sid,
                reason=str(exc),
            )
            outcomes.append(refused(request.request_id, job, transfers.endpoint, str(exc)))
            continue
        if job_id != job.job_id:
            raise JobIdMismatchError(
                f"FTS named job {job.sid!r} {job_id}, the plan says {job.job_id}: "
                "the planner's fts3.vo differs from the submitter's credential"
            )
        outcomes.append(submitted(request.request_id, job, transfers.endpoint))
    for outcome in outcomes:
        await publisher.publish(outcome, correlation_id=envelope.correlation_id, user=envelope.user)
    log.info(
        "jobs_submitted",
        request_id=request.request_id,
        submitted=sum(isinstance(o, TransferSubmitted) for o in outcomes),
        refused=sum(isinstance(o, TransferStatus) for o in outcomes),
    )
