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

Stores (``store_from_url``): SQLite (``sqlite:///path``, the default; safe across processes
on one host) and PostgreSQL (``postgresql://...``, for replicas on several hosts). The package:
``store`` (the contract: table, statements, claims), ``sqlite``, ``postgres``; this module runs
the work once. Nothing below imports this module, so there is no import cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from datastore_common.errors import ConfigurationError, InvalidRequestError, PeerUnavailableError
from datastore_common.logging import get_logger
from datastore_gateway.idempotency.sqlite import SqliteIdempotencyStore
from datastore_gateway.idempotency.store import Claim, ClaimState, IdempotencyStore

__all__ = [
    "PENDING_LEASE_SECONDS",
    "Claim",
    "ClaimState",
    "IdempotencyKeyReusedError",
    "IdempotencyStore",
    "SqliteIdempotencyStore",
    "fingerprint_of",
    "run_once",
    "scope_key",
    "store_from_url",
]

log = get_logger(__name__)

#: A reservation without an answer after this long belongs to a request that died: take it over.
PENDING_LEASE_SECONDS = 120.0
#: How often a duplicate asks whether the first request has answered.
POLL_SECONDS = 0.05


class IdempotencyKeyReusedError(InvalidRequestError):
    """The client sent an Idempotency-Key it already used for a different body."""


def scope_key(user: str, *, idempotency_key: str | None, fingerprint: str) -> str:
    """One user's name for one request: their header key, or the body's fingerprint."""
    if idempotency_key is not None:
        return f"key:{user}:{idempotency_key}"
    return f"body:{user}:{fingerprint}"


def fingerprint_of(canonical_body: bytes) -> str:
    return hashlib.sha256(canonical_body).hexdigest()


def store_from_url(url: str) -> IdempotencyStore:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        return SqliteIdempotencyStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from datastore_gateway.idempotency.postgres import PostgresIdempotencyStore

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
