"""Controlling requests and datasets (free of HTTP, as ``handlers``): cancel a request or one
job of it; retry the failed files of a dataset; an admin's state set by hand, with an audit
trail.

Who may: the owner of the request and ``gateway.admins``; anyone else hears 404, as for a
request that does not exist. What is cancelled is decided by ``domain.control``: a restore
in flight, an archive only when an admin forces it. The gateway only asks FTS to cancel
(``DELETE /jobs/{id}``): the status-poller then reports CANCELED as for any other state, so
the ledger and, for an archive, ICAT record it the usual one-way.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from datastore_common.domain.archival import ARCHIVAL_STATE
from datastore_common.domain.control import cancel_decision, plan_retry, retry_decision
from datastore_common.domain.ledger import in_flight_job_id, is_ledger_only_job, new_request
from datastore_common.domain.states import FAILED, aggregate_dataset_state, is_terminal
from datastore_common.errors import ConflictError, DatastoreError, NotFoundError
from datastore_common.logging import get_logger
from datastore_common.messages import ArchivalStateSet, ArchiveRetryRequested
from datastore_common.ports import Publisher, Selections, TransferService, UserSession
from datastore_common.settings import DatastoreSettings
from datastore_gateway.handlers import (
    check_may_archive,
    is_admin,
    job_progress,
    may_see,
    publish_confirmed,
    queued_restore,
)
from datastore_gateway.idempotency import IdempotencyStore, fingerprint_of, run_once, scope_key
from datastore_gateway.ledger import AuditEntry, Ledger
from datastore_gateway.metrics import RETRY_REQUESTS
from datastore_gateway.schemas import (
    CancelAccepted,
    DatasetStateSet,
    DatasetStateSetAccepted,
    RetryAccepted,
)

log = get_logger(__name__)


async def _cancel_jobs(
    transfers: TransferService, job_ids: list[str]
) -> tuple[list[str], list[str]]:
    """Ask FTS to cancel each job: (cancelled, not in FTS yet). A job FTS has already ended
    comes back unchanged, so cancelling twice is harmless."""
    canceled, pending = [], []
    for job_id in job_ids:
        try:
            await transfers.cancel(job_id)
        except NotFoundError:
            pending.append(job_id)
        else:
            canceled.append(job_id)
    return canceled, pending


async def cancel_request(
    request_id: str,
    *,
    force: bool,
    user: UserSession,
    ledger: Ledger,
    transfers: TransferService,
    settings: DatastoreSettings,
) -> CancelAccepted:
    """Cancel every job of the request still running (409 when it has ended, or is an
    archive and the caller is not an admin forcing it)."""
    record = await ledger.get(request_id)
    if record is None:
        queued = await queued_restore(ledger, request_id)
        if (
            queued is not None
            and may_see(queued.owner, user, settings)
            and await ledger.drop_queued(request_id)
        ):
            # Never started: nothing was published, nothing is recalled; it is gone.
            log.info("restore_dequeued", correlation_id=request_id, user=user.user_name)
            return CancelAccepted(request_id=request_id, canceled_job_ids=[])
    if record is None or not may_see(record.owner, user, settings):
        raise NotFoundError(f"no request {request_id} of yours in the ledger")
    admin = is_admin(user, settings)
    decision = cancel_decision(record.kind, record.state, admin=admin, force=force)
    if decision.action != "cancel":
        raise ConflictError(f"request {request_id}: {decision.reason}")
    running = [job.job_id for job in record.jobs if not is_terminal(job.state)]
    # Files following another restore's transfers stop being followed here; that restore,
    # someone else's perhaps, goes on. FTS never hears of the ledger's own jobs.
    if any(job_id == in_flight_job_id(request_id) for job_id in running):
        await ledger.stop_following(request_id)
    running = [job_id for job_id in running if not is_ledger_only_job(job_id)]
    canceled, pending = await _cancel_jobs(transfers, running)
    log.info(
        "request_cancel_sent",
        correlation_id=request_id,
        user=user.user_name,
        kind=record.kind,
        forced=force and admin,
        canceled=canceled,
        pending=pending,
    )
    return CancelAccepted(request_id=request_id, canceled_job_ids=canceled, pending_job_ids=pending)


async def cancel_job(
    job_id: str,
    *,
    force: bool,
    user: UserSession,
    ledger: Ledger,
    transfers: TransferService,
    settings: DatastoreSettings,
) -> CancelAccepted:
    """Cancel one job, with the rules of its request (a job the ledger does not know, only
    admins see: it counts as an archive, so it needs force)."""
    progress = await job_progress(job_id, transfers, user=user, ledger=ledger, settings=settings)
    owner = await ledger.job_owner(job_id)
    record = None if owner is None else await ledger.get(owner.request_id)
    kind = "archive" if record is None else record.kind
    admin = is_admin(user, settings)
    decision = cancel_decision(kind, progress.state, admin=admin, force=force, what="job")
    if decision.action != "cancel":
        raise ConflictError(f"job {job_id}: {decision.reason}")
    canceled, pending = await _cancel_jobs(transfers, [job_id])
    request_id = "" if owner is None else owner.request_id
    log.info(
        "job_cancel_sent",
        correlation_id=request_id,
        user=user.user_name,
        job_id=job_id,
        kind=kind,
        forced=force and admin,
    )
    return CancelAccepted(request_id=request_id, canceled_job_ids=canceled, pending_job_ids=pending)


async def retry_dataset(
    dataset_id: int,
    *,
    user: UserSession,
    selections: Selections,
    publisher: Publisher,
    settings: DatastoreSettings,
    vo: str,
    ledger: Ledger | None,
    idempotency: IdempotencyStore | None,
    idempotency_key: str | None = None,
) -> RetryAccepted:
    """Archive again the datafiles FAILED or CANCELED of a dataset whose archive ended
    (archivers only; read with their own session, so ICAT decides whether they see it: 404
    otherwise); 409 with why while it is in flight or once FINISHED.

    Publishes ``archive.retry.requested`` (confirmed); the icat-writer checks again in ICAT,
    claims the dataset for the new jobs (named from the request id, so a redelivery names
    the same) and hands them on as any archive. The jobs named in the answer are the ones it
    will submit. With an ``Idempotency-Key``, a repeat gets the first answer."""
    check_may_archive(user, settings)
    records = await selections.dataset_archival(user.session_id, dataset_id)
    name = f"dataset {dataset_id}"
    decision = retry_decision(
        {d.datafile_id: d.archival.get(ARCHIVAL_STATE) for d in records.datafiles}, name
    )
    if decision.refused:
        raise ConflictError(f"retry refused: {decision.reason}")
    chosen = [d for d in records.datafiles if d.datafile_id in set(decision.datafile_ids)]
    shown: dict[str, str | int] = {"dataset_id": dataset_id}
    for dataset in records.datasets:
        shown["dataset"] = dataset.name

    async def retry(request_id: str) -> str:
        jobs = plan_retry(
            request_id,
            chosen,
            instrument_data_cache=settings.instrument_data_cache,
            tape_archive=settings.tape_archive,
            tape_root_dir=settings.tape_root_dir,
            vo=vo,
            max_files_per_job=settings.fts3.max_files_per_job,
        )
        message = ArchiveRetryRequested(
            request_id=request_id,
            dataset_id=dataset_id,
            datafile_ids=list(decision.datafile_ids),
            dataset=shown,
        )
        await publish_confirmed(publisher, message, user=user.user_name)
        if ledger is not None:
            try:
                await ledger.record(new_request(message, owner=user.user_name, source="http"))
            except DatastoreError as exc:
                log.warning("ledger_record_deferred", correlation_id=request_id, error=str(exc))
        log.info(
            "archive_retry_requested",
            correlation_id=request_id,
            user=user.user_name,
            dataset_id=dataset_id,
            datafiles=len(chosen),
            jobs=[job.job_id for job in jobs],
        )
        return RetryAccepted(
            request_id=request_id,
            job_ids=[job.job_id for job in jobs],
            dataset_id=dataset_id,
            datafile_ids=list(decision.datafile_ids),
        ).model_dump_json()

    async def not_failed(answer: str) -> bool:
        if ledger is None:
            return True
        record = await ledger.get(RetryAccepted.model_validate_json(answer).request_id)
        return record is None or record.state != FAILED

    # Only a key makes a repeat the same retry: the same dataset may rightly be retried again
    # later with the same files (they failed again).
    fingerprint = fingerprint_of(f"retry:{dataset_id}".encode())
    answer, replayed = await run_once(
        idempotency if idempotency_key else None,
        scope_key(user.user_name, idempotency_key=idempotency_key, fingerprint=fingerprint),
        fingerprint,
        retry,
        window=settings.gateway.idempotency_window_seconds,
        still_valid=not_failed,
    )
    RETRY_REQUESTS.labels(outcome="replayed" if replayed else "accepted").inc()
    return RetryAccepted.model_validate_json(answer)


async def set_dataset_state(
    dataset_id: int,
    body: DatasetStateSet,
    *,
    user: UserSession,
    selections: Selections,
    publisher: Publisher,
    ledger: Ledger,
    settings: DatastoreSettings,
) -> DatasetStateSetAccepted:
    """An admin sets a dataset's "Archival state" (and its datafiles', with ``datafiles``) by
    hand: the audit trail (ledger and log) keeps who, when, old -> new and why, then
    ``archival.state.set`` (confirmed) has the icat-writer write it in ICAT. Anyone else
    hears 404, as for a dataset that does not exist; so does an admin ICAT does not let read
    it."""
    if not is_admin(user, settings):
        raise NotFoundError(f"no dataset {dataset_id} whose state you may set")
    records = await selections.dataset_archival(user.session_id, dataset_id)
    states = [d.archival.get(ARCHIVAL_STATE) for d in records.datafiles]
    known = [s for s in states if s is not None]
    old_state = aggregate_dataset_state(known) if known else None
    change_id = str(uuid.uuid4())
    now = time.time()
    entry = AuditEntry(
        change_id=change_id,
        at=now,
        who=user.user_name,
        dataset_id=dataset_id,
        old_state=old_state,
        new_state=body.state,
        datafiles=body.datafiles,
        deletion_date=None if body.deletion_date is None else body.deletion_date.isoformat(),
        reason=body.reason,
    )
    # The trail first: a change is never made without it (one recorded but not published,
    # the broker down, is there with the 503 the admin got).
    await ledger.audit(entry)
    message = ArchivalStateSet(
        change_id=change_id,
        dataset_id=dataset_id,
        state=body.state,
        reason=body.reason,
        datafiles=body.datafiles,
        deletion_date=body.deletion_date,
        set_by=user.user_name,
    )
    await publish_confirmed(publisher, message, user=user.user_name)
    log.warning(
        "dataset_state_set_by_hand",
        correlation_id=change_id,
        user=user.user_name,
        dataset_id=dataset_id,
        old_state=old_state,
        new_state=body.state,
        datafiles=body.datafiles,
        deletion_date=entry.deletion_date,
        reason=body.reason,
    )
    return DatasetStateSetAccepted(
        change_id=change_id,
        dataset_id=dataset_id,
        old_state=old_state,
        state=body.state,
        datafiles=body.datafiles,
        deletion_date=body.deletion_date,
        set_by=user.user_name,
        at=datetime.fromtimestamp(now, UTC),
        reason=body.reason,
    )
