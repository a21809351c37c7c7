"""icat-writer worker: ``icat-writer.archive`` -> ``register_archive`` and
``icat-writer.status`` -> ``record_transfer_status``, in one process."""

from __future__ import annotations

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.publisher import BusPublisher
from datastore_common.adapters.rabbitmq.reporters import give_up_reporter, retry_reporter
from datastore_common.ports import Catalogue, Storage
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import ICAT_WRITER_ARCHIVE, ICAT_WRITER_STATUS, payload_types
from datastore_common.worker import Cleanup, run
from datastore_icat_writer.bootstrap import bootstrap
from datastore_icat_writer.handlers import planned_jobs

SERVICE = "icat-writer"


async def wire(
    bus: Bus,
    settings: DatastoreSettings,
    *,
    catalogue: Catalogue | None = None,
    storage: Storage | None = None,
) -> Cleanup:
    """Subscribe both handlers; returns what logs the ICAT session out at stop."""
    publisher = BusPublisher(bus)
    writer = bootstrap(settings, publisher=publisher, catalogue=catalogue, storage=storage)
    await bus.consume(
        bus.topology.queue(ICAT_WRITER_ARCHIVE),
        writer.register_archive,
        payload_types(ICAT_WRITER_ARCHIVE),
        on_give_up=give_up_reporter(
            publisher,
            fts_endpoint=str(settings.fts3.endpoint),
            planner=lambda data: planned_jobs(data, settings),
        ),
        on_retry=retry_reporter(publisher),
        prefetch=settings.broker.archive_prefetch,
    )
    # A status event that cannot be recorded has nothing to report: it is dead-lettered
    # (logged at error level) for an operator to replay; the ledger still has the request.
    await bus.consume(
        bus.topology.queue(ICAT_WRITER_STATUS),
        writer.record_transfer_status,
        payload_types(ICAT_WRITER_STATUS),
    )
    return writer.close


def main_run(settings: DatastoreSettings) -> None:
    run(SERVICE, settings, lambda bus: wire(bus, settings))
