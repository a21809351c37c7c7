"""Composition root of the fts-submitter: real adapters unless a test passes its own."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from datastore_common.adapters.fts3.transfer_service import Fts3TransferService
from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.consumer import Handler
from datastore_common.adapters.rabbitmq.publisher import BusPublisher
from datastore_common.adapters.rabbitmq.reporters import give_up_reporter, retry_reporter
from datastore_common.errors import TransientError
from datastore_common.logging import get_logger
from datastore_common.ports import Publisher, TransferService
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import FTS_SUBMITTER
from datastore_common.worker import Owned, Route, Service, required
from datastore_fts_submitter.handlers import storage_roots, submit_jobs

log = get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class FtsSubmitter(Service):
    submit_jobs: Handler


def bootstrap(
    settings: DatastoreSettings,
    *,
    bus: Bus | None = None,
    publisher: Publisher | None = None,
    transfers: TransferService | None = None,
) -> FtsSubmitter:
    """``submit_jobs`` on FTS; a missing publisher is built on ``bus``, FTS from ``settings``."""
    owned = Owned()
    if publisher is None:
        publisher = BusPublisher(required(bus, "a publisher"))
    fts = (
        transfers
        if transfers is not None
        else owned.adapter(Fts3TransferService.from_settings(settings))
    )
    handler = partial(
        submit_jobs, transfers=fts, publisher=publisher, roots=storage_roots(settings)
    )

    async def announce() -> None:
        try:
            vo = await fts.vo()
        except TransientError as exc:  # FTS down, or our credential refused: each message's
            # own calls are retried by the bus (a refused credential with an alarm)
            log.warning("fts3_unavailable_at_start", endpoint=fts.endpoint, error=str(exc))
            return
        log.info("fts3_endpoint", endpoint=fts.endpoint, vo=vo)

    return FtsSubmitter(
        submit_jobs=handler,
        routes=(
            Route(
                FTS_SUBMITTER,
                handler,
                on_give_up=give_up_reporter(publisher, fts_endpoint=fts.endpoint),
                on_retry=retry_reporter(publisher),
            ),
        ),
        close=owned.close,
        before_start=announce,
    )
