"""Composition root of the icat-writer: real adapters unless a test passes its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import pool_from_settings
from datastore_common.adapters.xrootd.client import XRootDClient
from datastore_common.adapters.xrootd.storage import XRootDStorage
from datastore_common.messages import Envelope
from datastore_common.ports import Catalogue, Publisher, Storage
from datastore_common.settings import DatastoreSettings
from datastore_icat_writer.handlers import record_transfer_status, register_archive

Handler = Callable[[Envelope[Any]], Awaitable[None]]

#: ICAT clients (built on first need): status changes of many files are one ICAT ``update``
#: each, which the catalogue spreads over the pool's clients.
ICAT_CLIENTS = 4


@dataclass(frozen=True)
class IcatWriter:
    """The two handlers with their dependencies bound, and what closes those we built."""

    register_archive: Handler
    record_transfer_status: Handler
    close: Callable[[], Awaitable[None]]


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


async def _nothing_to_close() -> None:
    return None


def _describer(settings: DatastoreSettings) -> XRootDStorage:
    xrootd = settings.xrootd
    return XRootDStorage(
        XRootDClient(
            timeout_seconds=xrootd.timeout_seconds,
            checksum_concurrency=xrootd.checksum_concurrency,
            checksum_bytes_per_second=xrootd.checksum_bytes_per_second,
        ),
        concurrency=xrootd.describe_concurrency,
    )


def bootstrap(
    settings: DatastoreSettings,
    *,
    publisher: Publisher,
    catalogue: Catalogue | None = None,
    storage: Storage | None = None,
) -> IcatWriter:
    """Bind the handlers; a missing catalogue or storage is built from ``settings``."""
    close: Callable[[], Awaitable[None]] = _nothing_to_close
    if catalogue is None:
        icat_catalogue = IcatCatalogue(
            settings.icat, pool=pool_from_settings(settings.icat, size=ICAT_CLIENTS)
        )
        catalogue, close = icat_catalogue, icat_catalogue.close
    return IcatWriter(
        register_archive=partial(
            register_archive,
            catalogue=catalogue,
            storage=storage or _describer(settings),
            publisher=publisher,
            settings=settings,
        ),
        record_transfer_status=one_at_a_time_per_job(
            partial(record_transfer_status, catalogue=catalogue)
        ),
        close=close,
    )
