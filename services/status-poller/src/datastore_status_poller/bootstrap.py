"""Composition root of the status-poller: real adapters unless a test passes its own."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from datastore_common.adapters.fts3.transfer_service import Fts3TransferService
from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.consumer import BatchHandler
from datastore_common.adapters.rabbitmq.publisher import BusPublisher
from datastore_common.adapters.rabbitmq.reporters import give_up_reporter, retry_reporter
from datastore_common.adapters.xrootd.storage import XRootDStorage
from datastore_common.logging import get_logger
from datastore_common.ops.audit import audit_from_settings, audit_loop
from datastore_common.ports import Catalogue, Publisher, Storage, TransferService
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import STATUS_POLLER_POLL
from datastore_common.worker import BackgroundLoop, Owned, Route, Service, required
from datastore_status_poller.adapters import DelayQueueRequeue
from datastore_status_poller.handlers import UNKNOWN_GRACE_POLLS, poll_batch
from datastore_status_poller.ports import Requeue

log = get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class StatusPoller(Service):
    poll_batch: BatchHandler


def bootstrap(
    settings: DatastoreSettings,
    *,
    bus: Bus | None = None,
    publisher: Publisher | None = None,
    transfers: TransferService | None = None,
    requeue: Requeue | None = None,
    unknown_grace: int = UNKNOWN_GRACE_POLLS,
    catalogue: Catalogue | None = None,
    tape: Storage | None = None,
) -> StatusPoller:
    """``poll_batch`` on FTS, in batches of ``poller.batch_size``, re-queued through the delay
    queue; a missing publisher or requeue is built on ``bus``, FTS from ``settings``.

    With ``audit.interval_seconds`` set, the audit of the catalogue against the tape runs
    beside it (``ops.audit.audit_loop``) on ``catalogue`` and ``tape``, built from
    ``settings`` when not given. The poller hosts it because it is the lightest worker and
    already the one that reads ICAT back (resync); polling itself never waits for it."""
    owned = Owned()
    if publisher is None:
        publisher = BusPublisher(required(bus, "a publisher"))
    if requeue is None:
        requeue = DelayQueueRequeue(required(bus, "a requeue"))
    fts = (
        transfers
        if transfers is not None
        else owned.adapter(Fts3TransferService.from_settings(settings))
    )
    handler = partial(
        poll_batch,
        transfers=fts,
        publisher=publisher,
        requeue=requeue,
        unknown_grace=unknown_grace,
    )

    async def announce() -> None:
        log.info(
            "poller_wired",
            endpoint=fts.endpoint,
            interval=settings.poller.interval_seconds,
            batch_size=settings.poller.batch_size,
            audit_interval=settings.audit.interval_seconds or "off",
        )

    background: tuple[BackgroundLoop, ...] = ()
    if settings.audit.interval_seconds > 0:
        if catalogue is None:
            icat = IcatCatalogue(settings.icat)
            owned.add(icat.close)
            catalogue = icat
        audit = audit_from_settings(
            settings,
            catalogue=catalogue,
            tape=tape if tape is not None else XRootDStorage.from_settings(settings),
        )
        background = (partial(audit_loop, audit, settings.audit.interval_seconds),)

    return StatusPoller(
        poll_batch=handler,
        background=background,
        routes=(
            Route(
                STATUS_POLLER_POLL,
                batch_handler=handler,
                max_batch=settings.poller.batch_size,
                max_wait=settings.poller.batch_wait_seconds,
                on_give_up=give_up_reporter(publisher, fts_endpoint=fts.endpoint),
                on_retry=retry_reporter(publisher),
            ),
        ),
        close=owned.close,
        before_start=announce,
    )
