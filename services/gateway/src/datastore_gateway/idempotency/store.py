"""The idempotency store's contract: the table, its statements, and what a reservation says.

``IdempotencyStore`` is what ``run_once`` needs; ``sqlite.py`` and ``postgres.py`` implement it
with the same table and statements (``?`` placeholders; PostgreSQL swaps them for ``%s``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Any

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
