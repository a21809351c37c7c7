"""Composition root of the icat-writer: real adapters unless a test passes its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from datastore_common.adapters.icat import IcatCatalogue, pool_from_settings
from datastore_common.adapters.storage import XRootDFileDescriber
from datastore_common.adapters.xrootd import XRootDStorage
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


async def _nothing_to_close() -> None:
    return None


def _describer(settings: DatastoreSettings) -> XRootDFileDescriber:
    xrootd = settings.xrootd
    return XRootDFileDescriber(
        XRootDStorage(
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
        record_transfer_status=partial(record_transfer_status, catalogue=catalogue),
        close=close,
    )
