"""What a worker publishes when it gives a message up, so that no request ends in silence.

Pure: from the message that cannot be processed and the reason, the events that make the
failure visible. Every planned job and file becomes FAILED (the icat-writer records it where
the entities exist, the ledger for the request), and a request given up as a whole gets a
``RequestFailed``. A status event that cannot be recorded has nothing to report: it is
dead-lettered for an operator to replay (its request stays visible in the ledger).
"""

from __future__ import annotations

from collections.abc import Sequence

from datastore_common.errors import InvalidRequestError, NotFoundError
from datastore_common.messages import (
    ArchiveRegistered,
    ArchiveRequested,
    ArchiveRetryRequested,
    FailureClass,
    Payload,
    PlannedJob,
    RequestFailed,
    RestoreRequested,
    TransferKind,
    TransferSubmitted,
    TransferTracked,
    job_failed,
)


def failure_class_of(exc: BaseException) -> FailureClass:
    """The request's own fault (invalid, names what does not exist) is a user error;
    everything else (exhausted retries, lost messages, our configuration) is ours."""
    return "user" if isinstance(exc, InvalidRequestError | NotFoundError) else "system"


def give_up_events(
    data: Payload,
    reason: str,
    failure_class: FailureClass,
    *,
    fts_endpoint: str,
    jobs: Sequence[PlannedJob] | None = None,
) -> list[Payload]:
    """The events announcing that ``data`` will never be processed; ``jobs`` overrides the
    message's own plan (an archive request an instrument sent without one)."""
    if isinstance(data, ArchiveRequested | ArchiveRegistered | RestoreRequested):
        kind: TransferKind = "restore" if isinstance(data, RestoreRequested) else "archive"
        planned = list(jobs if jobs is not None else data.jobs)
        events: list[Payload] = [
            job_failed(
                request_id=data.request_id,
                kind=kind,
                job_id=job.job_id,
                fts_endpoint=fts_endpoint,
                transfers=job.transfers,
                reason=reason,
                failure_class=failure_class,
            )
            for job in planned
        ]
        events.append(
            RequestFailed(
                request_id=data.request_id,
                kind=kind,
                failure_class=failure_class,
                reason=reason,
                job_ids=[job.job_id for job in planned],
            )
        )
        return events
    if isinstance(data, ArchiveRetryRequested):
        # A retry refused (the dataset in flight again, on tape, gone) fails the retry alone:
        # its files keep what ICAT records, which may be another request's work.
        return [
            RequestFailed(
                request_id=data.request_id,
                kind="archive",
                failure_class=failure_class,
                reason=reason,
            )
        ]
    if isinstance(data, TransferSubmitted | TransferTracked):
        # The job exists at FTS but nobody can follow it any more: say so rather than
        # leave it ACTIVE for ever (FTS may still finish it; an operator can resync).
        return [
            job_failed(
                request_id=data.request_id,
                kind=data.kind,
                job_id=data.job_id,
                fts_endpoint=data.fts_endpoint,
                transfers=data.transfers,
                reason=f"lost track of FTS job {data.job_id}: {reason}",
                failure_class="system",
            )
        ]
    return []
