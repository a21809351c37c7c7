"""How many calls of one kind the gateway makes at once: beyond a limit, a short wait for a
turn, then a 503.

A refusal with ``Retry-After`` rather than an unbounded queue: a burst of logins (or a
password-spraying client) must not pile up waiting on ICAT's authenticator, holding connections
and memory, while the pooled ICAT clients are also needed for every other request's session
check. The short wait keeps an ordinary burst (a script starting ten clients) from failing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from datastore_common.errors import PeerUnavailableError


class GatewayBusyError(PeerUnavailableError):
    """As many calls of a kind are in progress as the gateway allows: retry later (503)."""


class Admission:
    """At most ``limit`` holders of :meth:`slot` at once; one more waits up to ``wait_seconds``
    for a turn, then is refused."""

    def __init__(self, limit: int, *, what: str, setting: str, wait_seconds: float = 0.0) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.what = what
        self.setting = setting
        self.wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise GatewayBusyError(
                f"{self.limit} {self.what} already in progress (the limit, {self.setting}): "
                "retry later"
            ) from None
        try:
            yield
        finally:
            self._slots.release()
