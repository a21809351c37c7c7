"""The idempotency store in one SQLite file (the default; safe across processes on one host)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class SqliteIdempotencyStore(IdempotencyStore):
    """One SQLite file; calls run in a worker thread so the event loop never waits on disk."""

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
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
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
        return await asyncio.to_thread(self._reserve, key, fingerprint, now, window, lease)

    def _reserve(
        self, key: str, fingerprint: str, now: float, window: float, lease: float
    ) -> Claim:
        token = uuid.uuid4().hex
        try:
            with self._transaction() as db:
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
        except sqlite3.Error as exc:
            raise PeerUnavailableError(f"idempotency store: {exc}") from exc
        return claim_from_row(row, fingerprint, inserted == 1, token, request_id)

    async def complete(self, key: str, token: str, answer: str) -> None:
        await asyncio.to_thread(self._write, UPDATE_ANSWER, (answer, key, token))

    async def release(self, key: str, token: str, *, lease: float) -> None:
        await asyncio.to_thread(self._write, RELEASE_RESERVATION, (lease + 1, key, token))

    async def forget(self, key: str, answer: str) -> None:
        await asyncio.to_thread(self._write, DELETE_ANSWER, (key, answer))

    def _write(self, sql: str, parameters: tuple[Any, ...]) -> None:
        try:
            with self._transaction() as db:
                db.execute(sql, parameters)
        except sqlite3.Error as exc:
            raise PeerUnavailableError(f"idempotency store: {exc}") from exc
