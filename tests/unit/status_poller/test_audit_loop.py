"""The audit loop the status-poller hosts when ``audit.interval_seconds`` is set, and the
worker's background loops (started with the consumers, cancelled before the adapters close)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.domain.archival import ARCHIVAL_STATE
from datastore_common.settings import DatastoreSettings
from datastore_common.testing.fake_catalogue import FakeCatalogue, FakeDatafile
from datastore_common.testing.fakes import FakeStorage, FakeTransferService, RecordingPublisher
from datastore_common.worker import Service, Worker
from datastore_status_poller.bootstrap import bootstrap
from datastore_status_poller.fakes import RecordingRequeue


def poller(settings: DatastoreSettings, **ports: Any) -> Any:
    return bootstrap(
        settings,
        transfers=FakeTransferService(),
        publisher=RecordingPublisher(),
        requeue=RecordingRequeue(),
        **ports,
    )


def test_no_audit_unless_an_interval_is_set() -> None:
    assert poller(DatastoreSettings()).background == ()


async def test_the_loop_audits_the_catalogue_against_the_tape_and_writes_its_report(
    tmp_path: Any,
) -> None:
    catalogue = FakeCatalogue()
    location = "instrument/20XX/ABC-1/scan/s/f.nxs"
    catalogue.datafiles[5] = FakeDatafile(5, 1, "f.nxs", location, 3, "adler32:00000001")
    await catalogue.set_archival("Datafile", {5: {ARCHIVAL_STATE: "FINISHED"}})
    tape = FakeStorage()  # the tape lacks it
    settings = DatastoreSettings(
        audit={"interval_seconds": 0.01, "report_dir": tmp_path},  # type: ignore[arg-type]
        tape_archive="root://tape.example:1094//",
    )
    service = poller(settings, catalogue=catalogue, tape=tape)
    [loop] = service.background
    task = asyncio.create_task(loop())
    for _ in range(200):
        if list(tmp_path.glob("audit-*.json")):
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    [report] = tmp_path.glob("audit-*.txt")
    assert location in report.read_text()
    assert "missing on tape: 1" in report.read_text()


async def test_a_worker_runs_background_loops_until_it_is_closed() -> None:
    ran = asyncio.Event()
    cancelled = asyncio.Event()
    closed: list[str] = []

    async def loop() -> None:
        ran.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def close() -> None:
        assert cancelled.is_set(), "adapters closed while the loop still ran"
        closed.append("adapters")

    def make(settings: DatastoreSettings, *, bus: Bus | None = None) -> Service:
        return Service(routes=(), background=(loop,), close=close)

    close_worker = await Worker("test", make).wire(cast(Bus, None), DatastoreSettings())
    await asyncio.wait_for(ran.wait(), 1)
    await close_worker()
    assert cancelled.is_set() and closed == ["adapters"]
