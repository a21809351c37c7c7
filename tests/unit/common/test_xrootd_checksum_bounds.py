"""How the XRootD adapter paces checksum queries: per-server bound, size-scaled time-out."""

from __future__ import annotations

import asyncio
from typing import Any

from datastore_common.adapters.xrootd.client import (
    CHECKSUM_TIMEOUT_FLOOR_SECONDS,
    XRootDClient,
    checksum_timeout,
)
from datastore_common.adapters.xrootd.urls import XRootDUrl


def test_checksum_timeout_grows_with_size() -> None:
    assert checksum_timeout(None) == CHECKSUM_TIMEOUT_FLOOR_SECONDS
    assert checksum_timeout(4096) == CHECKSUM_TIMEOUT_FLOOR_SECONDS + 1
    fifty_gb = checksum_timeout(50 * 10**9, bytes_per_second=50 * 1024**2)
    assert fifty_gb == CHECKSUM_TIMEOUT_FLOOR_SECONDS + 954  # ~16 min: never a fixed 30 s


class _RecordingStorage(XRootDClient):
    """The real adapter with its wire call replaced: counts queries in flight per server."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(tune=False, **kwargs)
        self.in_flight: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.timeouts: list[int | None] = []

    async def _call(
        self, method: str, location: XRootDUrl, *arguments: Any, xrootd_timeout: int | None = None
    ) -> Any:
        server = location.server
        self.in_flight[server] = self.in_flight.get(server, 0) + 1
        self.most[server] = max(self.most.get(server, 0), self.in_flight[server])
        self.timeouts.append(xrootd_timeout)
        await asyncio.sleep(0.001)
        self.in_flight[server] -= 1
        return b"adler32 1\x00"


async def test_checksums_are_bounded_per_server_not_overall() -> None:
    storage = _RecordingStorage(checksum_concurrency=3)
    urls = [f"root://a:1//f{i}" for i in range(20)] + [f"root://b:1//f{i}" for i in range(20)]

    answers = await asyncio.gather(*(storage.checksum(url, size=10) for url in urls))

    assert set(answers) == {"adler32:00000001"}
    assert storage.most == {"root://a:1": 3, "root://b:1": 3}


async def test_a_large_file_gets_a_long_timeout() -> None:
    storage = _RecordingStorage(checksum_bytes_per_second=1024**2)
    await storage.checksum("root://a:1//big", size=600 * 1024**2)
    assert storage.timeouts == [CHECKSUM_TIMEOUT_FLOOR_SECONDS + 600]
