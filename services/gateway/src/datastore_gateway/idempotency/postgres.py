"""The idempotency store on PostgreSQL, for gateway replicas on several hosts.

Same table and statements as the SQLite store; the unique primary key makes the insert-first
reservation safe across replicas (a concurrent duplicate insert waits for the first
transaction and then does nothing).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg

from datastore_common.errors import PeerUnavailableError
from datastore_gateway.idempotency.store import (
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


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresIdempotencyStore(IdempotencyStore):
    """One connection, reconnected when it breaks; statements serialised by a lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._last_purge = 0.0

    async def open(self) -> None:
        await self._connect()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None or self._connection.closed:
            try:
                self._connection = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=10
                )
                await self._connection.execute(SCHEMA)
                await self._connection.execute(
                    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS request_id TEXT"
                )
            except psycopg.Error as exc:
                raise PeerUnavailableError(f"idempotency store: {exc}") from exc
        return self._connection

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def reserve(
        self, key: str, fingerprint: str, *, now: float, window: float, lease: float
    ) -> Claim:
        token = uuid.uuid4().hex
        async with self._lock:
            connection = await self._connect()
            try:
                async with connection.transaction():
                    if now - self._last_purge > PURGE_EVERY_SECONDS:
                        await connection.execute(_pg(PURGE), (purge_before(now, window, lease),))
                        self._last_purge = now
                    abandoned = await (
                        await connection.execute(_pg(SELECT_ABANDONED), (key, now - lease))
                    ).fetchone()
                    request_id = (abandoned and abandoned[0]) or str(uuid.uuid4())
                    await connection.execute(
                        _pg(DELETE_EXPIRED_KEY), (key, now - window, now - lease)
                    )
                    cursor = await connection.execute(
                        _pg(INSERT_RESERVATION), (key, fingerprint, token, now, request_id)
                    )
                    inserted = cursor.rowcount == 1
                    row = None
                    if not inserted:
                        row = await (await connection.execute(_pg(SELECT_KEY), (key,))).fetchone()
            except psycopg.Error as exc:
                raise PeerUnavailableError(f"idempotency store: {exc}") from exc
        return claim_from_row(row, fingerprint, inserted, token, request_id)

    async def complete(self, key: str, token: str, answer: str) -> None:
        await self._write(UPDATE_ANSWER, (answer, key, token))

    async def release(self, key: str, token: str, *, lease: float) -> None:
        await self._write(RELEASE_RESERVATION, (lease + 1, key, token))

    async def forget(self, key: str, answer: str) -> None:
        await self._write(DELETE_ANSWER, (key, answer))

    async def _write(self, sql: str, parameters: tuple[Any, ...]) -> None:
        async with self._lock:
            connection = await self._connect()
            try:
                await connection.execute(_pg(sql), parameters)
            except psycopg.Error as exc:
                raise PeerUnavailableError(f"idempotency store: {exc}") from exc
