"""The request ledger: every accepted archive and restore request, followed to its end.

Kept by the gateway, in the same database as its idempotency keys (``gateway.state_db``:
SQLite by default, PostgreSQL by URL so that replicas on several hosts share it):
- the gateway records a request when the broker has confirmed it (before the 202);
- the gateway's ``gateway.ledger`` queue carries every event that moves a request (requests
  published straight to the broker, registrations, submissions, FTS states, give-ups) and
  ``follow`` applies them. Replicas share the queue and the database: any of them may apply
  an event, and each write is one transaction that only moves states forward, so duplicates
  and reordering are harmless.
Reads answer ``GET /requests/{id}`` and the listing ``GET /requests`` from here alone, also
after FTS has forgotten the jobs. The transaction that ends a request also writes its
``request.completed`` into the outbox (``ledger_outbox``: the broker, and the webhook and
e-mail the request named), which the notifier (``datastore_gateway.notifier``) claims, sends
and marks.

Calls run on one connection in a worker thread (sqlite3 or psycopg's synchronous API), so
the event loop never waits on the database and both engines share one code path.

The package: ``database`` (the tables, their upgrades, the connection to SQLite or
PostgreSQL), ``records`` (the read models, a row read into a record, the listing's SQL); this
module holds ``Ledger``, its writes and reads. Nothing below imports this module, so there is
no import cycle.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from datastore_common.domain.completion import completion_message_id, request_completed
from datastore_common.domain.ledger import (
    LedgerJob,
    NewRequest,
    Position,
    RequestQuery,
    following_job_state,
    in_flight_job_id,
    investigations_of,
)
from datastore_common.domain.plan import is_real_checksum
from datastore_common.domain.restore import Usage
from datastore_common.domain.restore_queue import (
    Limits,
    Waiting,
    position_in,
    queue_order,
    take_turns,
)
from datastore_common.domain.restored_copies import RecordedCopy, expiry_of
from datastore_common.domain.states import (
    CANCELED,
    FAILED,
    FINISHED,
    FINISHEDDIRTY,
    TERMINAL,
    may_advance,
    normalise,
)
from datastore_common.errors import PeerUnavailableError
from datastore_common.messages import (
    EndState,
    RequestDelayed,
    RequestFailed,
    TransferKind,
    TransferStatus,
)
from datastore_gateway.ledger.database import (
    ADDED_COLUMNS,
    ADDED_TABLES,
    SCHEMA,
    Connection,
    Cursor,
    add_investigations,
)
from datastore_gateway.ledger.records import (
    REQUEST_COLUMNS,
    ActiveJob,
    ActiveRequest,
    AuditEntry,
    Channel,
    Delivery,
    ExpiredCopy,
    Failure,
    FailureCount,
    JobOwner,
    Operations,
    QueueRow,
    RecentFailure,
    RequestPage,
    RequestRecord,
    listing_query,
    record_of,
)

__all__ = [
    "ADDED_COLUMNS",
    "ADDED_TABLES",
    "SCHEMA",
    "ActiveJob",
    "ActiveRequest",
    "AuditEntry",
    "Channel",
    "Delivery",
    "ExpiredCopy",
    "Failure",
    "FailureCount",
    "JobOwner",
    "Ledger",
    "Operations",
    "QueueRow",
    "RecentFailure",
    "RequestPage",
    "RequestRecord",
    "listing_query",
]

T = TypeVar("T")


#: Where ``GET /requests/{id}`` is reached when ``gateway.public_url`` is not given.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
#: A claim on a destination whose request never reached the ledger (its gateway stopped
#: between the claim and the publish) is taken over after this long.
UNRECORDED_CLAIM_SECONDS = 600.0
#: A restore let start on the request path has this long to reach the ledger (else its share
#: is given back); one the queue started, this long before it is queued again.
START_LEASE_SECONDS = 600.0
#: PostgreSQL advisory lock taken by whoever decides who starts: replicas decide one at a time.
QUEUE_LOCK = 7_353_201
#: Destinations asked about per statement (SQLite's variables per statement are limited).
_CHUNK = 500
#: Messages published with a request recorded on the request path, remembered for their copy
#: on the feed (which arrives within milliseconds, unless the feed is backed up: then their
#: request is applied again, which changes nothing).
OWN_EVENTS_REMEMBERED = 10_000
#: How long a feed copy waits for the request path to record its request, at most.
OWN_EVENT_WAIT_SECONDS = 60.0
#: A request of at most this many files is recorded at once on the event loop when SQLite
#: is free (``Connection.at_once``): a few small inserts. A larger one waits in a thread.
RECORD_AT_ONCE_FILES = 100
#: The outbox's columns, as ``Delivery`` takes them.
_DELIVERY_COLUMNS = "request_id, channel, target, message_id, payload, state, attempts, last_error"


class Ledger:
    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        public_url: str = DEFAULT_PUBLIC_URL,
        copy_retention_days: float = 14,
    ) -> None:
        self._db = Connection(url)
        #: The broker messages this gateway publishes with a request it records itself
        #: (``expect``): each one's outcome, True once recorded; their copies on
        #: ``gateway.ledger`` wait for it (``applied_here``). Oldest first, bounded.
        self._own_events: OrderedDict[str, asyncio.Future[bool]] = OrderedDict()
        self._clock = clock
        self._public_url = public_url
        self._retention_days = copy_retention_days

    async def open(self) -> None:
        await self._run(self._db.open, "open")

    async def close(self) -> None:
        await asyncio.to_thread(self._db.close)

    async def _run(self, work: Callable[[], T], what: str) -> T:
        try:
            return await asyncio.to_thread(work)
        except (sqlite3.Error, OSError) as exc:
            raise PeerUnavailableError(f"request ledger ({what}): {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise PeerUnavailableError(f"request ledger ({what}): {exc}") from exc
            raise

    # -- writes --------------------------------------------------------------------------
    async def record(self, request: NewRequest, *, event_id: str | None = None) -> None:
        """Record an accepted request and its plan; a request recorded before is kept.

        ``event_id``: the id of the broker message that carries the request (``expect``):
        once recorded, that message's copy on the ledger feed needs nothing more."""
        done = None
        if sum(len(job.files) for job in request.jobs) <= RECORD_AT_ONCE_FILES:
            try:
                done = self._db.at_once(lambda db: self._record_in(db, request))
            except sqlite3.Error as exc:
                raise PeerUnavailableError(f"request ledger (record): {exc}") from exc
        if done is None:
            await self._run(lambda: self._record(request), "record")
        if event_id is not None:
            self.settle(event_id, recorded=True)

    def expect(self, event_id: str) -> None:
        """The request path is about to publish message ``event_id`` and then record its
        request here: its copy on the ledger feed waits for that (``applied_here``). The
        caller ``settle``s it in the end, whatever happened."""
        self._own_events[event_id] = asyncio.get_running_loop().create_future()
        while len(self._own_events) > OWN_EVENTS_REMEMBERED:
            _, oldest = self._own_events.popitem(last=False)
            if not oldest.done():
                oldest.set_result(False)

    def settle(self, event_id: str, *, recorded: bool) -> None:
        """Whether the request of message ``event_id`` was recorded here (the first word
        counts: ``record`` says True, the request path's end says False otherwise)."""
        outcome = self._own_events.get(event_id)
        if outcome is not None and not outcome.done():
            outcome.set_result(recorded)
        if outcome is not None and not outcome.result():
            del self._own_events[event_id]

    async def applied_here(self, event_id: str | None) -> bool:
        """Whether message ``event_id`` carries a request this gateway recorded itself, so
        that its copy on the ledger feed is acked unread (``worker.Route.already_applied``):
        waits for the request path's outcome (the copy may arrive before the record is
        written). True once per message; a message not ``expect``ed, or one whose request
        was not recorded (or not within OWN_EVENT_WAIT_SECONDS), is applied as any other,
        which is always right (recording is idempotent)."""
        if event_id is None:
            return False
        outcome = self._own_events.get(event_id)
        if outcome is None:
            return False
        try:
            async with asyncio.timeout(OWN_EVENT_WAIT_SECONDS):
                return await asyncio.shield(outcome)
        except TimeoutError:
            return False
        finally:
            self._own_events.pop(event_id, None)

    def _record(self, request: NewRequest) -> None:
        with self._db.transaction() as db:
            self._record_in(db, request)

    def _record_in(self, db: Cursor, request: NewRequest) -> None:
        now = self._clock()
        db.execute(
            "INSERT INTO ledger_requests (request_id, kind, owner, source, created, updated,"
            " state, datasets, notify, left_out, instrument)"
            " VALUES (?, ?, ?, ?, ?, ?, 'SUBMITTED', ?, ?, ?, ?)"
            " ON CONFLICT (request_id) DO NOTHING",
            (
                request.request_id,
                request.kind,
                request.owner,
                request.source,
                now,
                now,
                json.dumps(list(request.datasets)),
                json.dumps(dict(request.notify)) if request.notify else None,
                json.dumps([dict(f) for f in request.left_out]) if request.left_out else None,
                request.instrument,
            ),
        )
        add_investigations(db, request.request_id, investigations_of(request.datasets))
        self._add_jobs(db, request.request_id, request.jobs)
        # Its files count from here: the share reserved when it was let start goes.
        db.execute("DELETE FROM ledger_queue WHERE request_id = ?", (request.request_id,))
        if request.kind == "restore":
            self._copies_used(db, [f.destination for job in request.jobs for f in job.files])
        if any(f.follows for job in request.jobs for f in job.files):
            self._catch_up(db, request.request_id)
        if any(job.state is not None for job in request.jobs):
            # Files already online are done from the start: a restore of nothing else
            # ends FINISHED here, and its request.completed is written at once.
            self._refresh(db, request.request_id)

    def _add_jobs(self, db: Cursor, request_id: str, jobs: Sequence[LedgerJob]) -> None:
        db.executemany(
            "INSERT INTO ledger_jobs (job_id, request_id, position, state) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (job_id) DO NOTHING",
            [(job.job_id, request_id, position, job.state) for position, job in enumerate(jobs)],
        )
        db.executemany(
            "INSERT INTO ledger_files (job_id, destination, bytes, state, follows, checksum)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, destination) DO NOTHING",
            [
                (job.job_id, f.destination, f.bytes, f.state, f.follows, f.checksum)
                for job in jobs
                for f in job.files
            ],
        )

    async def registered(self, request_id: str, jobs: Sequence[LedgerJob]) -> None:
        """ICAT has the request: its (possibly re-planned) jobs, with the files' real sizes."""
        await self._run(lambda: self._registered(request_id, jobs), "registered")

    def _registered(self, request_id: str, jobs: Sequence[LedgerJob]) -> None:
        with self._db.transaction() as db:
            if not self._exists(db, request_id):
                return  # the request's own event will arrive (and be recorded) first
            self._add_jobs(db, request_id, jobs)
            db.executemany(
                "UPDATE ledger_files SET bytes = ? WHERE job_id = ? AND destination = ?",
                [
                    (f.bytes, job.job_id, f.destination)
                    for job in jobs
                    for f in job.files
                    if f.bytes is not None
                ],
            )
            db.execute(
                "UPDATE ledger_requests SET registered = 1 WHERE request_id = ?", (request_id,)
            )
            self._refresh(db, request_id)

    async def submitted(self, request_id: str, job_id: str) -> None:
        await self._run(lambda: self._job_moves(request_id, job_id, "SUBMITTED", None), "submitted")

    async def apply_status(self, status: TransferStatus) -> None:
        """Move the job's and its files' states forward as reported; stale reports are no-ops."""
        await self._run(lambda: self._apply_status(status), "status")

    def _apply_status(self, status: TransferStatus) -> None:
        with self._db.transaction() as db:
            if not self._exists(db, status.request_id):
                return
            known = dict(
                db.execute(
                    "SELECT destination, state FROM ledger_files WHERE job_id = ?",
                    (status.job_id,),
                )
            )
            inserts, updates = [], []
            for file in status.files:
                state = normalise(file.state)
                if file.destination not in known:
                    # A file the plan did not list (re-planned by the icat-writer): add it.
                    inserts.append((status.job_id, file.destination, None, state, file.reason))
                elif may_advance(known[file.destination], state):
                    updates.append((state, file.reason, status.job_id, file.destination))
            db.executemany(
                "INSERT INTO ledger_files (job_id, destination, bytes, state, reason)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, destination) DO NOTHING",
                inserts,
            )
            db.executemany(
                "UPDATE ledger_files SET state = ?, reason = ?"
                " WHERE job_id = ? AND destination = ?",
                updates,
            )
            if status.kind == "restore":
                moves = [(dest, state, reason) for state, reason, _, dest in updates]
                moves += [(dest, state, reason) for _, dest, _, state, reason in inserts]
                self._release(
                    db, status.request_id, [d for d, state, _ in moves if state in TERMINAL]
                )
                # Before the leader's refresh: were it to end now, its followers' files
                # must already have moved with its files.
                self._lead(db, status.request_id, moves)
                self._wrote(
                    db,
                    status.request_id,
                    status.job_id,
                    [d for d, state, _ in moves if state == FINISHED],
                )
            self._job_moves_in(
                db, status.request_id, status.job_id, status.job_state, status.reason
            )

    def _job_moves(self, request_id: str, job_id: str, state: str, reason: str | None) -> None:
        with self._db.transaction() as db:
            if self._exists(db, request_id):
                self._job_moves_in(db, request_id, job_id, state, reason)

    def _job_moves_in(
        self, db: Cursor, request_id: str, job_id: str, state: str, reason: str | None
    ) -> None:
        rows = db.execute("SELECT state FROM ledger_jobs WHERE job_id = ?", (job_id,))
        if not rows:
            position = db.execute(
                "SELECT COUNT(*) FROM ledger_jobs WHERE request_id = ?", (request_id,)
            )[0][0]
            db.execute(
                "INSERT INTO ledger_jobs (job_id, request_id, position, state, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                (job_id, request_id, position, normalise(state), reason),
            )
        elif may_advance(rows[0][0], state):
            db.execute(
                "UPDATE ledger_jobs SET state = ?, reason = COALESCE(?, reason) WHERE job_id = ?",
                (normalise(state), reason, job_id),
            )
        self._refresh(db, request_id)

    # -- restores sharing transfers -------------------------------------------------------
    async def claim_recalls(self, request_id: str, destinations: Sequence[str]) -> dict[str, str]:
        """Claim ``destinations`` for ``request_id``'s recalls, in one transaction: those
        another restore not yet ended holds already are answered (destination -> that
        request), the rest are this request's until its files there end. Two restores of
        the same files at the same moment: one holds each destination, never both."""
        return await self._run(lambda: self._claim_recalls(request_id, destinations), "claim")

    def _claim_recalls(self, request_id: str, destinations: Sequence[str]) -> dict[str, str]:
        # In one order for every caller: two PostgreSQL transactions inserting the same keys
        # in opposite orders would deadlock (each waiting on a row the other inserted).
        destinations = sorted(set(destinations))
        now = self._clock()
        ended = tuple(sorted(TERMINAL))
        marks = ", ".join("?" * len(ended))
        held: dict[str, str] = {}
        with self._db.transaction() as db:
            # Claims left behind: a request that ended, or never reached the ledger.
            db.execute(
                "DELETE FROM ledger_recalls WHERE request_id IN (SELECT request_id FROM"
                f" ledger_requests WHERE state IN ({marks})) OR (claimed < ? AND request_id"
                " NOT IN (SELECT request_id FROM ledger_requests))",
                (*ended, now - UNRECORDED_CLAIM_SECONDS),
            )
            for start in range(0, len(destinations), _CHUNK):
                chunk = list(destinations[start : start + _CHUNK])
                db.executemany(
                    "INSERT INTO ledger_recalls (destination, request_id, claimed)"
                    " VALUES (?, ?, ?) ON CONFLICT (destination) DO NOTHING",
                    [(destination, request_id, now) for destination in chunk],
                )
                held.update(
                    db.execute(
                        "SELECT destination, request_id FROM ledger_recalls WHERE"
                        f" destination IN ({', '.join('?' * len(chunk))}) AND request_id <> ?",
                        (*chunk, request_id),
                    )
                )
        return held

    async def held_recalls(self, destinations: Sequence[str]) -> dict[str, str]:
        """Which of ``destinations`` a restore not yet ended holds (a dry run's look;
        nothing is claimed)."""

        def work() -> dict[str, str]:
            ended = tuple(sorted(TERMINAL))
            held: dict[str, str] = {}
            with self._db.transaction() as db:
                for start in range(0, len(destinations), _CHUNK):
                    chunk = list(destinations[start : start + _CHUNK])
                    held.update(
                        db.execute(
                            "SELECT c.destination, c.request_id FROM ledger_recalls c"
                            " JOIN ledger_requests r ON r.request_id = c.request_id"
                            f" WHERE c.destination IN ({', '.join('?' * len(chunk))})"
                            f" AND r.state NOT IN ({', '.join('?' * len(ended))})",
                            (*chunk, *ended),
                        )
                    )
            return held

        return await self._run(work, "read")

    async def release_recalls(self, request_id: str) -> None:
        """Give up a request's claims (it was not accepted after all)."""

        def work() -> None:
            with self._db.transaction() as db:
                db.execute("DELETE FROM ledger_recalls WHERE request_id = ?", (request_id,))

        await self._run(work, "claim")

    # -- restored copies ------------------------------------------------------------------
    def _wrote(self, db: Cursor, request_id: str, job_id: str, destinations: Sequence[str]) -> None:
        """A restore's own job copied these files: record each as Datastore's copy, with the
        catalogue's size and adler32 (a file without both is never recorded, so never removed)
        and its expiry."""
        if not destinations:
            return
        now = self._clock()
        expires = expiry_of(now, self._retention_days)
        rows = []
        for destination in destinations:
            found = db.execute(
                "SELECT bytes, checksum FROM ledger_files WHERE job_id = ? AND destination = ?",
                (job_id, destination),
            )
            if found and found[0][0] is not None and is_real_checksum(found[0][1]):
                rows.append((destination, request_id, found[0][0], found[0][1], now, expires))
        db.executemany(
            "INSERT INTO ledger_copies (destination, request_id, bytes, checksum, written_at,"
            " expires_at, state, lease_until) VALUES (?, ?, ?, ?, ?, ?, 'KEPT', 0)"
            " ON CONFLICT (destination) DO UPDATE SET request_id = excluded.request_id,"
            " bytes = excluded.bytes, checksum = excluded.checksum,"
            " written_at = excluded.written_at, expires_at = excluded.expires_at,"
            " state = 'KEPT', lease_until = 0, settled_at = NULL, note = NULL",
            rows,
        )

    def _copies_stay(self, db: Cursor, record: RequestRecord) -> datetime | None:
        """A restore just ended: its copies stay ``retention_days`` from now at least (each
        copy Datastore wrote at its files' destinations); that moment, if it copied any."""
        if record.kind != "restore" or not any(job.files_done for job in record.jobs):
            return None
        destinations = [
            row[0]
            for row in db.execute(
                "SELECT f.destination FROM ledger_files f JOIN ledger_jobs j"
                " ON j.job_id = f.job_id WHERE j.request_id = ? AND f.state = ?",
                (record.request_id, FINISHED),
            )
        ]
        self._copies_used(db, destinations)
        return datetime.fromtimestamp(expiry_of(self._clock(), self._retention_days), UTC)

    def _copies_used(self, db: Cursor, destinations: Sequence[str]) -> None:
        """A new restore uses these destinations (online, followed or recalled again): a copy
        Datastore wrote there stays ``retention_days`` from now at least."""
        expires = expiry_of(self._clock(), self._retention_days)
        db.executemany(
            "UPDATE ledger_copies SET expires_at = ? WHERE destination = ? AND state = 'KEPT'"
            " AND expires_at < ?",
            [(expires, destination, expires) for destination in destinations],
        )

    async def claim_expired(self, *, limit: int, lease_seconds: float) -> list[ExpiredCopy]:
        """Copies past their expiry, each leased to this caller (another replica skips them
        meanwhile), and whether a restore not yet ended still needs each."""
        return await self._run(lambda: self._claim_expired(limit, lease_seconds), "copies")

    def _claim_expired(self, limit: int, lease_seconds: float) -> list[ExpiredCopy]:
        now = self._clock()
        skip = " FOR UPDATE SKIP LOCKED" if self._db.postgres else ""
        ended = tuple(sorted(TERMINAL))
        ended_marks = ", ".join("?" * len(ended))
        with self._db.transaction() as db:
            rows = db.execute(
                "SELECT destination, bytes, checksum, expires_at FROM ledger_copies"
                " WHERE state = 'KEPT' AND expires_at <= ? AND lease_until <= ?"
                f" ORDER BY expires_at LIMIT ?{skip}",
                (now, now, limit),
            )
            db.executemany(
                "UPDATE ledger_copies SET lease_until = ? WHERE destination = ?",
                [(now + lease_seconds, row[0]) for row in rows],
            )
            needed: set[str] = set()
            for start in range(0, len(rows), _CHUNK):
                chunk = [row[0] for row in rows[start : start + _CHUNK]]
                needed.update(
                    row[0]
                    for row in db.execute(
                        "SELECT DISTINCT f.destination FROM ledger_files f"
                        " JOIN ledger_jobs j ON j.job_id = f.job_id"
                        " JOIN ledger_requests r ON r.request_id = j.request_id"
                        f" WHERE f.destination IN ({', '.join('?' * len(chunk))})"
                        f" AND r.kind = 'restore' AND r.state NOT IN ({ended_marks})",
                        (*chunk, *ended),
                    )
                )
        return [
            ExpiredCopy(
                RecordedCopy(row[0], int(row[1]), str(row[2]), float(row[3])),
                needed=row[0] in needed,
            )
            for row in rows
        ]

    async def settle_copy(self, destination: str, outcome: str, why: str) -> None:
        """What the cleaner did: removed, forgotten (not ours any more, or gone), or kept
        (its lease given back: looked at again on a later pass)."""

        def work() -> None:
            with self._db.transaction() as db:
                if outcome == "keep":
                    db.execute(
                        "UPDATE ledger_copies SET lease_until = 0 WHERE destination = ?",
                        (destination,),
                    )
                    return
                db.execute(
                    "UPDATE ledger_copies SET state = ?, settled_at = ?, note = ?,"
                    " lease_until = 0 WHERE destination = ? AND state = 'KEPT'",
                    (
                        "REMOVED" if outcome == "remove" else "FORGOTTEN",
                        self._clock(),
                        why[:1000],
                        destination,
                    ),
                )

        await self._run(work, "copies")

    async def copy_record(self, destination: str) -> tuple[str, float, str | None] | None:
        """(state, expires_at, note) of the copy recorded at ``destination``; None if none."""

        def work() -> tuple[str, float, str | None] | None:
            with self._db.transaction() as db:
                rows = db.execute(
                    "SELECT state, expires_at, note FROM ledger_copies WHERE destination = ?",
                    (destination,),
                )
            return (rows[0][0], float(rows[0][1]), rows[0][2]) if rows else None

        return await self._run(work, "read")

    # -- the restore queue ----------------------------------------------------------------
    async def admit(self, entry: Waiting, draft: str, limits: Limits) -> tuple[str, int] | None:
        """Decide, atomically with every other decision, whether the restore ``entry``
        starts now (None; its share is reserved until it is recorded) or waits QUEUED
        (why, and its position; ``draft`` kept to start it later)."""
        return await self._run(lambda: self._admit(entry, draft, limits), "queue")

    def _admit(self, entry: Waiting, draft: str, limits: Limits) -> tuple[str, int] | None:
        with self._db.transaction() as db:
            now = self._queue_lock(db)
            usage, facility = self._usage(db)
            queue = [*self._waiting(db), entry]
            turn = take_turns(queue, usage, facility, limits)
            started = entry.request_id in turn.start
            why = turn.waiting.get(entry.request_id)
            db.execute(
                "INSERT INTO ledger_queue (request_id, owner, priority, queued_at, files, bytes,"
                " draft, state, lease_until, why) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (request_id) DO NOTHING",
                (
                    entry.request_id,
                    entry.owner,
                    entry.priority,
                    entry.queued_at,
                    entry.asked.files,
                    entry.asked.bytes,
                    draft,
                    "ADMITTED" if started else "QUEUED",
                    now + START_LEASE_SECONDS if started else 0,
                    why,
                ),
            )
        if started:
            return None
        return (why or "waiting its turn", position_in(queue, entry.request_id) or len(queue))

    async def claim_startable(self, limits: Limits) -> list[tuple[str, str, str]]:
        """Queued restores that fit now, in the queue's order, each marked STARTING (its
        share reserved, leased to this caller): (request id, owner, draft)."""
        return await self._run(lambda: self._claim_startable(limits), "queue")

    def _claim_startable(self, limits: Limits) -> list[tuple[str, str, str]]:
        with self._db.transaction() as db:
            now = self._queue_lock(db)
            usage, facility = self._usage(db)
            turn = take_turns(self._waiting(db), usage, facility, limits)
            db.executemany(
                "UPDATE ledger_queue SET why = ? WHERE request_id = ?",
                [(why, request_id) for request_id, why in turn.waiting.items()],
            )
            started = []
            for request_id in turn.start:
                db.execute(
                    "UPDATE ledger_queue SET state = 'STARTING', lease_until = ?, why = NULL"
                    " WHERE request_id = ?",
                    (now + START_LEASE_SECONDS, request_id),
                )
                [(owner, draft)] = db.execute(
                    "SELECT owner, draft FROM ledger_queue WHERE request_id = ?", (request_id,)
                )
                started.append((request_id, owner, draft))
        return started

    async def not_started(self, request_id: str, error: str | None) -> None:
        """Starting the restore failed: back in the queue with why (``error``), or, for one
        never queued (refused on the request path), forgotten (``error`` None)."""

        def work() -> None:
            with self._db.transaction() as db:
                if error is None:
                    db.execute(
                        "DELETE FROM ledger_queue WHERE request_id = ? AND state = 'ADMITTED'",
                        (request_id,),
                    )
                else:
                    db.execute(
                        "UPDATE ledger_queue SET state = 'QUEUED', lease_until = 0, why = ?"
                        " WHERE request_id = ?",
                        (f"starting it failed, tried again shortly: {error}"[:1000], request_id),
                    )

        await self._run(work, "queue")

    async def drop_queued(self, request_id: str) -> bool:
        """Take a restore out of the queue (cancelled before it started); whether it was
        waiting there."""

        def work() -> bool:
            with self._db.transaction() as db:
                rows = db.execute(
                    "DELETE FROM ledger_queue WHERE request_id = ? AND state = 'QUEUED'"
                    " RETURNING request_id",
                    (request_id,),
                )
            return bool(rows)

        return await self._run(work, "queue")

    async def queue(self) -> list[QueueRow]:
        """The restores waiting (QUEUED) or starting, in the queue's order."""

        def work() -> list[QueueRow]:
            with self._db.transaction() as db:
                rows = db.execute(
                    "SELECT request_id, owner, priority, queued_at, files, bytes, state, why,"
                    " draft FROM ledger_queue"
                )
            waiting = [
                Waiting(r[0], r[1], int(r[2]), float(r[3]), Usage(int(r[4]), int(r[5])))
                for r in rows
                if r[6] == "QUEUED"
            ]
            by_id = {r[0]: r for r in rows}
            ordered = [by_id[w.request_id] for w in queue_order(waiting)]
            ordered += [r for r in rows if r[6] != "QUEUED"]
            return [
                QueueRow(
                    request_id=r[0],
                    owner=r[1],
                    priority=int(r[2]),
                    queued_at=float(r[3]),
                    files=int(r[4]),
                    bytes=int(r[5]),
                    state="QUEUED" if r[6] == "QUEUED" else "STARTING",
                    position=position_in(waiting, r[0]),
                    why=r[7],
                    draft=r[8],
                )
                for r in ordered
            ]

        return await self._run(work, "read")

    async def usage(self) -> tuple[dict[str, Usage], Usage]:
        """What each user's restores are recalling now, and everyone's (see ``_usage``)."""

        def work() -> tuple[dict[str, Usage], Usage]:
            with self._db.transaction() as db:
                return self._usage(db)

        return await self._run(work, "read")

    def _queue_lock(self, db: Cursor) -> float:
        """Take the queue's lock (PostgreSQL: an advisory lock for this transaction; SQLite's
        write lock is already held) and clear leases run out; now."""
        if self._db.postgres:
            db.execute("SELECT pg_advisory_xact_lock(?)", (QUEUE_LOCK,))
        now = self._clock()
        # Recorded by the ledger feed after its own record was deferred: its files count now.
        db.execute(
            "DELETE FROM ledger_queue WHERE state <> 'QUEUED'"
            " AND request_id IN (SELECT request_id FROM ledger_requests)"
        )
        # Let start on the request path but never recorded (its gateway stopped): forgotten.
        db.execute("DELETE FROM ledger_queue WHERE state = 'ADMITTED' AND lease_until < ?", (now,))
        # Started from the queue but never recorded: queued again, in its place.
        db.execute(
            "UPDATE ledger_queue SET state = 'QUEUED', lease_until = 0"
            " WHERE state = 'STARTING' AND lease_until < ?",
            (now,),
        )
        return now

    def _waiting(self, db: Cursor) -> list[Waiting]:
        return [
            Waiting(r[0], r[1], int(r[2]), float(r[3]), Usage(int(r[4]), int(r[5])))
            for r in db.execute(
                "SELECT request_id, owner, priority, queued_at, files, bytes FROM ledger_queue"
                " WHERE state = 'QUEUED'"
            )
        ]

    def _usage(self, db: Cursor) -> tuple[dict[str, Usage], Usage]:
        """What each user's restores are recalling now (files not ended of restores not
        ended, followed files aside) plus the shares reserved for restores let start and
        not yet recorded; and the sum over everyone."""
        ended = tuple(sorted(TERMINAL))
        marks = ", ".join("?" * len(ended))
        usage: dict[str, Usage] = {}
        rows = db.execute(
            "SELECT r.owner, COUNT(*), COALESCE(SUM(f.bytes), 0) FROM ledger_requests r"
            " JOIN ledger_jobs j ON j.request_id = r.request_id"
            " JOIN ledger_files f ON f.job_id = j.job_id"
            f" WHERE r.kind = 'restore' AND r.state NOT IN ({marks})"
            f" AND f.state NOT IN ({marks}) AND f.follows IS NULL GROUP BY r.owner",
            (*ended, *ended),
        )
        rows += db.execute(
            "SELECT owner, SUM(files), SUM(bytes) FROM ledger_queue"
            " WHERE state IN ('ADMITTED', 'STARTING') GROUP BY owner"
        )
        for owner, files, size in rows:
            usage[owner or ""] = usage.get(owner or "", Usage()) + Usage(int(files), int(size))
        total = Usage()
        for one in usage.values():
            total = total + one
        return usage, total

    async def stop_following(self, request_id: str) -> None:
        """The request was cancelled: its files still following other restores' transfers
        end CANCELED (those transfers go on for their own requests)."""

        def work() -> None:
            with self._db.transaction() as db:
                if not self._exists(db, request_id):
                    return
                db.execute(
                    "UPDATE ledger_files SET state = ?, reason = ? WHERE job_id = ?"
                    f" AND state NOT IN ({', '.join('?' * len(TERMINAL))})",
                    (
                        CANCELED,
                        "cancelled; the restore recalling it for others goes on",
                        in_flight_job_id(request_id),
                        *sorted(TERMINAL),
                    ),
                )
                self._follower_moved(db, request_id)

        await self._run(work, "cancel")

    def _release(self, db: Cursor, request_id: str, destinations: Sequence[str]) -> None:
        db.executemany(
            "DELETE FROM ledger_recalls WHERE destination = ? AND request_id = ?",
            [(destination, request_id) for destination in destinations],
        )

    def _lead(self, db: Cursor, leader: str, moves: Sequence[tuple[str, str, str | None]]) -> None:
        """The leader's files moved: the files of other restores following them move too
        (forward only), and those requests are refreshed."""
        touched: set[str] = set()
        for destination, state, reason in moves:
            rows = db.execute(
                "SELECT f.job_id, f.state, j.request_id FROM ledger_files f"
                " JOIN ledger_jobs j ON j.job_id = f.job_id"
                " WHERE f.follows = ? AND f.destination = ?",
                (leader, destination),
            )
            for job_id, known, follower in rows:
                if may_advance(known, state):
                    db.execute(
                        "UPDATE ledger_files SET state = ?, reason = ?"
                        " WHERE job_id = ? AND destination = ?",
                        (state, reason, job_id, destination),
                    )
                    touched.add(follower)
        for follower in sorted(touched):
            self._follower_moved(db, follower)

    def _follower_moved(self, db: Cursor, request_id: str) -> None:
        if not self._exists(db, request_id):  # locks it (PostgreSQL)
            return
        job_id = in_flight_job_id(request_id)
        states = [
            row[0]
            for row in db.execute("SELECT state FROM ledger_files WHERE job_id = ?", (job_id,))
        ]
        if states:
            db.execute(
                "UPDATE ledger_jobs SET state = ? WHERE job_id = ?",
                (following_job_state(states), job_id),
            )
        self._refresh(db, request_id)

    def _leader_ended(self, db: Cursor, leader: str, state: str) -> None:
        """The leader ended: files of others still waiting on it will not be copied by it."""
        rows = db.execute(
            "SELECT f.job_id, f.destination, j.request_id FROM ledger_files f"
            " JOIN ledger_jobs j ON j.job_id = f.job_id"
            f" WHERE f.follows = ? AND f.state NOT IN ({', '.join('?' * len(TERMINAL))})",
            (leader, *sorted(TERMINAL)),
        )
        reason = f"the restore recalling it for this one too ended {state} before copying it"
        db.executemany(
            "UPDATE ledger_files SET state = ?, reason = ? WHERE job_id = ? AND destination = ?",
            [(FAILED, reason, job_id, destination) for job_id, destination, _ in rows],
        )
        for follower in sorted({row[2] for row in rows}):
            self._follower_moved(db, follower)

    def _catch_up(self, db: Cursor, request_id: str) -> None:
        """A request recorded after the transfers it follows moved (or its leader ended):
        its files take their leaders' states now."""
        rows = db.execute(
            "SELECT f.destination, f.follows, lf.state, lf.reason, lr.state"
            " FROM ledger_files f JOIN ledger_requests lr ON lr.request_id = f.follows"
            " LEFT JOIN ledger_jobs lj ON lj.request_id = f.follows"
            " LEFT JOIN ledger_files lf ON lf.job_id = lj.job_id"
            " AND lf.destination = f.destination"
            " WHERE f.job_id = ?",
            (in_flight_job_id(request_id),),
        )
        job_id = in_flight_job_id(request_id)
        moves: dict[str, tuple[str, str | None]] = {}
        for destination, _, state, reason, leader_state in rows:
            if state is not None:
                moves[destination] = (normalise(state), reason)
            elif leader_state in TERMINAL and destination not in moves:
                moves[destination] = (
                    FAILED,
                    f"the restore recalling it for this one too ended {leader_state} "
                    "before copying it",
                )
        db.executemany(
            "UPDATE ledger_files SET state = ?, reason = ? WHERE job_id = ? AND destination = ?",
            [(state, reason, job_id, dest) for dest, (state, reason) in moves.items()],
        )
        if moves:
            self._follower_moved(db, request_id)

    async def delayed(self, delayed: RequestDelayed) -> None:
        """A step will be retried: say so in ``waiting_on`` until the request moves on."""
        note = (f"a retry at {delayed.retry_at:%Y-%m-%d %H:%M:%S} UTC after: {delayed.reason}")[
            :1000
        ]

        def work() -> None:
            with self._db.transaction() as db:
                db.execute(
                    "UPDATE ledger_requests SET retry_note = ? WHERE request_id = ?",
                    (note, delayed.request_id),
                )

        await self._run(work, "delayed")

    async def fail(self, failed: RequestFailed) -> None:
        """The request was given up: FAILED with its reason (the first reason stays)."""
        await self._run(lambda: self._fail(failed), "fail")

    def _fail(self, failed: RequestFailed) -> None:
        with self._db.transaction() as db:
            if not self._exists(db, failed.request_id):
                return
            db.execute(
                "UPDATE ledger_requests SET failure_class = ?, failure_reason = ?"
                " WHERE request_id = ? AND failure_reason IS NULL",
                (failed.failure_class, failed.reason[:2000], failed.request_id),
            )
            self._refresh(db, failed.request_id)

    async def purge(self, *, older_than_seconds: float) -> int:
        """Forget ended requests not updated for this long; how many were forgotten."""
        return await self._run(lambda: self._purge(older_than_seconds), "purge")

    def _purge(self, older_than_seconds: float) -> int:
        cutoff = self._clock() - older_than_seconds
        terminal = ("FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED")
        with self._db.transaction() as db:
            old = [
                row[0]
                for row in db.execute(
                    "SELECT request_id FROM ledger_requests WHERE updated < ?"
                    f" AND state IN ({', '.join('?' * len(terminal))})",
                    (cutoff, *terminal),
                )
            ]
            for request_id in old:
                db.execute(
                    "DELETE FROM ledger_files WHERE job_id IN"
                    " (SELECT job_id FROM ledger_jobs WHERE request_id = ?)",
                    (request_id,),
                )
                db.execute("DELETE FROM ledger_jobs WHERE request_id = ?", (request_id,))
                db.execute("DELETE FROM ledger_investigations WHERE request_id = ?", (request_id,))
                db.execute("DELETE FROM ledger_outbox WHERE request_id = ?", (request_id,))
                db.execute("DELETE FROM ledger_recalls WHERE request_id = ?", (request_id,))
                db.execute("DELETE FROM ledger_requests WHERE request_id = ?", (request_id,))
        return len(old)

    async def audit(self, change: AuditEntry) -> None:
        """Keep an admin's state set by hand (a change recorded before is kept as it was)."""

        def work() -> None:
            with self._db.transaction() as db:
                db.execute(
                    "INSERT INTO ledger_audit (change_id, at, who, dataset_id, old_state,"
                    " new_state, datafiles, deletion_date, reason)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (change_id) DO NOTHING",
                    (
                        change.change_id,
                        change.at,
                        change.who,
                        change.dataset_id,
                        change.old_state,
                        change.new_state,
                        int(change.datafiles),
                        change.deletion_date,
                        change.reason,
                    ),
                )

        await self._run(work, "audit")

    async def audit_trail(self, dataset_id: int) -> list[AuditEntry]:
        """The states set by hand on a dataset, oldest first."""

        def work() -> list[AuditEntry]:
            with self._db.transaction() as db:
                rows = db.execute(
                    "SELECT change_id, at, who, dataset_id, old_state, new_state, datafiles,"
                    " deletion_date, reason FROM ledger_audit WHERE dataset_id = ?"
                    " ORDER BY at, change_id",
                    (dataset_id,),
                )
            return [
                AuditEntry(
                    change_id=row[0],
                    at=float(row[1]),
                    who=row[2],
                    dataset_id=int(row[3]),
                    old_state=row[4],
                    new_state=row[5],
                    datafiles=bool(row[6]),
                    deletion_date=row[7],
                    reason=row[8],
                )
                for row in rows
            ]

        return await self._run(work, "read")

    async def job_owner(self, job_id: str) -> JobOwner | None:
        """Who asked for the request an FTS job belongs to; None for a job the ledger does not
        know (another service's, one submitted straight to FTS, or forgotten)."""

        def work() -> JobOwner | None:
            with self._db.transaction() as db:
                rows = db.execute(
                    "SELECT r.request_id, r.owner, r.kind FROM ledger_jobs j"
                    " JOIN ledger_requests r ON r.request_id = j.request_id WHERE j.job_id = ?",
                    (job_id,),
                )
            if not rows:
                return None
            request_id, owner, kind = rows[0]
            return JobOwner(request_id=request_id, owner=owner, kind=kind)

        return await self._run(work, "read")

    async def in_flight(self, owner: str) -> Usage:
        """Files (and bytes) of ``owner``'s restores not yet ended that FTS has not ended
        either: what they are having recalled from tape now (files already online, and
        files ended, do not count)."""
        ended = tuple(sorted(TERMINAL))
        marks = ", ".join("?" * len(ended))

        def work() -> Usage:
            with self._db.transaction() as db:
                [(files, size)] = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(f.bytes), 0) FROM ledger_requests r"
                    " JOIN ledger_jobs j ON j.request_id = r.request_id"
                    " JOIN ledger_files f ON f.job_id = j.job_id"
                    f" WHERE r.owner = ? AND r.kind = 'restore' AND r.state NOT IN ({marks})"
                    f" AND f.state NOT IN ({marks}) AND f.follows IS NULL",
                    (owner, *ended, *ended),
                )
            return Usage(int(files), int(size))

        return await self._run(work, "read")

    async def knows(self, request_id: str) -> bool:
        def work() -> bool:
            with self._db.transaction() as db:
                return self._exists(db, request_id)

        return await self._run(work, "read")

    def _exists(self, db: Cursor, request_id: str) -> bool:
        """Whether the request is recorded; on PostgreSQL also locks its row for the rest of
        the transaction, so replicas apply one request's events one after the other (each
        reads, decides and writes; SQLite's write lock already serialises them)."""
        lock = " FOR UPDATE" if self._db.postgres else ""
        query = f"SELECT 1 FROM ledger_requests WHERE request_id = ?{lock}"
        return bool(db.execute(query, (request_id,)))

    def _refresh(self, db: Cursor, request_id: str) -> None:
        """After an event moved the request: store its state as it now reads (``_read``
        never steps back); a retry it waited for has happened."""
        stored = db.execute("SELECT state FROM ledger_requests WHERE request_id = ?", (request_id,))
        db.execute(
            "UPDATE ledger_requests SET retry_note = NULL WHERE request_id = ?", (request_id,)
        )
        record = self._read(db, request_id)
        if record is not None:
            db.execute(
                "UPDATE ledger_requests SET state = ?, updated = ? WHERE request_id = ?",
                (record.state, self._clock(), request_id),
            )
            if record.state in TERMINAL and stored and stored[0][0] not in TERMINAL:
                self._completed(db, record)
                if record.kind == "restore":
                    db.execute("DELETE FROM ledger_recalls WHERE request_id = ?", (request_id,))
                    self._leader_ended(db, request_id, record.state)

    def _completed(self, db: Cursor, record: RequestRecord) -> None:
        """The request has just ended: put its ``request.completed`` in the outbox, for the
        broker and for whoever it names, in this same transaction. The outbox's key
        (request, channel) makes it once per request whatever else happens later."""
        request_id = record.request_id
        counts: dict[str, tuple[int, int]] = {}
        for state, files, size in db.execute(
            "SELECT f.state, COUNT(*), COALESCE(SUM(f.bytes), 0) FROM ledger_files f"
            " JOIN ledger_jobs j ON j.job_id = f.job_id WHERE j.request_id = ?"
            " GROUP BY f.state",
            (request_id,),
        ):
            counts[state] = (int(files), int(size))
        reasons = [
            row[0]
            for row in db.execute(
                "SELECT f.reason FROM ledger_files f JOIN ledger_jobs j ON j.job_id = f.job_id"
                " WHERE j.request_id = ? AND f.state IN (?, ?) AND f.reason IS NOT NULL"
                " ORDER BY j.position, f.destination LIMIT 10",
                (request_id, FAILED, CANCELED),
            )
        ]
        now = self._clock()
        completed = request_completed(
            request_id=request_id,
            kind=cast(TransferKind, record.kind),
            owner=record.owner,
            state=cast(EndState, record.state),
            file_counts=counts,
            failure=(
                (record.failure.failure_class, record.failure.reason) if record.failure else None
            ),
            reasons=reasons,
            public_url=self._public_url,
            completed_at=datetime.fromtimestamp(now, UTC),
            instrument=record.instrument,
            copies_until=self._copies_stay(db, record),
        )
        targets = record.notify or {}
        channels: list[tuple[Channel, str | None]] = [("broker", None)]
        channels += [(c, targets[c]) for c in ("webhook", "email") if targets.get(c)]
        message_id = str(completion_message_id(request_id))
        payload = completed.model_dump_json()
        db.executemany(
            "INSERT INTO ledger_outbox (request_id, channel, target, message_id, payload, state,"
            " due) VALUES (?, ?, ?, ?, ?, 'PENDING', ?)"
            " ON CONFLICT (request_id, channel) DO NOTHING",
            [(request_id, c, target, message_id, payload, now) for c, target in channels],
        )

    # -- the outbox ----------------------------------------------------------------------
    async def claim_due(self, *, limit: int, lease_seconds: float) -> list[Delivery]:
        """Notifications due now, each leased to this caller for ``lease_seconds`` (another
        replica skips them meanwhile; a lease that runs out, its holder gone, frees them)."""
        return await self._run(lambda: self._claim_due(limit, lease_seconds), "outbox")

    def _claim_due(self, limit: int, lease_seconds: float) -> list[Delivery]:
        now = self._clock()
        skip = " FOR UPDATE SKIP LOCKED" if self._db.postgres else ""
        with self._db.transaction() as db:
            rows = db.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM ledger_outbox WHERE state = 'PENDING'"
                f" AND due <= ? AND lease_until <= ? ORDER BY due LIMIT ?{skip}",
                (now, now, limit),
            )
            db.executemany(
                "UPDATE ledger_outbox SET lease_until = ?, attempts = attempts + 1"
                " WHERE request_id = ? AND channel = ?",
                [(now + lease_seconds, row[0], row[1]) for row in rows],
            )
        return [_delivery(row, attempts=int(row[6]) + 1) for row in rows]

    async def delivered(self, delivery: Delivery) -> None:
        def work() -> None:
            with self._db.transaction() as db:
                db.execute(
                    "UPDATE ledger_outbox SET state = 'SENT', sent_at = ?, last_error = NULL"
                    " WHERE request_id = ? AND channel = ?",
                    (self._clock(), delivery.request_id, delivery.channel),
                )

        await self._run(work, "outbox")

    async def not_delivered(
        self, delivery: Delivery, error: str, *, retry_in: float | None
    ) -> None:
        """A send failed: due again in ``retry_in`` seconds, or given up (None)."""

        def work() -> None:
            with self._db.transaction() as db:
                if retry_in is None:
                    db.execute(
                        "UPDATE ledger_outbox SET state = 'GAVE_UP', last_error = ?"
                        " WHERE request_id = ? AND channel = ?",
                        (error[:2000], delivery.request_id, delivery.channel),
                    )
                else:
                    db.execute(
                        "UPDATE ledger_outbox SET due = ?, lease_until = 0, last_error = ?"
                        " WHERE request_id = ? AND channel = ?",
                        (
                            self._clock() + retry_in,
                            error[:2000],
                            delivery.request_id,
                            delivery.channel,
                        ),
                    )

        await self._run(work, "outbox")

    async def deliveries(self, request_id: str) -> list[Delivery]:
        """A request's notifications (none before it ended), by channel."""

        def work() -> list[Delivery]:
            with self._db.transaction() as db:
                rows = db.execute(
                    f"SELECT {_DELIVERY_COLUMNS} FROM ledger_outbox WHERE request_id = ?"
                    " ORDER BY channel",
                    (request_id,),
                )
            return [_delivery(row, attempts=int(row[6])) for row in rows]

        return await self._run(work, "read")

    # -- reads ---------------------------------------------------------------------------
    async def operations(self, *, since_seconds: float, limit: int) -> Operations:
        """For operators: requests that ended with failures in the last ``since_seconds``,
        by failure class (none recorded: ``system``, FTS failing files) and the ``limit``
        latest; every request still going, its FTS jobs still going (the first ``limit`` of
        them, oldest request first) and the oldest of those requests."""
        return await self._run(lambda: self._operations(since_seconds, limit), "operations")

    def _operations(self, since_seconds: float, limit: int) -> Operations:
        since = self._clock() - since_seconds
        ended = tuple(sorted(TERMINAL))
        marks = ", ".join("?" * len(ended))
        klass = "COALESCE(failure_class, 'system')"
        failed = "state IN (?, ?) AND updated >= ?"
        with self._db.transaction() as db:
            counts = db.execute(
                f"SELECT {klass}, state, COUNT(*) FROM ledger_requests WHERE {failed}"
                f" GROUP BY {klass}, state ORDER BY {klass}, state",
                (FAILED, FINISHEDDIRTY, since),
            )
            recent = db.execute(
                f"SELECT request_id, kind, owner, state, {klass}, failure_reason, updated"
                f" FROM ledger_requests WHERE {failed} ORDER BY updated DESC, request_id"
                " LIMIT ?",
                (FAILED, FINISHEDDIRTY, since, limit),
            )
            going = f"r.state NOT IN ({marks})"
            [(requests,)] = db.execute(
                f"SELECT COUNT(*) FROM ledger_requests r WHERE {going}", ended
            )
            oldest = db.execute(
                "SELECT r.request_id, r.kind, r.owner, r.state, r.created, r.updated"
                f" FROM ledger_requests r WHERE {going} ORDER BY r.created, r.request_id"
                " LIMIT 1",
                ended,
            )
            # Jobs FTS has not ended (or not reported yet) of requests still going.
            job_going = f"{going} AND (j.state IS NULL OR j.state NOT IN ({marks}))"
            [(jobs_total,)] = db.execute(
                "SELECT COUNT(*) FROM ledger_jobs j"
                f" JOIN ledger_requests r ON r.request_id = j.request_id WHERE {job_going}",
                (*ended, *ended),
            )
            jobs = db.execute(
                "SELECT j.job_id, j.request_id, r.kind, r.owner, j.state, COUNT(f.destination),"
                f" COALESCE(SUM(CASE WHEN f.state IN ({marks}) THEN 1 ELSE 0 END), 0)"
                " FROM ledger_jobs j JOIN ledger_requests r ON r.request_id = j.request_id"
                " LEFT JOIN ledger_files f ON f.job_id = j.job_id"
                f" WHERE {job_going}"
                " GROUP BY j.job_id, j.request_id, r.kind, r.owner, j.state, r.created,"
                " j.position ORDER BY r.created, j.request_id, j.position LIMIT ?",
                (*ended, *ended, *ended, limit),
            )
        return Operations(
            since=since,
            failures=tuple(FailureCount(row[0], row[1], int(row[2])) for row in counts),
            recent_failures=tuple(
                RecentFailure(row[0], row[1], row[2], row[3], row[4], row[5], float(row[6]))
                for row in recent
            ),
            active_jobs=tuple(
                ActiveJob(row[0], row[1], row[2], row[3], row[4], int(row[5]), int(row[6]))
                for row in jobs
            ),
            active_jobs_total=int(jobs_total),
            active_requests=int(requests),
            oldest_active=(
                ActiveRequest(
                    request_id=oldest[0][0],
                    kind=oldest[0][1],
                    owner=oldest[0][2],
                    state=oldest[0][3],
                    created=float(oldest[0][4]),
                    updated=float(oldest[0][5]),
                )
                if oldest
                else None
            ),
        )

    async def get(self, request_id: str) -> RequestRecord | None:
        return await self._run(lambda: self._get(request_id), "read")

    def _get(self, request_id: str) -> RequestRecord | None:
        with self._db.transaction() as db:
            return self._read(db, request_id)

    async def page(self, query: RequestQuery) -> RequestPage:
        """One page of requests, newest first, that match every filter of ``query``."""
        return await self._run(lambda: self._page(query), "list")

    def _page(self, query: RequestQuery) -> RequestPage:
        sql, parameters = listing_query(query)
        with self._db.transaction() as db:
            rows = db.execute(sql, parameters)
            records = self._records(db, rows[: query.limit])
        last = records[-1] if len(rows) > query.limit else None
        return RequestPage(
            tuple(records), None if last is None else Position(last.created, last.request_id)
        )

    def _read(self, db: Cursor, request_id: str) -> RequestRecord | None:
        rows = db.execute(
            f"SELECT {REQUEST_COLUMNS} FROM ledger_requests WHERE request_id = ?", (request_id,)
        )
        records = self._records(db, rows)
        return records[0] if records else None

    def _records(self, db: Cursor, rows: Sequence[tuple[Any, ...]]) -> list[RequestRecord]:
        """The requests of these ``ledger_requests`` rows, in their order, with their jobs'
        files counted by state and their notifications (four queries for any number of requests)."""
        if not rows:
            return []
        ids = [row[0] for row in rows]
        marks = ", ".join("?" * len(ids))
        jobs: dict[str, list[tuple[str, str | None]]] = {request_id: [] for request_id in ids}
        for request_id, job_id, state in db.execute(
            "SELECT request_id, job_id, state FROM ledger_jobs"
            f" WHERE request_id IN ({marks}) ORDER BY position, job_id",
            ids,
        ):
            jobs[request_id].append((job_id, state))
        counts: dict[str, dict[str, tuple[int, int]]] = {}
        for job_id, state, files, size in db.execute(
            "SELECT f.job_id, f.state, COUNT(*), COALESCE(SUM(f.bytes), 0) FROM ledger_files f"
            f" JOIN ledger_jobs j ON j.job_id = f.job_id WHERE j.request_id IN ({marks})"
            " GROUP BY f.job_id, f.state",
            ids,
        ):
            counts.setdefault(job_id, {})[state] = (int(files), int(size))
        notifications: dict[str, list[Delivery]] = {request_id: [] for request_id in ids}
        for row in db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM ledger_outbox WHERE request_id IN ({marks})"
            " ORDER BY request_id, channel",
            ids,
        ):
            notifications[row[0]].append(_delivery(row, attempts=int(row[6])))
        return [record_of(row, jobs[row[0]], counts, notifications[row[0]]) for row in rows]


def _delivery(row: Sequence[Any], *, attempts: int) -> Delivery:
    """An outbox row (``_DELIVERY_COLUMNS``) as a delivery."""
    request_id, channel, target, message_id, payload, state, _, last_error = row
    return Delivery(request_id, channel, target, message_id, payload, state, attempts, last_error)
