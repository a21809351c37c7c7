"""Controlling requests: cancel a request or one job of it (free of HTTP, as ``handlers``).

Who may: the owner of the request and ``gateway.admins``; anyone else hears 404, as for a
request that does not exist. What is cancelled is decided by ``domain.control``: a restore
in flight, an archive only when an admin forces it. The gateway only asks FTS to cancel
(``DELETE /jobs/{id}``): the status-poller then reports CANCELED as for any other state, so
the ledger and, for an archive, ICAT record it the usual one-way.
"""

from __future__ import annotations

from datastore_common.domain.control import cancel_decision
from datastore_common.domain.states import is_terminal
from datastore_common.errors import ConflictError, NotFoundError
from datastore_common.logging import get_logger
from datastore_common.ports import TransferService, UserSession
from datastore_common.settings import DatastoreSettings
from datastore_gateway.handlers import is_admin, job_progress, may_see
from datastore_gateway.ledger import Ledger
from datastore_gateway.schemas import CancelAccepted

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
    if record is None or not may_see(record.owner, user, settings):
        raise NotFoundError(f"no request {request_id} of yours in the ledger")
    admin = is_admin(user, settings)
    decision = cancel_decision(record.kind, record.state, admin=admin, force=force)
    if decision.action != "cancel":
        raise ConflictError(f"request {request_id}: {decision.reason}")
    running = [job.job_id for job in record.jobs if not is_terminal(job.state)]
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
