"""fts-submitter worker: the ``fts-submitter`` queue -> ``submit_jobs``."""

from __future__ import annotations

from datastore_common.adapters.fts3.transfer_service import Fts3TransferService
from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.publisher import BusPublisher
from datastore_common.adapters.rabbitmq.reporters import give_up_reporter, retry_reporter
from datastore_common.logging import get_logger
from datastore_common.ports import TransferService
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import FTS_SUBMITTER, payload_types
from datastore_common.worker import Cleanup, run
from datastore_fts_submitter.bootstrap import bootstrap

SERVICE = "fts-submitter"

log = get_logger(__name__)


async def wire(
    bus: Bus, settings: DatastoreSettings, *, transfers: TransferService | None = None
) -> Cleanup | None:
    """Subscribe ``submit_jobs``; returns what closes the FTS client at stop."""
    service = transfers or Fts3TransferService.from_settings(settings)
    log.info("fts3_endpoint", endpoint=service.endpoint, vo=await service.vo())
    publisher = BusPublisher(bus)
    handler = bootstrap(transfers=service, publisher=publisher)
    await bus.consume(
        bus.topology.queue(FTS_SUBMITTER),
        handler,
        payload_types(FTS_SUBMITTER),
        on_give_up=give_up_reporter(publisher, fts_endpoint=service.endpoint),
        on_retry=retry_reporter(publisher),
    )
    if transfers is None and isinstance(service, Fts3TransferService):
        return service.aclose
    return None


def main_run(settings: DatastoreSettings) -> None:
    run(SERVICE, settings, lambda bus: wire(bus, settings))
