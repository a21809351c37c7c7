"""A short SQLite write done at once on the event loop, when nothing makes it wait.

The gateway's SQLite stores (idempotency keys, the request ledger) run their calls in a worker
thread so that the event loop never waits on a lock another process holds. For the few small
writes every archive request makes, that hop costs more than the write (a thread hand-off
and the GIL passed back and forth, under 64 concurrent clients most of a small request's
time): a reservation is a few indexed statements that SQLite in WAL mode commits in tens of
microseconds. So such a write is first tried right here, taking the connection's lock and
SQLite's write lock without waiting (busy timeout 0); if either is held (another thread of
ours, another process), nothing was done and the caller waits in its thread as before.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Done(Generic[T]):
    """What a write done at once returned."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


def write_at_once(
    connection: sqlite3.Connection,
    lock: threading.Lock,
    work: Callable[[], T],
    *,
    busy_timeout_ms: int,
) -> Done[T] | None:
    """Run ``work`` (its statements on ``connection``) in one ``BEGIN IMMEDIATE`` transaction
    if ``lock`` (the connection's, held by whoever uses it) and SQLite's write lock are free
    now; None, with nothing done, when either is taken. ``busy_timeout_ms`` is the
    connection's usual busy timeout, put back once the write lock is had (or not).
    An error inside ``work`` rolls back and propagates, as in the caller's own transactions.
    """
    if not lock.acquire(blocking=False):
        return None
    try:
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None  # another connection writes: wait for it in a thread
            raise
        finally:
            connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        try:
            value = work()
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return Done(value)
    finally:
        lock.release()
