"""Composition root of the icat-writer: real adapters unless a test passes its own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import pool_from_settings
from datastore_common.adapters.icat.vocabulary import IcatVocabulary
from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.consumer import Handler
from datastore_common.adapters.rabbitmq.publisher import BusPublisher
from datastore_common.adapters.rabbitmq.reporters import give_up_reporter, retry_reporter
from datastore_common.adapters.xrootd.storage import XRootDStorage
from datastore_common.messages import ArchivalStateSet, ArchiveRetryRequested, Envelope
from datastore_common.ports import Catalogue, Publisher, Storage, Vocabulary
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import ICAT_WRITER_ARCHIVE, ICAT_WRITER_STATUS
from datastore_common.worker import Owned, Route, Service, required
from datastore_icat_writer.answers import give_up_answerer, refusal_answerer
from datastore_icat_writer.handlers import (
    planned_jobs,
    record_transfer_status,
    register_archive,
    retry_archive,
    set_archival_state,
)

#: ICAT clients (built on first need): status changes of many files are one ICAT ``update``
#: each, which the catalogue spreads over the pool's clients.
ICAT_CLIENTS = 4


@dataclass(frozen=True, kw_only=True)
class IcatWriter(Service):
    """The two handlers with their dependencies bound (routes and clean-up: ``Service``)."""

    register_archive: Handler
    retry_archive: Handler
    record_transfer_status: Handler
    set_archival_state: Handler


def one_at_a_time_per_job(handler: Handler) -> Handler:
    """Status events of one job are recorded one after the other: each reads the files'
    states, decides and writes, and ICAT has no conditional update, so two at once could
    write an older state over a newer one. Across replicas the status queue has a single
    active consumer; this covers the events one process holds at once."""
    locks: dict[str, asyncio.Lock] = {}
    users: dict[str, int] = {}

    async def serialised(envelope: Envelope[Any]) -> None:
        job_id = str(getattr(envelope.data, "job_id", ""))
        lock = locks.setdefault(job_id, asyncio.Lock())
        users[job_id] = users.get(job_id, 0) + 1
        try:
            async with lock:
                await handler(envelope)
        finally:
            users[job_id] -= 1
            if not users[job_id]:  # nobody waits: forget the job
                del users[job_id], locks[job_id]

    return serialised


def bootstrap(
    settings: DatastoreSettings,
    *,
    bus: Bus | None = None,
    publisher: Publisher | None = None,
    catalogue: Catalogue | None = None,
    storage: Storage | None = None,
    vocabulary: Vocabulary | None = None,
) -> IcatWriter:
    """Bind the handlers; a missing publisher is built on ``bus``, a missing catalogue,
    storage or vocabulary (instruments' requests are checked with it) from ``settings``."""
    owned = Owned()
    if publisher is None:
        publisher = BusPublisher(required(bus, "a publisher"))
    if catalogue is None:
        pool = pool_from_settings(settings.icat, size=ICAT_CLIENTS)
        icat_catalogue = IcatCatalogue(settings.icat, pool=pool)
        owned.add(icat_catalogue.close)
        catalogue = icat_catalogue
        if vocabulary is None and settings.instruments:
            icat_vocabulary = IcatVocabulary(settings.icat, pool=pool)
            owned.add(icat_vocabulary.close)  # closed first: the pool is the catalogue's
            vocabulary = icat_vocabulary
    describer = XRootDStorage.from_settings(settings) if storage is None else storage
    register = partial(
        register_archive,
        catalogue=catalogue,
        storage=describer,
        publisher=publisher,
        settings=settings,
        vocabulary=vocabulary,
    )
    retry = partial(
        retry_archive,
        catalogue=catalogue,
        storage=describer,
        publisher=publisher,
        settings=settings,
    )

    async def archive_queue(envelope: Envelope[Any]) -> None:
        """The archive queue brings requests and retries: each to its handler."""
        if isinstance(envelope.data, ArchiveRetryRequested):
            await retry(envelope)
        else:
            await register(envelope)

    record = one_at_a_time_per_job(
        partial(record_transfer_status, catalogue=catalogue, settings=settings)
    )
    set_state = partial(set_archival_state, catalogue=catalogue)

    async def status_queue(envelope: Envelope[Any]) -> None:
        """The status queue brings FTS's states and admins' states set by hand."""
        if isinstance(envelope.data, ArchivalStateSet):
            await set_state(envelope)
        else:
            await record(envelope)

    return IcatWriter(
        register_archive=register,
        retry_archive=retry,
        record_transfer_status=record,
        set_archival_state=set_state,
        routes=(
            Route(
                ICAT_WRITER_ARCHIVE,
                archive_queue,
                prefetch=settings.broker.archive_prefetch,
                on_give_up=give_up_answerer(
                    give_up_reporter(
                        publisher,
                        fts_endpoint=str(settings.fts3.endpoint),
                        planner=lambda data: planned_jobs(data, settings),
                    ),
                    publisher,
                    settings,
                ),
                on_retry=retry_reporter(publisher),
                # An instrument's message refused unread, or from an account that may not
                # send it, is answered archive.rejected before it is dead-lettered.
                on_refused=refusal_answerer(publisher, settings),
            ),
            # A status event that cannot be recorded has nothing to report: it is
            # dead-lettered (logged at error level) for an operator to replay; the ledger
            # still has the request.
            Route(ICAT_WRITER_STATUS, status_queue),
        ),
        close=owned.close,
    )
