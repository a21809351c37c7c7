"""The cleaner of restored copies: removes expired copies Datastore wrote to the user data cache.

It runs in the gateway, every replica (``RestoredCopyCleaner.run``), as the notifier does:
the record of what Datastore wrote (``ledger_copies``: size, adler32, expiry) and of which
restores are not yet ended lives in the gateway's database, and the gateway already reaches
the user data cache; no other service has both. Each pass claims expired copies with a lease
(``Ledger.claim_expired``: another replica skips them meanwhile; PostgreSQL's
``FOR UPDATE SKIP LOCKED``), looks at the file there now, and lets ``domain.restored_copies``
decide: remove it, keep it (a restore not yet ended needs it), or forget the record (gone, or
not the file Datastore wrote: left alone). ``restore.cleaner_dry_run`` only logs and counts
what it would remove. It needs write (delete) access to the user data cache.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Callable

from datastore_common.domain.restored_copies import decide
from datastore_common.errors import DatastoreError, NotFoundError
from datastore_common.logging import get_logger
from datastore_common.ports import Storage
from datastore_common.settings import RestoreSettings
from datastore_gateway.ledger import ExpiredCopy, Ledger
from datastore_gateway.metrics import RESTORED_COPIES, RESTORED_COPY_BYTES_REMOVED

log = get_logger(__name__)

#: Copies one replica claims at once, and how long it has to deal with them.
BATCH = 200
LEASE_SECONDS = 600.0


class RestoredCopyCleaner:
    def __init__(
        self,
        ledger: Ledger,
        user_cache: Storage,
        settings: RestoreSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._user_cache = user_cache
        self._settings = settings
        self._clock = clock

    async def run(self) -> None:
        """Clean every ``restore.cleaner_interval_seconds``, for ever."""
        while True:
            try:
                await self.clean_expired()
            except DatastoreError as exc:
                log.warning("cleaner_unavailable", error=str(exc))
            except Exception:
                log.exception("cleaner_failed")
            await asyncio.sleep(self._settings.cleaner_interval_seconds)

    async def clean_expired(self) -> dict[str, int]:
        """One pass over every expired copy (a batch at a time); outcomes counted."""
        tally: Tally[str] = Tally()
        while True:
            batch = await self._ledger.claim_expired(limit=BATCH, lease_seconds=LEASE_SECONDS)
            for expired in batch:
                tally[await self._clean(expired)] += 1
            if len(batch) < BATCH or self._settings.cleaner_dry_run:
                # A dry run settles nothing: the same copies would come back at once.
                return dict(tally)

    async def _clean(self, expired: ExpiredCopy) -> str:
        copy = expired.copy
        found = None if expired.needed else await self._user_cache.describe(copy.destination)
        verdict = decide(copy, found, now=self._clock(), needed=expired.needed)
        outcome: str = verdict.outcome
        fields = {"destination": copy.destination, "why": verdict.why}
        if verdict.outcome == "remove" and self._settings.cleaner_dry_run:
            log.info("restored_copy_would_be_removed", bytes=copy.bytes, **fields)
            RESTORED_COPIES.labels(outcome="would_remove").inc()
            return "would_remove"
        if verdict.outcome == "remove":
            try:
                await self._user_cache.remove(copy.destination)
            except NotFoundError:
                outcome, fields["why"] = "forget", "already gone"
            else:
                RESTORED_COPY_BYTES_REMOVED.inc(copy.bytes)
                log.info("restored_copy_removed", bytes=copy.bytes, **fields)
        if self._settings.cleaner_dry_run:
            log.info("restored_copy_would_be", outcome=outcome, **fields)
        else:
            await self._ledger.settle_copy(copy.destination, outcome, fields["why"])
            if outcome == "forget":
                log.info("restored_copy_forgotten", **fields)
        shown = {"remove": "removed", "forget": "forgotten"}.get(outcome, "kept")
        RESTORED_COPIES.labels(outcome=shown).inc()
        return shown
