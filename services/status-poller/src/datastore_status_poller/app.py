"""status-poller worker: batches from ``status-poller.poll`` -> ``poll_batch``."""

from __future__ import annotations

from datetime import UTC, datetime

from datastore_common.adapters.fts3.transfer_service import Fts3TransferService
from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.publisher import BusPublisher
from datastore_common.adapters.rabbitmq.reporters import give_up_reporter, retry_reporter
from datastore_common.errors import ConfigurationError
from datastore_common.logging import configure_logging, get_logger
from datastore_common.ports import Catalogue, TransferService
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import STATUS_POLLER_POLL, payload_types
from datastore_common.worker import Cleanup, make_bus, run
from datastore_status_poller.adapters import DelayQueueRequeue
from datastore_status_poller.bootstrap import bootstrap
from datastore_status_poller.handlers import resync

SERVICE = "status-poller"

log = get_logger(__name__)


async def wire(
    bus: Bus, settings: DatastoreSettings, *, transfers: TransferService | None = None
) -> Cleanup | None:
    """Consume the poll queue in batches of ``poller.batch_size``; re-queue via the delay queue."""
    service = transfers or Fts3TransferService.from_settings(settings)
    publisher = BusPublisher(bus)
    handler = bootstrap(transfers=service, publisher=publisher, requeue=DelayQueueRequeue(bus))
    await bus.consume_batches(
        bus.topology.queue(STATUS_POLLER_POLL),
        handler,
        payload_types(STATUS_POLLER_POLL),
        max_batch=settings.poller.batch_size,
        max_wait=settings.poller.batch_wait_seconds,
        on_give_up=give_up_reporter(publisher, fts_endpoint=service.endpoint),
        on_retry=retry_reporter(publisher),
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


async def waiting_jobs(bus: Bus) -> int:
    """Messages now in the poll and delay queues (jobs the poller is already following)."""
    channel = await bus.new_channel(1)
    try:
        total = 0
        for name in (
            bus.topology.queue(STATUS_POLLER_POLL),
            bus.topology.delay_into(STATUS_POLLER_POLL),
        ):
            queue = await channel.declare_queue(name, passive=True)
            total += queue.declaration_result.message_count or 0
        return total
    finally:
        await channel.close()


async def resync_from_icat(
    settings: DatastoreSettings, *, force: bool = False, catalogue: Catalogue | None = None
) -> int:
    """Rebuild the delay queue from ICAT's jobs in flight; refuses to double a live queue."""
    configure_logging(SERVICE, level=settings.log.level, fmt=settings.log.format)
    bus = make_bus(settings, SERVICE)
    await bus.connect(attempts=settings.broker.connect_attempts)
    owned: IcatCatalogue | None = None
    if catalogue is None:
        catalogue = owned = IcatCatalogue(settings.icat)
    try:
        waiting = await waiting_jobs(bus)
        if waiting and not force:
            raise ConfigurationError(
                f"the poller queues already hold {waiting} jobs: resync would track them twice "
                "(use --force if they are known to be incomplete)"
            )
        correlation_id = f"resync-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        return await resync(
            catalogue=catalogue,
            requeue=DelayQueueRequeue(bus),
            settings=settings,
            correlation_id=correlation_id,
        )
    finally:
        if owned is not None:
            await owned.close()
        await bus.close()
