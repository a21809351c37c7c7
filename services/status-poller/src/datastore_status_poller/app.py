"""The status-poller process: its service (``bootstrap``) on the bus; and ``resync``, which
rebuilds the delay queue from ICAT after the broker's queues were lost."""

from __future__ import annotations

from datetime import UTC, datetime

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.errors import ConfigurationError
from datastore_common.logging import configure_logging
from datastore_common.ports import Catalogue
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import STATUS_POLLER_POLL
from datastore_common.worker import Worker, make_bus
from datastore_status_poller.adapters import DelayQueueRequeue
from datastore_status_poller.bootstrap import bootstrap
from datastore_status_poller.handlers import resync

SERVICE = "status-poller"
WORKER = Worker(SERVICE, bootstrap)
wire = WORKER.wire
main_run = WORKER.run


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
