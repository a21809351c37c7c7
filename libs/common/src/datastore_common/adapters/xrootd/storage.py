"""The ``Storage`` port on XRootD: size and adler32 of files (the instrument data cache's
sources for the icat-writer, the user data cache's copies for a restore)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from datastore_common.adapters.xrootd.client import XRootDClient
from datastore_common.errors import NotFoundError
from datastore_common.ports import Storage, StoredFile
from datastore_common.settings import DatastoreSettings

#: Checksums remembered per process, so that a request retried after a failure part-way
#: through does not ask the server again for the files it already described.
MEMO_SIZE = 200_000


class XRootDStorage(Storage):
    """``stat`` then server-side ``adler32`` per file.

    At most ``concurrency`` files are described at once (stats are cheap; checksums are
    further bounded per server by :class:`XRootDClient`). A checksum is remembered by
    (URL, size, mtime): a retried request skips what it already obtained, and a file that
    changed is checksummed again. XRootD servers also keep computed checksums in the file's
    extended attributes, so even a new process pays little for files checksummed before.
    """

    def __init__(self, client: XRootDClient | None = None, *, concurrency: int = 32) -> None:
        self._client = client or XRootDClient()
        self._slots = asyncio.Semaphore(concurrency)
        self._memo: OrderedDict[tuple[str, int, int], str] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: DatastoreSettings) -> XRootDStorage:
        """Bounded as the ``xrootd`` section says (time-outs, checksums and stats at once)."""
        xrootd = settings.xrootd
        return cls(
            XRootDClient(
                timeout_seconds=xrootd.timeout_seconds,
                checksum_concurrency=xrootd.checksum_concurrency,
                checksum_bytes_per_second=xrootd.checksum_bytes_per_second,
            ),
            concurrency=xrootd.describe_concurrency,
        )

    async def describe(self, url: str) -> StoredFile | None:
        async with self._slots:
            stat = await self._client.stat(url)
            if stat is None or stat.is_dir:
                return None
            key = (url, stat.size, stat.mtime)
            checksum = self._memo.get(key)
            if checksum is None:
                try:
                    checksum = await self._client.checksum(url, size=stat.size)
                except NotFoundError:  # removed between the two calls
                    return None
                self._remember(key, checksum)
            return StoredFile(size=stat.size, checksum=checksum)

    async def list_tree(self, url: str) -> dict[str, int]:
        return await self._client.list_tree(url)

    async def remove(self, url: str) -> None:
        async with self._slots:
            await self._client.remove(url)

    def _remember(self, key: tuple[str, int, int], checksum: str) -> None:
        self._memo[key] = checksum
        if len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)
