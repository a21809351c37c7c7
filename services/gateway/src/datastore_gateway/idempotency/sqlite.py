"""The idempotency store in one SQLite file (the default; safe across processes on one host)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from datastore_common.errors import PeerUnavailableError
from datastore_gateway.idempotency.store import (
    ADD_REQUEST_ID,
    DELETE_ANSWER,
    DELETE_EXPIRED_KEY,
    INSERT_RESERVATION,
    PURGE,
    PURGE_EVERY_SECONDS,
    RELEASE_RESERVATION,
    SCHEMA,
    SELECT_ABANDONED,
    SELECT_KEY,
    TABLE,
    UPDATE_ANSWER,
    Claim,
    IdempotencyStore,
    claim_from_row,
    purge_before,
)
from datastore_gateway.sqlite_now import write_at_once

#: How long a write waits for another connection's (another process's) write lock.
BUSY_TIMEOUT_MS = 30_000

T = TypeVar("T")


class SqliteIdempotencyStore(IdempotencyStore):
    """One SQLite file. A call is done at once on the event loop when nothing holds the
    database (``sqlite_now``: a reservation takes tens of microseconds there), else in a
    worker thread that waits its turn, so the event loop never waits on another's lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._last_purge = 0.0

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        if self.path != Path(":memory:"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(SCHEMA)
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({TABLE})")}
        if "request_id" not in columns:
            connection.execute(ADD_REQUEST_ID)
        self._connection = connection

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await asyncio.to_thread(connection.close)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._connection is None:
            raise PeerUnavailableError("idempotency store is not open")
        with self._lock:
            connection = self._connection
            # IMMEDIATE takes the write lock up front: other processes wait (busy timeout).
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    async def reserve(
        self, key: str, fingerprint: str, *, now: float, window: float, lease: float
    ) -> Claim:
        return await self._call(self._reserve_in, key, fingerprint, now, window, lease)

    def _reserve_in(
        self,
        db: sqlite3.Connection,
        key: str,
        fingerprint: str,
        now: float,
        window: float,
        lease: float,
    ) -> Claim:
        token = uuid.uuid4().hex
        if now - self._last_purge > PURGE_EVERY_SECONDS:
            db.execute(PURGE, (purge_before(now, window, lease),))
            self._last_purge = now
        abandoned = db.execute(SELECT_ABANDONED, (key, now - lease)).fetchone()
        request_id = (abandoned and abandoned[0]) or str(uuid.uuid4())
        db.execute(DELETE_EXPIRED_KEY, (key, now - window, now - lease))
        inserted = db.execute(
            INSERT_RESERVATION, (key, fingerprint, token, now, request_id)
        ).rowcount
        row = None if inserted else db.execute(SELECT_KEY, (key,)).fetchone()
        return claim_from_row(row, fingerprint, inserted == 1, token, request_id)

    async def complete(self, key: str, token: str, answer: str) -> None:
        await self._call(self._execute_in, UPDATE_ANSWER, (answer, key, token))

    async def release(self, key: str, token: str, *, lease: float) -> None:
        await self._call(self._execute_in, RELEASE_RESERVATION, (lease + 1, key, token))

    async def forget(self, key: str, answer: str) -> None:
        await self._call(self._execute_in, DELETE_ANSWER, (key, answer))

    @staticmethod
    def _execute_in(db: sqlite3.Connection, sql: str, parameters: tuple[Any, ...]) -> None:
        db.execute(sql, parameters)

    async def _call(self, work: Callable[..., T], *args: Any) -> T:
        """``work(connection, *args)`` in one transaction: at once on the event loop when
        nothing holds the connection or the database (``sqlite_now``), else in a worker
        thread that waits its turn (the busy timeout)."""
        if self._connection is None:
            raise PeerUnavailableError("idempotency store is not open")
        connection = self._connection
        try:
            done = write_at_once(
                connection,
                self._lock,
                lambda: work(connection, *args),
                busy_timeout_ms=BUSY_TIMEOUT_MS,
            )
        except sqlite3.Error as exc:
            raise PeerUnavailableError(f"idempotency store: {exc}") from exc
        if done is not None:
            return done.value
        return await asyncio.to_thread(self._in_thread, work, *args)

    def _in_thread(self, work: Callable[..., T], *args: Any) -> T:
        try:
            with self._transaction() as db:
                return work(db, *args)
        except sqlite3.Error as exc:
            raise PeerUnavailableError(f"idempotency store: {exc}") from exc
