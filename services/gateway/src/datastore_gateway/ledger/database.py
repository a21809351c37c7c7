"""The ledger's database: its tables, their upgrades, and one connection to SQLite or PostgreSQL.

``SCHEMA`` creates the tables (``?`` placeholders throughout; PostgreSQL swaps them for ``%s``).
A ledger created by an earlier release is brought up to date when it opens: ``ADDED_COLUMNS``
are added and ``ADDED_TABLES`` filled from what it already holds, so an upgrade needs no manual
step. ``Connection`` runs one transaction at a time from worker threads; its ``Cursor`` is the
one code path both engines share.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from datastore_common.domain.ledger import investigations_of
from datastore_common.errors import ConfigurationError, PeerUnavailableError
from datastore_common.logging import get_logger
from datastore_gateway.sqlite_now import Done, write_at_once

log = get_logger(__name__)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ledger_requests (
        request_id     TEXT PRIMARY KEY,
        kind           TEXT NOT NULL,
        owner          TEXT,
        source         TEXT NOT NULL,
        created        DOUBLE PRECISION NOT NULL,
        updated        DOUBLE PRECISION NOT NULL,
        state          TEXT NOT NULL,
        registered     INTEGER NOT NULL DEFAULT 0,
        failure_class  TEXT,
        failure_reason TEXT,
        retry_note     TEXT,
        datasets       TEXT NOT NULL,
        notify         TEXT,
        left_out       TEXT,
        instrument     TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_requests_updated ON ledger_requests (updated)",
    # Listings, newest first: a user's own requests, and everyone's (admins).
    "CREATE INDEX IF NOT EXISTS ledger_requests_owner_created"
    " ON ledger_requests (owner, created, request_id)",
    "CREATE INDEX IF NOT EXISTS ledger_requests_created ON ledger_requests (created, request_id)",
    # The investigations (by name) each request's datasets belong to, for listings by one.
    """CREATE TABLE IF NOT EXISTS ledger_investigations (
        request_id    TEXT NOT NULL,
        investigation TEXT NOT NULL,
        PRIMARY KEY (request_id, investigation)
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_investigations_name"
    " ON ledger_investigations (investigation, request_id)",
    """CREATE TABLE IF NOT EXISTS ledger_jobs (
        job_id     TEXT PRIMARY KEY,
        request_id TEXT NOT NULL,
        position   INTEGER NOT NULL,
        state      TEXT,
        reason     TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_jobs_request ON ledger_jobs (request_id)",
    """CREATE TABLE IF NOT EXISTS ledger_files (
        job_id      TEXT NOT NULL,
        destination TEXT NOT NULL,
        bytes       BIGINT,
        state       TEXT NOT NULL,
        reason      TEXT,
        follows     TEXT,
        PRIMARY KEY (job_id, destination)
    )""",
    # Destinations on the user data cache a restore not yet ended is recalling a file to,
    # each held by one request (its claim, taken in the transaction that checks): a second
    # restore of the same files follows that one's transfer instead of recalling them again
    # or taking its half-written copy for a different file. Released as each file ends.
    """CREATE TABLE IF NOT EXISTS ledger_recalls (
        destination TEXT PRIMARY KEY,
        request_id  TEXT NOT NULL,
        claimed     DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_recalls_request ON ledger_recalls (request_id)",
    # Copies Datastore wrote to the user data cache for restores: what it wrote (size, adler32)
    # and until when it stays; the cleaner removes expired ones no live restore needs, after
    # checking the file there is still this one (``domain.restored_copies``).
    """CREATE TABLE IF NOT EXISTS ledger_copies (
        destination TEXT PRIMARY KEY,
        request_id  TEXT NOT NULL,
        bytes       BIGINT NOT NULL,
        checksum    TEXT NOT NULL,
        written_at  DOUBLE PRECISION NOT NULL,
        expires_at  DOUBLE PRECISION NOT NULL,
        state       TEXT NOT NULL,
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        settled_at  DOUBLE PRECISION,
        note        TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_copies_expiry ON ledger_copies (state, expires_at)",
    # Restores past a cap, waiting their turn (QUEUED), and those just let start (STARTING:
    # their share reserved until the ledger records them, then the row goes). ``draft``: the
    # restore as resolved in ICAT (``datastore_gateway.queue.RestoreDraft`` as JSON).
    """CREATE TABLE IF NOT EXISTS ledger_queue (
        request_id  TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        priority    INTEGER NOT NULL,
        queued_at   DOUBLE PRECISION NOT NULL,
        files       BIGINT NOT NULL,
        bytes       BIGINT NOT NULL,
        draft       TEXT NOT NULL,
        state       TEXT NOT NULL,
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        why         TEXT
    )""",
    # The outbox of ended requests: one row per channel (broker, webhook, email), written in
    # the transaction that ends the request, sent by the notifier (``datastore_gateway.notifier``).
    """CREATE TABLE IF NOT EXISTS ledger_outbox (
        request_id  TEXT NOT NULL,
        channel     TEXT NOT NULL,
        target      TEXT,
        message_id  TEXT NOT NULL,
        payload     TEXT NOT NULL,
        state       TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        due         DOUBLE PRECISION NOT NULL,
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        last_error  TEXT,
        sent_at     DOUBLE PRECISION,
        PRIMARY KEY (request_id, channel)
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_outbox_due ON ledger_outbox (state, due)",
    # Admins' archival states set by hand: who, when, old -> new and why (never purged).
    """CREATE TABLE IF NOT EXISTS ledger_audit (
        change_id     TEXT PRIMARY KEY,
        at            DOUBLE PRECISION NOT NULL,
        who           TEXT NOT NULL,
        dataset_id    BIGINT NOT NULL,
        old_state     TEXT,
        new_state     TEXT NOT NULL,
        datafiles     INTEGER NOT NULL,
        deletion_date TEXT,
        reason        TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_audit_dataset ON ledger_audit (dataset_id, at)",
)


#: Columns added after the first release of a table: (table, column, SQL type). A ledger
#: created earlier gets them at start-up, so an upgrade needs no manual step.
ADDED_COLUMNS = (
    ("ledger_requests", "retry_note", "TEXT"),
    ("ledger_requests", "notify", "TEXT"),
    ("ledger_requests", "left_out", "TEXT"),
    ("ledger_requests", "instrument", "TEXT"),
    ("ledger_files", "follows", "TEXT"),
    ("ledger_files", "checksum", "TEXT"),
)

#: Indexes on ``ADDED_COLUMNS``, made once those are there.
LATE_INDEXES = (
    # A restore's files waiting on another restore's transfer to the same place, by that one.
    "CREATE INDEX IF NOT EXISTS ledger_files_follows ON ledger_files (follows, destination)",
)


#: How long a SQLite write waits for another connection's (another process's) write lock.
BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")


class Connection:
    """A DB-API connection used from worker threads, one transaction at a time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        if not self.postgres and not url.startswith("sqlite:///"):
            raise ConfigurationError(
                f"gateway.state_db: unsupported URL {url.split('://')[0]}://...; "
                "use sqlite:///path or postgresql://..."
            )
        self._raw: Any = None
        self._lock = threading.Lock()

    def open(self) -> None:
        if self.postgres:
            import psycopg

            self._raw = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        else:
            path = Path(self.url.removeprefix("sqlite:///"))
            if path != Path(":memory:"):
                path.parent.mkdir(parents=True, exist_ok=True)
            self._raw = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            self._raw.execute("PRAGMA journal_mode=WAL")
            self._raw.execute("PRAGMA synchronous=NORMAL")
        with self.transaction() as db:
            existed = db.tables()
            for statement in SCHEMA:
                db.execute(statement)
            for table, column, sql_type in ADDED_COLUMNS:
                if column not in db.columns(table):
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
            for statement in LATE_INDEXES:
                db.execute(statement)
            if "ledger_requests" in existed:  # not a new ledger: fill in what it lacks
                for table, fill in ADDED_TABLES.items():
                    if table not in existed:
                        fill(db)

    def close(self) -> None:
        if self._raw is not None:
            raw, self._raw = self._raw, None
            raw.close()

    def at_once(self, work: Callable[[Cursor], T]) -> Done[T] | None:
        """``work`` in one transaction done here and now, on SQLite when nothing holds the
        connection or the database (``sqlite_now``); None, with nothing done, otherwise
        (always on PostgreSQL: a network round trip is never made on the event loop)."""
        if self._raw is None or self.postgres:
            return None
        raw = self._raw
        return write_at_once(
            raw,
            self._lock,
            lambda: work(Cursor(raw.cursor(), postgres=False)),
            busy_timeout_ms=BUSY_TIMEOUT_MS,
        )

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        if self._raw is None:
            raise PeerUnavailableError("request ledger is not open")
        with self._lock:
            cursor = Cursor(self._raw.cursor(), self.postgres)
            # SQLite: IMMEDIATE takes the write lock up front (other processes wait).
            cursor.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")


class Cursor:
    def __init__(self, raw: Any, postgres: bool) -> None:
        self._raw = raw
        self._postgres = postgres

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._postgres:
            sql = sql.replace("?", "%s")
        self._raw.execute(sql, tuple(parameters))
        return list(self._raw.fetchall()) if self._raw.description else []

    def tables(self) -> set[str]:
        if self._postgres:
            query = (
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return {row[0] for row in self.execute(query)}

    def columns(self, table: str) -> set[str]:
        self._raw.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        self._raw.fetchall()
        return {column[0] for column in self._raw.description}

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            if self._postgres:
                sql = sql.replace("?", "%s")
            self._raw.executemany(sql, [tuple(r) for r in rows])


def add_investigations(db: Cursor, request_id: str, names: Sequence[str]) -> None:
    db.executemany(
        "INSERT INTO ledger_investigations (request_id, investigation) VALUES (?, ?)"
        " ON CONFLICT (request_id, investigation) DO NOTHING",
        [(request_id, name) for name in names],
    )


def _fill_investigations(db: Cursor) -> None:
    """A ledger of an earlier release: index the investigations of the requests it holds."""
    rows = db.execute("SELECT request_id, datasets FROM ledger_requests")
    for request_id, datasets in rows:
        add_investigations(db, request_id, investigations_of(json.loads(datasets)))
    log.info("ledger_investigations_filled", requests=len(rows))


def _fill_recalls(db: Cursor) -> None:
    """A ledger of an earlier release: the files its restores not yet ended are recalling
    now hold their destinations, as if claimed when accepted."""
    ended = ("FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED")
    marks = ", ".join("?" * len(ended))
    db.execute(
        "INSERT INTO ledger_recalls (destination, request_id, claimed)"
        " SELECT f.destination, MIN(r.request_id), MIN(r.created) FROM ledger_files f"
        " JOIN ledger_jobs j ON j.job_id = f.job_id"
        " JOIN ledger_requests r ON r.request_id = j.request_id"
        f" WHERE r.kind = 'restore' AND r.state NOT IN ({marks}) AND f.state NOT IN ({marks})"
        " GROUP BY f.destination ON CONFLICT (destination) DO NOTHING",
        (*ended, *ended),
    )
    log.info("ledger_recalls_filled")


#: Tables added after the first release, each filled at start-up from what an earlier
#: ledger holds when it first appears (``Connection.open``): an upgrade needs no manual step.
ADDED_TABLES: dict[str, Callable[[Cursor], None]] = {
    "ledger_investigations": _fill_investigations,
    "ledger_recalls": _fill_recalls,
}
