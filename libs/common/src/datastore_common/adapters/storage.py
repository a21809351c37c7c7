"""The ``Storage`` port on XRootD: size and adler32 of files on the instrument data cache."""

from __future__ import annotations

import asyncio

from datastore_common.adapters.xrootd import XRootDStorage
from datastore_common.errors import NotFoundError
from datastore_common.ports import Storage, StoredFile


class XRootDFileDescriber(Storage):
    """``stat`` then server-side ``adler32`` per file; at most ``concurrency`` files at once,
    so a request of 10,000 files can be described with one ``gather`` without flooding
    the server."""

    def __init__(self, storage: XRootDStorage | None = None, *, concurrency: int = 32) -> None:
        self._storage = storage or XRootDStorage()
        self._slots = asyncio.Semaphore(concurrency)

    async def describe(self, url: str) -> StoredFile | None:
        async with self._slots:
            stat = await self._storage.stat(url)
            if stat is None or stat.is_dir:
                return None
            try:
                checksum = await self._storage.checksum(url)
            except NotFoundError:  # removed between the two calls
                return None
            return StoredFile(size=stat.size, checksum=checksum)
