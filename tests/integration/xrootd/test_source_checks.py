"""Describing many sources at once, as several icat-writer replicas do, against a real server.

A server computes only a few checksums at once and answers "wait 30 s" past its queue; before
the per-server bound in ``XRootDClient`` three replicas of 32 queries each timed out there
(issue "A 202 is a promise kept").
"""

from __future__ import annotations

import asyncio
import os
import zlib

import pytest

from datastore_common.adapters.xrootd.client import XRootDClient
from datastore_common.adapters.xrootd.storage import XRootDStorage
from datastore_common.errors import PeerUnavailableError
from datastore_common.ports import StoredFile
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.integration

REPLICAS = 3
FILES_PER_REPLICA = 40


def _write(stack: XRootDStack, path: str, size: int) -> StoredFile:
    content = os.urandom(size)
    local = stack.data_dir("idc") / path.lstrip("/")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(content)
    return StoredFile(size=size, checksum=f"adler32:{zlib.adler32(content):08x}")


async def test_replicas_describing_many_new_files_at_once_all_succeed(
    xrootd_stack: XRootDStack, xrootd_test_path: str
) -> None:
    expected: list[dict[str, StoredFile]] = []
    for replica in range(REPLICAS):
        files = {}
        for index in range(FILES_PER_REPLICA):
            path = f"{xrootd_test_path}/r{replica}/file_{index:04d}.nxs"
            files[xrootd_stack.url("idc", path)] = _write(xrootd_stack, path, 1_000_000 + index)
        expected.append(files)
    # One describer per replica, each with its own XRootD client state and default bounds.
    describers = [XRootDStorage(XRootDClient()) for _ in range(REPLICAS)]

    described = await asyncio.gather(
        *(d.describe_many(list(files)) for d, files in zip(describers, expected, strict=True))
    )

    assert described == expected


async def test_a_retried_request_does_not_ask_the_server_again(
    xrootd_stack: XRootDStack, xrootd_test_path: str
) -> None:
    path = f"{xrootd_test_path}/once.nxs"
    url = xrootd_stack.url("idc", path)
    stored = _write(xrootd_stack, path, 4096)
    storage = XRootDClient()
    describer = XRootDStorage(storage)
    assert await describer.describe(url) == stored

    async def no_more_checksums(url: str, *, size: int | None = None) -> str:
        raise AssertionError(f"checksum of {url} asked again")

    storage.checksum = no_more_checksums  # type: ignore[method-assign]
    assert await describer.describe(url) == stored
    # A changed file (new size and mtime) is checked again.
    changed = _write(xrootd_stack, path, 8192)
    with pytest.raises(AssertionError, match="asked again"):
        await describer.describe(url)
    del storage.checksum
    assert await describer.describe(url) == changed


async def test_the_first_failure_cancels_the_rest_and_is_raised_as_itself(
    xrootd_stack: XRootDStack, xrootd_test_path: str
) -> None:
    good = [xrootd_stack.url("idc", f"{xrootd_test_path}/g{i}") for i in range(3)]
    for i in range(3):
        _write(xrootd_stack, f"{xrootd_test_path}/g{i}", 100)
    down = "root://127.0.0.1:1//nothing/listens/here"
    describer = XRootDStorage(XRootDClient())

    with pytest.raises(PeerUnavailableError):
        await describer.describe_many([*good, down])
