"""How many calls of one kind the gateway makes at once: beyond a limit, a 503 at once.

A refusal with ``Retry-After`` rather than a queue: a burst of logins (or a password-spraying
client) must not pile up waiting on ICAT's authenticator, holding connections and memory,
while the pooled ICAT clients are also needed for every other request's session check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from datastore_common.errors import PeerUnavailableError


class GatewayBusyError(PeerUnavailableError):
    """As many calls of a kind are in progress as the gateway allows: retry later (503)."""


class Admission:
    """At most ``limit`` holders of :meth:`slot` at once; one more is refused at once."""

    def __init__(self, limit: int, *, what: str, setting: str) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.what = what
        self.setting = setting
        self._slots = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked():
            raise GatewayBusyError(
                f"{self.limit} {self.what} already in progress (the limit, {self.setting}): "
                "retry later"
            )
        async with self._slots:  # free now: taken without waiting
            yield
