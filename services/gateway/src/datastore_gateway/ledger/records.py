"""The ledger's read models, and how they are read from its rows.

``RequestRecord`` is a request as ``GET /requests/{id}`` shows it, ``RequestPage`` a page of the
listing ``GET /requests`` (whose SQL ``listing_query`` writes), ``JobOwner`` the request an FTS
job belongs to, ``Operations`` what an operator is shown. ``record_of`` turns a
``ledger_requests`` row (``REQUEST_COLUMNS``, in that order) and its jobs' file counts into a
record, its state and ``waiting_on`` as the ledger's rules (``datastore_common.domain.ledger``)
say.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from datastore_common.domain.ledger import (
    JobSummary,
    Position,
    RequestQuery,
    Waiting,
    next_request_state,
    request_state,
    summarise_counts,
    waiting_on,
)
from datastore_common.domain.restored_copies import RecordedCopy
from datastore_common.messages import FailureClass

#: A request's own row, as ``record_of`` reads it.
REQUEST_COLUMNS = (
    "request_id, kind, owner, source, created, updated, state, registered, failure_class,"
    " failure_reason, datasets, retry_note, notify, left_out, instrument"
)


#: The channels an ended request is told on: the broker always, the others when asked.
Channel = Literal["broker", "webhook", "email"]


@dataclass(frozen=True)
class Delivery:
    """One ended request's notification on one channel, as the outbox holds it."""

    request_id: str
    channel: Channel
    target: str | None  # the webhook URL or e-mail address; None for the broker
    message_id: str
    payload: str  # the request.completed payload, JSON
    state: str  # PENDING, SENT or GAVE_UP
    attempts: int
    last_error: str | None = None


@dataclass(frozen=True)
class Failure:
    failure_class: FailureClass
    reason: str


@dataclass(frozen=True)
class AuditEntry:
    """An admin's archival state set by hand on a dataset: who, when (epoch seconds),
    old -> new, whether its datafiles too, the deletion date set, and why."""

    change_id: str
    at: float
    who: str
    dataset_id: int
    old_state: str | None
    new_state: str
    datafiles: bool
    deletion_date: str | None
    reason: str


@dataclass(frozen=True)
class RequestRecord:
    """A request as ``GET /requests/{id}`` shows it."""

    request_id: str
    kind: str
    owner: str | None
    source: str
    created: float
    updated: float
    state: str
    jobs: tuple[JobSummary, ...]
    datasets: tuple[dict[str, Any], ...]
    failure: Failure | None
    waiting_on: str | None
    #: Who is told when it ends ({"email": ..., "webhook": ...}), and how each went once it
    #: ended (the outbox's rows, by channel).
    notify: dict[str, str] | None = None
    notifications: tuple[Delivery, ...] = ()
    #: A partial restore's datafiles not restored ({"datafile_id", "reason"} each).
    left_out: tuple[dict[str, Any], ...] = ()
    #: The instrument account (broker user) that published it straight to the broker.
    instrument: str | None = None


@dataclass(frozen=True)
class RequestPage:
    """A page of a listing; ``next`` is where the following page starts (None: no more)."""

    records: tuple[RequestRecord, ...]
    next: Position | None


@dataclass(frozen=True)
class JobOwner:
    """The request an FTS job belongs to, and who asked for it (None: nobody known)."""

    request_id: str
    owner: str | None
    kind: str = "archive"  # archive or restore: the request's kind


@dataclass(frozen=True)
class FailureCount:
    """Requests that ended ``state`` with failures of ``failure_class`` since some time."""

    failure_class: str
    state: str
    requests: int


@dataclass(frozen=True)
class RecentFailure:
    request_id: str
    kind: str
    owner: str | None
    state: str
    failure_class: str
    reason: str | None
    ended: float


@dataclass(frozen=True)
class ActiveJob:
    """An FTS job of a request still going: what FTS last said of it, files ended of all."""

    job_id: str
    request_id: str
    kind: str
    owner: str | None
    state: str | None  # None until FTS first reports it
    files_total: int
    files_ended: int


@dataclass(frozen=True)
class ActiveRequest:
    """A request not ended: accepted at ``created``, last moved at ``updated``."""

    request_id: str
    kind: str
    owner: str | None
    state: str
    created: float
    updated: float


@dataclass(frozen=True)
class Operations:
    """What the ledger tells an operator: failures since ``since``, the jobs still going (the
    first ``limit`` by request age, of ``active_jobs_total``), the requests still going and
    how old the oldest of them is."""

    since: float
    failures: tuple[FailureCount, ...]
    recent_failures: tuple[RecentFailure, ...]
    active_jobs: tuple[ActiveJob, ...]
    active_jobs_total: int
    active_requests: int
    oldest_active: ActiveRequest | None


def listing_query(query: RequestQuery) -> tuple[str, list[Any]]:
    """The SQL (and its parameters) of one page of a listing, plus one row that tells whether
    another page follows. Newest first, resuming after ``query.after`` (keyset paging:
    a page costs the same however deep), on the (owner, created, request_id) index for a
    user's own requests and the (created, request_id) one for everyone's."""
    where: list[str] = []
    parameters: list[Any] = []

    def match(condition: str, *values: Any) -> None:
        where.append(condition)
        parameters.extend(values)

    if query.owner is not None:
        match("owner = ?", query.owner)
    if query.kind is not None:
        match("kind = ?", query.kind)
    if query.states:
        match(f"state IN ({', '.join('?' * len(query.states))})", *query.states)
    if query.since is not None:
        match("created >= ?", query.since)
    if query.until is not None:
        match("created < ?", query.until)
    if query.after is not None:
        match("(created, request_id) < (?, ?)", query.after.created, query.after.request_id)
    if query.investigation is not None:
        match(
            "request_id IN (SELECT request_id FROM ledger_investigations WHERE investigation = ?)",
            query.investigation,
        )
    sql = (
        f"SELECT {REQUEST_COLUMNS} FROM ledger_requests"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY created DESC, request_id DESC LIMIT ?"
    )
    return sql, [*parameters, query.limit + 1]


def record_of(
    row: tuple[Any, ...],
    jobs: Sequence[tuple[str, str | None]],
    counts: dict[str, dict[str, tuple[int, int]]],
    notifications: Sequence[Delivery] = (),
) -> RequestRecord:
    """The request of one ``REQUEST_COLUMNS`` row, given its jobs (id, state) in order,
    their files counted by state (job id -> state -> (files, bytes)) and its outbox rows."""
    (request_id, kind, owner, source, created, updated, stored, registered, f_class, f_reason) = (
        row[:10]
    )
    datasets, note, notify, left_out, instrument = row[10:15]
    summaries = tuple(
        summarise_counts(job_id, state, counts.get(job_id, {})) for job_id, state in jobs
    )
    failure = Failure(f_class, f_reason) if f_reason is not None else None
    job_states = [s.state for s in summaries]
    computed = request_state(job_states, failed=failure is not None)
    state = next_request_state(stored, computed, failed=failure is not None)
    return RequestRecord(
        request_id=request_id,
        kind=kind,
        owner=owner,
        source=source,
        created=float(created),
        updated=float(updated),
        state=state,
        jobs=summaries,
        datasets=tuple(json.loads(datasets)),
        failure=failure,
        waiting_on=waiting_on(
            state, job_states, Waiting(kind, registered=bool(registered), retry=note)
        ),
        notify=json.loads(notify) if notify else None,
        notifications=tuple(notifications),
        left_out=tuple(json.loads(left_out)) if left_out else (),
        instrument=instrument,
    )


@dataclass(frozen=True)
class QueueRow:
    """A restore in the queue: waiting (QUEUED, with its position and why) or starting."""

    request_id: str
    owner: str
    priority: int
    queued_at: float
    files: int
    bytes: int
    state: str
    position: int | None
    why: str | None
    draft: str


@dataclass(frozen=True)
class ExpiredCopy:
    """A restored copy past its expiry, leased to the cleaner; ``needed``: a restore not yet
    ended uses it."""

    copy: RecordedCopy
    needed: bool
