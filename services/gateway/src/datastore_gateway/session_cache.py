"""A short-lived cache in front of ``Sessions.check``: one ICAT call per session per TTL.

Every authenticated request needs to know who owns its bearer session; asking ICAT each time
would put an ICAT round trip on every archive request. A checked session is trusted for
``ttl`` seconds (``icat.session_cache_seconds``); a refused one is never cached, so a session
that later becomes valid is not held back. Concurrent checks of one uncached session share a
single ICAT call.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from datastore_common.errors import AuthenticationError
from datastore_common.ports import Sessions, UserSession
from datastore_gateway.metrics import SESSION_CHECKS


class CachedSessions(Sessions):
    def __init__(
        self,
        inner: Sessions,
        *,
        ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[UserSession, float]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[UserSession]] = {}

    async def login(self, auth: str, credentials: Mapping[str, str]) -> str:
        return await self.inner.login(auth, credentials)

    async def check(self, session_id: str) -> UserSession:
        now = self._clock()
        entry = self._entries.get(session_id)
        if entry is not None:
            user, expires = entry
            if expires > now:
                SESSION_CHECKS.labels(result="cached").inc()
                return user
            del self._entries[session_id]
        pending = self._in_flight.get(session_id)
        if pending is None:
            pending = asyncio.ensure_future(self._check_and_remember(session_id))
            self._in_flight[session_id] = pending
            pending.add_done_callback(lambda _: self._in_flight.pop(session_id, None))
        # shield: one waiter giving up (client gone) must not cancel the others' ICAT call.
        return await asyncio.shield(pending)

    async def _check_and_remember(self, session_id: str) -> UserSession:
        try:
            user = await self.inner.check(session_id)
        except AuthenticationError:
            SESSION_CHECKS.labels(result="refused").inc()
            raise
        SESSION_CHECKS.labels(result="checked").inc()
        if self.ttl > 0:
            self._entries[session_id] = (user, self._clock() + self.ttl)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return user
