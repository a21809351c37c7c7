"""Helpers shared by the FTS3 service, fts-submitter and status-poller integration tests.

Real files on the instrument data cache (written with ``xrdcp``), settings pointing at the
FTS3 emulator, a broker topology of their own per test, and a queue that captures
``transfer.status`` events as the icat-writer would receive them.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import tempfile
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.messages import (
    ArchiveRegistered,
    Envelope,
    PlannedJob,
    PlannedTransfer,
    TransferStatus,
    wrap,
)
from datastore_common.settings import DatastoreSettings, load_settings
from datastore_common.worker import topology_from
from tests.support.fts3_fixtures import Fts3Emulator
from tests.support.rabbitmq_fixtures import unique_name
from tests.support.workdirs import remove_after_session
from tests.support.xrootd_fixtures import XRootDStack, storage_roots

TERMINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}


def archive_transfers(
    stack: XRootDStack, folder: str, count: int, *, missing: int = 0, size: int = 4096
) -> list[PlannedTransfer]:
    """``count`` archive transfers idc -> tape; the last ``missing`` sources never written."""
    written = count - missing
    remove_after_session(f"/archive{folder}")  # the tape copies' folder
    transfers = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            path = f"{folder}/file_{i:04d}.nxs"
            checksum = filesize = None
            if i < written:
                data = os.urandom(size)
                local = Path(tmp) / f"file_{i:04d}.nxs"
                local.write_bytes(data)
                subprocess.run(
                    ["xrdcp", "--silent", "--force", "--path", str(local), stack.url("idc", path)],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
                checksum = f"adler32:{zlib.adler32(data) & 0xFFFFFFFF:08x}"
                filesize = size
            transfers.append(
                PlannedTransfer(
                    source=stack.url("idc", path),
                    destination=stack.url("tape", f"/archive{path}"),
                    datafile_id=1000 + i,
                    dataset_id=77,
                    checksum=checksum,
                    filesize=filesize,
                )
            )
    return transfers


def whoami_vo(emulator: Fts3Emulator) -> str:
    """The VO FTS derives our deterministic job ids from (as the planner learns it)."""
    with emulator.client() as http:
        return str(http.get("/whoami").json()["delegation_id"])


def planned_job(request_id: str, vo: str, transfers: list[PlannedTransfer]) -> PlannedJob:
    sid = job_sid(request_id, 0)
    return PlannedJob(job_id=fts_job_id(vo, sid), sid=sid, kind="archive", transfers=transfers)


def archive_registered(request_id: str, jobs: list[PlannedJob]) -> Envelope[Any]:
    data = ArchiveRegistered(request_id=request_id, jobs=jobs)
    return wrap(data, source="tests", correlation_id=request_id, user="simple/root")


def service_settings(
    emulator: Fts3Emulator, rabbitmq_url: str, *, poll_interval: float = 0.5, **fts3: Any
) -> DatastoreSettings:
    """Settings for the workers under test: own exchange and queue prefix, short polls."""
    name = unique_name("it")
    return load_settings(
        broker={
            "url": rabbitmq_url,
            "exchange": name,
            "queue_prefix": f"{name}.",
            "retry_delays": (0.2, 0.5, 1.0),
        },
        fts3={"endpoint": emulator.url, "ca_path": str(emulator.ca), **fts3},
        x509_user_cert=emulator.user_cert,
        x509_user_key=emulator.user_key,
        poller={"interval_seconds": poll_interval, "batch_wait_seconds": 0.1},
        **storage_roots(),  # where the transfers of these tests go (the submitter checks)
    )


class StatusCapture:
    """A queue bound to ``transfer.status`` on the test exchange, read in arrival order."""

    def __init__(self, queue: aio_pika.abc.AbstractQueue) -> None:
        self._queue = queue
        self.events: list[TransferStatus] = []

    async def drain(self) -> list[TransferStatus]:
        while (message := await self._queue.get(no_ack=True, fail=False)) is not None:
            self.events.append(TransferStatus.model_validate(json.loads(message.body)["data"]))
        return self.events

    async def until(self, job_id: str, states: set[str], wait: float = 60.0) -> TransferStatus:
        """Wait for an event of ``job_id`` in one of ``states``; return it."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for event in await self.drain():
                if event.job_id == job_id and event.job_state in states:
                    return event
            await asyncio.sleep(0.1)
        raise AssertionError(
            f"no {states} for {job_id} within {wait}s; saw "
            f"{[(e.job_id[:8], e.job_state) for e in self.events]}"
        )

    def of(self, job_id: str) -> list[TransferStatus]:
        return [e for e in self.events if e.job_id == job_id]


@asynccontextmanager
async def status_capture(bus: Bus) -> AsyncIterator[StatusCapture]:
    channel = await bus.new_channel(100)
    exchange = await channel.get_exchange(bus.topology.exchange)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key=TransferStatus.TYPE)
    try:
        yield StatusCapture(queue)
    finally:
        await channel.close()


@asynccontextmanager
async def running_workers(
    bus_factory: Any, settings: DatastoreSettings, *, submitter: bool = True, poller: bool = True
) -> AsyncIterator[Bus]:
    """The workers' real wiring (as their ``__main__`` runs it), each on its own connection.

    Yields a bus of the test itself, for publishing and capturing on the same topology.
    """
    from datastore_fts_submitter.app import wire as wire_submitter
    from datastore_status_poller.app import wire as wire_poller

    topology = topology_from(settings)
    cleanups = []
    if submitter:
        cleanups.append(await wire_submitter(await bus_factory(topology), settings))
    if poller:
        cleanups.append(await wire_poller(await bus_factory(topology), settings))
    try:
        yield await bus_factory(topology)
    finally:
        for cleanup in cleanups:
            if cleanup is not None:
                await cleanup()


def jobs_in_fts(emulator: Fts3Emulator, marker: str) -> int:
    """How many FTS jobs carry ``marker`` (a request id) in their parameters."""
    with sqlite3.connect(f"file:{emulator.db_path}?mode=ro", uri=True) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM jobs WHERE instr(params, ?) > 0", (marker,)
        ).fetchone()
    return int(count)
