"""The restore queue's loop: starts queued restores as capacity frees up.

Every gateway replica runs one (``RestoreQueue.run``), as it runs a notifier. Each pass asks
the ledger which queued restores fit now (``Ledger.claim_startable``: decided under one lock
for all replicas, PostgreSQL's advisory lock or SQLite's write lock, so two replicas never let
the same capacity go twice; each restore let start is leased to this replica) and starts
them: what is online and what other restores are recalling is looked at again, then the jobs
are planned and published as for any restore. One that cannot start now (the broker or the
user data cache down) goes back to its place in the queue, saying why; a replica that stops
mid-way leaves its lease to run out, and the restore is queued again.
"""

from __future__ import annotations

import asyncio

from datastore_common.errors import DatastoreError
from datastore_common.logging import get_logger
from datastore_common.ports import Publisher, Storage
from datastore_common.settings import DatastoreSettings
from datastore_gateway.handlers import RestoreDraft, restore_limits, start_queued_restore
from datastore_gateway.ledger import Ledger
from datastore_gateway.metrics import (
    RESTORE_QUEUE_BYTES,
    RESTORE_QUEUE_LENGTH,
    RESTORES_STARTED_FROM_QUEUE,
)
from datastore_gateway.vo import VoSource

log = get_logger(__name__)


class RestoreQueue:
    def __init__(
        self,
        ledger: Ledger,
        settings: DatastoreSettings,
        *,
        publisher: Publisher,
        user_cache: Storage,
        vo: VoSource,
    ) -> None:
        self._ledger = ledger
        self._settings = settings
        self._publisher = publisher
        self._user_cache = user_cache
        self._vo = vo

    async def run(self) -> None:
        """Start what fits every ``restore.queue_poll_seconds``, for ever."""
        while True:
            try:
                await self.start_due()
            except DatastoreError as exc:
                log.warning("restore_queue_unavailable", error=str(exc))
            except Exception:
                # A bug must not stop every later start: log it and go on.
                log.exception("restore_queue_failed")
            await asyncio.sleep(self._settings.restore.queue_poll_seconds)

    async def start_due(self) -> list[str]:
        """One pass: start every queued restore that fits now; the ids started."""
        started: list[str] = []
        limits = restore_limits(self._settings)
        for request_id, owner, draft in await self._ledger.claim_startable(limits):
            try:
                await start_queued_restore(
                    request_id,
                    owner,
                    RestoreDraft.model_validate_json(draft),
                    user_cache=self._user_cache,
                    publisher=self._publisher,
                    settings=self._settings,
                    vo=await self._vo.get(),
                    ledger=self._ledger,
                )
            except DatastoreError as exc:
                RESTORES_STARTED_FROM_QUEUE.labels(outcome="retried").inc()
                log.warning("restore_start_failed", correlation_id=request_id, error=str(exc))
                await self._ledger.not_started(request_id, str(exc))
                continue
            RESTORES_STARTED_FROM_QUEUE.labels(outcome="started").inc()
            log.info("restore_started_from_queue", correlation_id=request_id, user=owner)
            started.append(request_id)
        waiting = [row for row in await self._ledger.queue() if row.state == "QUEUED"]
        RESTORE_QUEUE_LENGTH.set(len(waiting))
        RESTORE_QUEUE_BYTES.set(sum(row.bytes for row in waiting))
        return started
