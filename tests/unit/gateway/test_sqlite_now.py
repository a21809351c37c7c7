"""``sqlite_now``: a small write done at once on the event loop only when nothing holds the
database; otherwise nothing is done and the stores wait in a thread as before."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from datastore_gateway.idempotency import ClaimState, SqliteIdempotencyStore
from datastore_gateway.sqlite_now import write_at_once


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
    return connection


def rows(connection: sqlite3.Connection) -> list[int]:
    return [v for (v,) in connection.execute("SELECT v FROM t ORDER BY v")]


def busy_timeout(connection: sqlite3.Connection) -> int:
    (value,) = connection.execute("PRAGMA busy_timeout").fetchone()
    return int(value)


def test_a_write_is_done_at_once_when_nothing_holds_the_database(tmp_path: Path) -> None:
    db = connect(tmp_path / "s.db")
    done = write_at_once(
        db,
        threading.Lock(),
        lambda: db.execute("INSERT INTO t VALUES (1)").rowcount,
        busy_timeout_ms=30_000,
    )
    assert done is not None and done.value == 1
    assert rows(connect(tmp_path / "s.db")) == [1]  # committed: another connection sees it
    assert busy_timeout(db) == 30_000


def test_nothing_is_done_while_our_lock_is_held(tmp_path: Path) -> None:
    db, lock = connect(tmp_path / "s.db"), threading.Lock()
    with lock:  # a worker thread of ours uses the connection
        assert (
            write_at_once(
                db, lock, lambda: db.execute("INSERT INTO t VALUES (1)"), busy_timeout_ms=1
            )
            is None
        )
    assert rows(db) == []


def test_nothing_is_done_while_another_connection_writes(tmp_path: Path) -> None:
    db, other = connect(tmp_path / "s.db"), connect(tmp_path / "s.db")
    other.execute("BEGIN IMMEDIATE")  # another process's write in progress
    lock = threading.Lock()
    assert (
        write_at_once(
            db, lock, lambda: db.execute("INSERT INTO t VALUES (1)"), busy_timeout_ms=30_000
        )
        is None
    )
    other.execute("COMMIT")
    assert rows(db) == [] and busy_timeout(db) == 30_000  # the usual wait is back
    assert not lock.locked()


def test_an_error_rolls_back_and_propagates(tmp_path: Path) -> None:
    db, lock = connect(tmp_path / "s.db"), threading.Lock()

    def half_done() -> None:
        db.execute("INSERT INTO t VALUES (1)")
        raise sqlite3.IntegrityError("second statement failed")

    with pytest.raises(sqlite3.IntegrityError):
        write_at_once(db, lock, half_done, busy_timeout_ms=30_000)
    assert rows(db) == [] and not lock.locked() and not db.in_transaction


async def test_a_reservation_waits_for_another_writer_in_a_thread(tmp_path: Path) -> None:
    store = SqliteIdempotencyStore(tmp_path / "keys.db")
    await store.open()
    other = sqlite3.connect(tmp_path / "keys.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another gateway process is writing
    reserving = asyncio.ensure_future(store.reserve("k", "f", now=1000.0, window=60, lease=10))
    await asyncio.sleep(0.2)
    assert not reserving.done()  # waiting its turn, in a thread: the event loop runs on
    other.execute("COMMIT")
    claim = await asyncio.wait_for(reserving, 10)
    assert claim.state is ClaimState.RESERVED
    again = await store.reserve("k", "f", now=1001.0, window=60, lease=10)
    assert again.state is ClaimState.PENDING  # the first reservation was stored
    await store.close()
