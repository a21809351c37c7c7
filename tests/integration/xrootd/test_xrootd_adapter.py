"""XRootDClient against the real servers."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import zlib
from pathlib import Path

import pytest

from datastore_common.adapters.xrootd.client import XRootDClient
from datastore_common.errors import NotFoundError, PeerUnavailableError
from tests.integration.xrootd import cli
from tests.support.loop_relay import loop_relay
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.integration


@pytest.fixture
def storage() -> XRootDClient:
    return XRootDClient(timeout_seconds=20)


async def test_stat_and_checksum_of_a_written_file(
    storage: XRootDClient, xrootd_stack: XRootDStack, xrootd_test_path: str, tmp_path: Path
) -> None:
    content = os.urandom(123_457)
    local = tmp_path / "f.raw"
    local.write_bytes(content)
    url = xrootd_stack.url("idc", f"{xrootd_test_path}/f.raw")
    before = int(time.time()) - 1
    cli.upload(local, url)

    stat = await storage.stat(url)

    assert stat is not None
    assert (stat.size, stat.is_dir) == (len(content), False)
    assert before <= stat.mtime <= int(time.time()) + 1
    assert await storage.checksum(url) == f"adler32:{zlib.adler32(content):08x}"
    assert await storage.exists(url) is True


async def test_checksum_keeps_leading_zeros(
    storage: XRootDClient, xrootd_stack: XRootDStack, xrootd_test_path: str, tmp_path: Path
) -> None:
    local = tmp_path / "tiny"
    local.write_bytes(b"a")  # adler32 = 0x00620062
    url = xrootd_stack.url("udc", f"{xrootd_test_path}/tiny")
    cli.upload(local, url)

    assert await storage.checksum(url) == "adler32:00620062"


async def test_mkdir_listdir_remove(
    storage: XRootDClient, xrootd_stack: XRootDStack, xrootd_test_path: str, tmp_path: Path
) -> None:
    folder = xrootd_stack.url("udc", f"{xrootd_test_path}/a/b")
    await storage.mkdir(folder)
    await storage.mkdir(folder)  # existing folder: fine
    local = tmp_path / "x"
    local.write_bytes(b"123")
    cli.upload(local, f"{folder}/x")
    await storage.mkdir(f"{folder}/sub", parents=False)

    assert await storage.listdir(folder) == ["sub", "x"]
    folder_stat = await storage.stat(folder)
    assert folder_stat is not None and folder_stat.is_dir is True

    await storage.remove(f"{folder}/x")
    await storage.rmdir(f"{folder}/sub")

    assert await storage.listdir(folder) == []
    assert await storage.exists(f"{folder}/x") is False


async def test_missing_file_maps_to_not_found(
    storage: XRootDClient, xrootd_stack: XRootDStack, xrootd_test_path: str
) -> None:
    url = xrootd_stack.url("idc", f"{xrootd_test_path}/missing.raw")

    assert await storage.stat(url) is None
    assert await storage.exists(url) is False
    with pytest.raises(NotFoundError):
        await storage.checksum(url)
    with pytest.raises(NotFoundError):
        await storage.remove(url)
    with pytest.raises(NotFoundError):
        await storage.listdir(url)


async def test_unreachable_server_maps_to_peer_unavailable(storage: XRootDClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    started = time.monotonic()

    with pytest.raises(PeerUnavailableError):
        await storage.stat(f"root://127.0.0.1:{free_port}//anything")

    assert time.monotonic() - started < 10


async def test_two_hundred_concurrent_stats_leave_the_event_loop_free(
    storage: XRootDClient, xrootd_stack: XRootDStack, xrootd_test_path: str, tmp_path: Path
) -> None:
    local = tmp_path / "many"
    local.write_bytes(b"m" * 10)
    for i in range(5):
        cli.upload(local, xrootd_stack.url("idc", f"{xrootd_test_path}/many-{i}"))
    host, port = xrootd_stack.idc.removeprefix("root://").rsplit(":", 1)

    # The stats reach the server through a relay that this test's event loop serves: were the
    # adapter to block the loop while a stat is in flight, no answer would ever come back.
    async with loop_relay(host, int(port)) as relay:
        relayed = f"root://127.0.0.1:{relay.port}"
        urls = [f"{relayed}//{xrootd_test_path.lstrip('/')}/many-{i % 5}" for i in range(200)]
        stats = await asyncio.gather(*(storage.stat(url) for url in urls))

    assert all(stat is not None and stat.size == 10 for stat in stats)
    assert relay.bytes_relayed > 0
