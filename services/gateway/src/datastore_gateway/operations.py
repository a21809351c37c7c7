"""What an operator (``gateway.admins``) is shown: the broker's queues, what failed, what is
going on. Free of HTTP; anyone else hears 404, as for a route that is not there.

The queues are counted with passive declares (``ports.QueueDepths``), which never touch a
message. Failures, requests and jobs still going come from the request ledger; the oldest
waiting work is the oldest request not ended (a broker cannot say how old a queue's head is
without delivering it, which would count against its delivery limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from datastore_common.errors import NotFoundError, PeerUnavailableError
from datastore_common.ports import QueueDepth, QueueDepths, UserSession
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import (
    QUEUES,
    Topology,
    all_queue_names,
    dlq_name,
    retry_queue_name,
)
from datastore_gateway.handlers import is_admin
from datastore_gateway.ledger import Ledger
from datastore_gateway.schemas import (
    ActiveJobRow,
    FailureCountRow,
    OldestActive,
    OperationsView,
    QueueRow,
    RecentFailureRow,
)

#: Failures are counted over the last day; this many latest failures and active jobs shown.
FAILURES_SINCE_SECONDS = 86400.0
SHOWN = 50


def queue_rows(topology: Topology, depths: Mapping[str, QueueDepth]) -> list[QueueRow]:
    """One row per consumer queue (its retry queues and DLQ summed in), then one per delay
    queue; a count is None when no queue of it is declared on the broker."""

    def total(names: Sequence[str]) -> int | None:
        counts = [depths[n].messages for n in names if n in depths]
        known = [c for c in counts if c is not None]
        return sum(known) if known else None

    consumer_of = {topology.queue(role.role): role.consumer for role in QUEUES}
    rows = []
    for spec in topology.queues:
        own = depths.get(spec.name)
        retries = (
            [retry_queue_name(spec.name, s) for s in sorted(set(topology.retry_delays))]
            if spec.with_retries
            else []
        )
        rows.append(
            QueueRow(
                queue=spec.name,
                consumed_by=consumer_of.get(spec.name),
                ready=own.messages if own else None,
                consumers=own.consumers if own else None,
                retrying=total(retries) if retries else 0,
                dead_letters=total([dlq_name(spec.name)]),
            )
        )
    for delay in topology.delays:
        held = depths.get(delay.name)
        rows.append(
            QueueRow(
                queue=delay.name,
                consumed_by=None,
                ready=held.messages if held else None,
                consumers=held.consumers if held else None,
                retrying=None,
                dead_letters=None,
            )
        )
    return rows


async def operations_view(
    *,
    user: UserSession,
    settings: DatastoreSettings,
    ledger: Ledger,
    queue_depths: QueueDepths | None,
    topology: Topology,
    now: float,
) -> OperationsView:
    """The operators' view, for ``gateway.admins`` only (anyone else: 404)."""
    if not is_admin(user, settings):
        raise NotFoundError("no such page for you: the operators' view is gateway.admins' only")
    seen = await ledger.operations(since_seconds=FAILURES_SINCE_SECONDS, limit=SHOWN)
    queues: list[QueueRow] = []
    broker: str | None = None
    if queue_depths is None:
        broker = "not connected to the broker yet"
    else:
        try:
            counted = await queue_depths.depths(all_queue_names(topology))
        except PeerUnavailableError as exc:
            broker = str(exc)
        else:
            queues = queue_rows(topology, {depth.queue: depth for depth in counted})
    oldest = seen.oldest_active
    return OperationsView(
        queues=queues,
        broker=broker,
        since=_when(seen.since),
        failures=[
            FailureCountRow(failure_class=f.failure_class, state=f.state, requests=f.requests)
            for f in seen.failures
        ],
        recent_failures=[
            RecentFailureRow(
                request_id=f.request_id,
                kind=f.kind,
                owner=f.owner,
                state=f.state,
                failure_class=f.failure_class,
                reason=f.reason,
                ended_at=_when(f.ended),
            )
            for f in seen.recent_failures
        ],
        active_requests=seen.active_requests,
        oldest_active=None
        if oldest is None
        else OldestActive(
            request_id=oldest.request_id,
            kind=oldest.kind,
            owner=oldest.owner,
            state=oldest.state,
            accepted_at=_when(oldest.created),
            age_seconds=round(max(0.0, now - oldest.created), 1),
            idle_seconds=round(max(0.0, now - oldest.updated), 1),
        ),
        active_jobs_total=seen.active_jobs_total,
        active_jobs=[
            ActiveJobRow(
                job_id=j.job_id,
                request_id=j.request_id,
                kind=j.kind,
                owner=j.owner,
                state=j.state or "PLANNED",
                files_total=j.files_total,
                files_ended=j.files_ended,
            )
            for j in seen.active_jobs
        ],
    )


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
