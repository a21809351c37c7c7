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
after FTS has forgotten the jobs.

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
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from datastore_common.domain.ledger import (
    LedgerJob,
    NewRequest,
    Position,
    RequestQuery,
    investigations_of,
)
from datastore_common.domain.states import may_advance, normalise
from datastore_common.errors import PeerUnavailableError
from datastore_common.messages import RequestDelayed, RequestFailed, TransferStatus
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
    Failure,
    JobOwner,
    RequestPage,
    RequestRecord,
    listing_query,
    record_of,
)

__all__ = [
    "ADDED_COLUMNS",
    "ADDED_TABLES",
    "SCHEMA",
    "Failure",
    "JobOwner",
    "Ledger",
    "RequestPage",
    "RequestRecord",
    "listing_query",
]

T = TypeVar("T")


class Ledger:
    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self._db = Connection(url)
        self._clock = clock

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
    async def record(self, request: NewRequest) -> None:
        """Record an accepted request and its plan; a request recorded before is kept."""
        await self._run(lambda: self._record(request), "record")

    def _record(self, request: NewRequest) -> None:
        now = self._clock()
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO ledger_requests (request_id, kind, owner, source, created, updated,"
                " state, datasets) VALUES (?, ?, ?, ?, ?, ?, 'SUBMITTED', ?)"
                " ON CONFLICT (request_id) DO NOTHING",
                (
                    request.request_id,
                    request.kind,
                    request.owner,
                    request.source,
                    now,
                    now,
                    json.dumps(list(request.datasets)),
                ),
            )
            add_investigations(db, request.request_id, investigations_of(request.datasets))
            self._add_jobs(db, request.request_id, request.jobs)

    def _add_jobs(self, db: Cursor, request_id: str, jobs: Sequence[LedgerJob]) -> None:
        db.executemany(
            "INSERT INTO ledger_jobs (job_id, request_id, position) VALUES (?, ?, ?)"
            " ON CONFLICT (job_id) DO NOTHING",
            [(job.job_id, request_id, position) for position, job in enumerate(jobs)],
        )
        db.executemany(
            "INSERT INTO ledger_files (job_id, destination, bytes, state) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (job_id, destination) DO NOTHING",
            [(job.job_id, f.destination, f.bytes, "SUBMITTED") for job in jobs for f in job.files],
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
                db.execute("DELETE FROM ledger_requests WHERE request_id = ?", (request_id,))
        return len(old)

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
        db.execute(
            "UPDATE ledger_requests SET retry_note = NULL WHERE request_id = ?", (request_id,)
        )
        record = self._read(db, request_id)
        if record is not None:
            db.execute(
                "UPDATE ledger_requests SET state = ?, updated = ? WHERE request_id = ?",
                (record.state, self._clock(), request_id),
            )

    # -- reads ---------------------------------------------------------------------------
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
        files counted by state (three queries for any number of requests)."""
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
        return [record_of(row, jobs[row[0]], counts) for row in rows]
