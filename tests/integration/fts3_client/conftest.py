"""Fts3Client against the FTS3 emulator and the XRootD stack (fixtures in tests/support)."""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable

import pytest
from XRootD import client as xrd
from XRootD.client.flags import OpenFlags

from datastore_common.adapters.fts3.client import Fts3Client
from datastore_common.adapters.fts3.wire import JobStatus
from tests.support.fts3_fixtures import Fts3Emulator
from tests.support.workdirs import remove_after_session

TERMINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}


@pytest.fixture
async def fts(fts3_emulator: Fts3Emulator) -> AsyncIterator[Fts3Client]:
    """Our client on the emulator, authenticated by the test user certificate."""
    async with Fts3Client(
        fts3_emulator.url,
        cert=fts3_emulator.user_cert,
        key=fts3_emulator.user_key,
        ca=fts3_emulator.ca,
        retry_backoff=0.2,
    ) as client:
        yield client


def unique_dir() -> str:
    folder = f"/it-fts3-client/{uuid.uuid4().hex[:12]}"
    remove_after_session(folder)
    return folder


def _write(url: str, data: bytes) -> None:
    handle = xrd.File()
    status, _ = handle.open(url, OpenFlags.DELETE | OpenFlags.MAKEPATH)
    assert status.ok, f"open {url}: {status.message}"
    status, _ = handle.write(data)
    assert status.ok, f"write {url}: {status.message}"
    handle.close()


async def put_file(url: str, data: bytes) -> str:
    """Write ``data`` at ``url``; return its ``adler32:<hex>`` checksum."""
    await asyncio.to_thread(_write, url, data)
    return f"adler32:{zlib.adler32(data) & 0xFFFFFFFF:08x}"


async def wait_terminal(
    fts: Fts3Client, job_ids: Iterable[str], limit: float = 120.0
) -> dict[str, JobStatus]:
    """Poll (bulk) until every job is terminal."""
    pending = list(job_ids)
    done: dict[str, JobStatus] = {}
    deadline = asyncio.get_running_loop().time() + limit
    while pending:
        statuses = await fts.status(pending)
        for job_id, status in statuses.items():
            assert status is not None, f"FTS forgot job {job_id}"
            if status.job_state in TERMINAL:
                done[job_id] = status
        pending = [j for j in pending if j not in done]
        if pending:
            assert asyncio.get_running_loop().time() < deadline, f"not terminal: {statuses}"
            await asyncio.sleep(0.5)
    return done
