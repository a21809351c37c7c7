"""status-poller worker: batches from ``status-poller.poll`` -> ``poll_batch``."""

from __future__ import annotations

from datastore_common.adapters.fts3_service import Fts3TransferService
from datastore_common.adapters.rabbit import BusPublisher
from datastore_common.bus import Bus
from datastore_common.logging import get_logger
from datastore_common.messages import Payload, TransferSubmitted, TransferTracked
from datastore_common.ports import TransferService
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import STATUS_POLLER_POLL
from datastore_common.worker import Cleanup, run
from datastore_status_poller.adapters import DelayQueueRequeue
from datastore_status_poller.bootstrap import bootstrap

SERVICE = "status-poller"
PAYLOAD_TYPES: dict[str, type[Payload]] = {
    TransferSubmitted.TYPE: TransferSubmitted,
    TransferTracked.TYPE: TransferTracked,
}

log = get_logger(__name__)


async def wire(
    bus: Bus, settings: DatastoreSettings, *, transfers: TransferService | None = None
) -> Cleanup | None:
    """Consume the poll queue in batches of ``poller.batch_size``; re-queue via the delay queue."""
    service = transfers or Fts3TransferService.from_settings(settings)
    handler = bootstrap(
        transfers=service, publisher=BusPublisher(bus), requeue=DelayQueueRequeue(bus)
    )
    await bus.consume_batches(
        bus.topology.queue(STATUS_POLLER_POLL),
        handler,
        PAYLOAD_TYPES,
        max_batch=settings.poller.batch_size,
        max_wait=settings.poller.batch_wait_seconds,
    )
    log.info(
        "poller_wired",
        endpoint=service.endpoint,
        interval=settings.poller.interval_seconds,
        batch_size=settings.poller.batch_size,
    )
    if transfers is None and isinstance(service, Fts3TransferService):
        return service.aclose
    return None


def main_run(settings: DatastoreSettings) -> None:
    run(SERVICE, settings, lambda bus: wire(bus, settings))
