"""Idempotency keys: the same archive request twice gets the first answer, not a second archive.

A request is named by a *scope key*: the client's ``Idempotency-Key`` header, or else a hash of
its validated body, both per user. ``run_once`` makes the first request with a key do the work
and every later one (within the window) get the stored answer:

1. **insert first**: the request inserts ``(key, fingerprint, token)`` under a unique key; the one
   insert that succeeds owns the work. Concurrent duplicates see the row and wait for its answer.
2. the owner publishes; only after the broker's confirm is the answer stored (``complete``);
3. if the work fails, the reservation is released (``release``) so a retry can do it again; a
   reservation whose owner died is taken over after ``PENDING_LEASE_SECONDS``. Either way the
   retry gets the reservation's request id: the first attempt may have reached the broker.
4. rows live for the window, whatever their state; only then are they purged. An unanswered row
   must outlive its lease, since it holds the request id a retry has to reuse.

Stores: SQLite (``sqlite:///path``, the default; safe across processes on one host) and
PostgreSQL (``postgresql://...``, for replicas on several hosts).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from datastore_common.errors import ConfigurationError, InvalidRequestError, PeerUnavailableError
from datastore_common.logging import get_logger

log = get_logger(__name__)

#: A reservation without an answer after this long belongs to a request that died: take it over.
PENDING_LEASE_SECONDS = 120.0
#: How often a duplicate asks whether the first request has answered.
POLL_SECONDS = 0.05
#: Expired rows are purged at most this often.
PURGE_EVERY_SECONDS = 300.0

TABLE = "gateway_idempotency"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    scope_key   TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    token       TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    answer      TEXT,
    request_id  TEXT
)
"""
#: Added after the first release: a store created earlier gets it at start-up.
ADD_REQUEST_ID = f"ALTER TABLE {TABLE} ADD COLUMN request_id TEXT"
# "?" placeholders; the PostgreSQL store swaps them for "%s".
DELETE_EXPIRED_KEY = (
    f"DELETE FROM {TABLE} WHERE scope_key = ? AND "
    "((answer IS NOT NULL AND created_at < ?) OR (answer IS NULL AND created_at < ?))"
)
INSERT_RESERVATION = (
    f"INSERT INTO {TABLE} (scope_key, fingerprint, token, created_at, request_id) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope_key) DO NOTHING"
)
# The request id of a reservation whose owner died (lease over, no answer): the request it
# may already have published; the one that takes over must publish the same.
SELECT_ABANDONED = (
    f"SELECT request_id FROM {TABLE} WHERE scope_key = ? AND answer IS NULL AND created_at < ?"
)
SELECT_KEY = f"SELECT fingerprint, answer FROM {TABLE} WHERE scope_key = ?"
UPDATE_ANSWER = f"UPDATE {TABLE} SET answer = ? WHERE scope_key = ? AND token = ?"
# A released reservation is not deleted but made abandoned at once (backdated by its lease):
# the request may have reached the broker although its confirm did not reach us (or the
# client went away), so the next attempt with the key must reuse its request id
# (SELECT_ABANDONED), never make a second. It is purged with the window like any other row.
RELEASE_RESERVATION = (
    f"UPDATE {TABLE} SET created_at = created_at - ? "
    "WHERE scope_key = ? AND token = ? AND answer IS NULL"
)
DELETE_ANSWER = f"DELETE FROM {TABLE} WHERE scope_key = ? AND answer = ?"
# Only rows older than the window (and their lease): purging an abandoned row earlier would
# lose the request id its client's next attempt must reuse, and so archive twice.
PURGE = f"DELETE FROM {TABLE} WHERE created_at < ?"


class IdempotencyKeyReusedError(InvalidRequestError):
    """The client sent an Idempotency-Key it already used for a different body."""


class ClaimState(Enum):
    RESERVED = "reserved"  # this request owns the work
    COMPLETED = "completed"  # an earlier request answered; here is its answer
    PENDING = "pending"  # an earlier request is still working
    MISMATCH = "mismatch"  # the key was used for another body


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    token: str | None = None
    answer: str | None = None
    request_id: str | None = None  # RESERVED: the id the work must give its request


def scope_key(user: str, *, idempotency_key: str | None, fingerprint: str) -> str:
    """One user's name for one request: their header key, or the body's fingerprint."""
    if idempotency_key is not None:
        return f"key:{user}:{idempotency_key}"
    return f"body:{user}:{fingerprint}"


def fingerprint_of(canonical_body: bytes) -> str:
    return hashlib.sha256(canonical_body).hexdigest()


class IdempotencyStore(ABC):
    """Where reservations and answers live; every method is atomic on its own."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and create the table if needed (safe to repeat)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def reserve(
        self, key: str, fingerprint: str, *, now: float, window: float, lease: float
    ) -> Claim:
        """Insert a reservation for ``key`` unless a live one exists; say which happened."""

    @abstractmethod
    async def complete(self, key: str, token: str, answer: str) -> None:
        """Store the owner's answer; later duplicates get it."""

    @abstractmethod
    async def release(self, key: str, token: str, *, lease: float) -> None:
        """Give up an unanswered reservation so a retry can do the work (with its request id)."""

    @abstractmethod
    async def forget(self, key: str, answer: str) -> None:
        """Drop a key's stored answer (its request FAILED): the next request does the work."""


def purge_before(now: float, window: float, lease: float) -> float:
    """Rows created before this are over: past the window, and past any owner's lease."""
    return now - max(window, lease)


def claim_from_row(
    row: tuple[Any, ...] | None, fingerprint: str, inserted: bool, token: str, request_id: str
) -> Claim:
    if inserted:
        return Claim(ClaimState.RESERVED, token=token, request_id=request_id)
    if row is None:  # deleted between our insert attempt and the read: try again
        return Claim(ClaimState.PENDING)
    stored_fingerprint, answer = row
    if stored_fingerprint != fingerprint:
        return Claim(ClaimState.MISMATCH)
    if answer is None:
        return Claim(ClaimState.PENDING)
    return Claim(ClaimState.COMPLETED, answer=str(answer))


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


def store_from_url(url: str) -> IdempotencyStore:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        return SqliteIdempotencyStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from datastore_gateway.idempotency_pg import PostgresIdempotencyStore

        return PostgresIdempotencyStore(url)
    raise ConfigurationError(
        f"gateway.state_db: unsupported URL {url.split('://')[0]}://...; "
        "use sqlite:///path or postgresql://..."
    )


async def run_once(
    store: IdempotencyStore | None,
    key: str,
    fingerprint: str,
    work: Callable[[str], Awaitable[str]],
    *,
    window: float,
    wait_seconds: float = 30.0,
    lease: float = PENDING_LEASE_SECONDS,
    clock: Callable[[], float] = time.time,
    still_valid: Callable[[str], Awaitable[bool]] | None = None,
) -> tuple[str, bool]:
    """Run ``work`` once per key within ``window``; return (its answer, whether it was replayed).

    A duplicate arriving while the first request works waits up to ``wait_seconds`` for its
    answer (or for its failure, after which the duplicate does the work itself). A stored
    answer that ``still_valid`` rejects (its request FAILED) is forgotten and the work redone.
    """
    if store is None or window <= 0:
        return await work(str(uuid.uuid4())), False
    attempt = functools.partial(
        _run_once,
        store,
        key,
        fingerprint,
        work,
        window=window,
        wait_seconds=wait_seconds,
        lease=lease,
        clock=clock,
    )
    answer, replayed = await attempt()
    if replayed and still_valid is not None and not await still_valid(answer):
        # The first request FAILED: its answer would promise what never happens. Let this
        # one try again (one winner among concurrent retries, as for a first request).
        await store.forget(key, answer)
        log.info("idempotency_failed_request_retried")
        answer, replayed = await attempt()
    return answer, replayed


async def _run_once(
    store: IdempotencyStore,
    key: str,
    fingerprint: str,
    work: Callable[[str], Awaitable[str]],
    *,
    window: float,
    wait_seconds: float,
    lease: float,
    clock: Callable[[], float],
) -> tuple[str, bool]:
    deadline = time.monotonic() + wait_seconds
    while True:
        claim = await store.reserve(key, fingerprint, now=clock(), window=window, lease=lease)
        if claim.state is ClaimState.COMPLETED:
            assert claim.answer is not None
            return claim.answer, True
        if claim.state is ClaimState.MISMATCH:
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was already used for a different request body"
            )
        if claim.state is ClaimState.RESERVED:
            break
        if time.monotonic() > deadline:
            raise PeerUnavailableError(
                "an identical request is still being processed; retry shortly"
            )
        await asyncio.sleep(POLL_SECONDS)
    assert claim.token is not None and claim.request_id is not None
    try:
        answer = await work(claim.request_id)
    except BaseException:
        with contextlib.suppress(Exception):
            await store.release(key, claim.token, lease=lease)
        raise
    try:
        await store.complete(key, claim.token, answer)
    except Exception as exc:
        # The work is done and confirmed; failing the client now would invite a second archive.
        # The reservation stays pending and lapses after the lease.
        log.warning("idempotency_answer_not_stored", error=str(exc))
    return answer, False
