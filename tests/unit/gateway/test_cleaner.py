"""The cleaner of restored copies: removes only expired copies Datastore wrote (checked by
size and adler32) that no live restore needs; a dry run removes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from datastore_common.domain.completion import email_text
from datastore_common.domain.ledger import new_request
from datastore_common.messages import (
    FileState,
    PlannedJob,
    PlannedTransfer,
    RequestCompleted,
    RestoreRequested,
    TransferStatus,
)
from datastore_common.ports import StoredFile
from datastore_common.settings import RestoreSettings
from datastore_common.testing.fakes import FakeStorage
from datastore_gateway.cleaner import RestoredCopyCleaner
from datastore_gateway.following import copies_until
from datastore_gateway.ledger import Ledger

DAY = 86400.0
SUM = "adler32:0000abcd"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def transfer(name: str, *, checksum: str | None = SUM) -> PlannedTransfer:
    return PlannedTransfer(
        source=f"root://tape//{name}",
        destination=f"root://udc//{name}",
        checksum=checksum,
        filesize=100,
    )


def restore_of(
    request_id: str, names: list[str], *, online: list[str] = (), checksum: str | None = SUM
) -> RestoreRequested:
    jobs = (
        [
            PlannedJob(
                job_id=f"job-{request_id}",
                sid="s",
                kind="restore",
                transfers=[transfer(n, checksum=checksum) for n in names],
            )
        ]
        if names
        else []
    )
    return RestoreRequested(
        request_id=request_id, jobs=jobs, already_online=[transfer(n) for n in online]
    )


def finished(request_id: str, names: list[str], *, state: str = "FINISHED") -> TransferStatus:
    return TransferStatus(
        request_id=request_id,
        kind="restore",
        job_id=f"job-{request_id}",
        fts_endpoint="https://fts",
        job_state=state,
        files=[
            FileState(source=f"root://tape//{n}", destination=f"root://udc//{n}", state=state)
            for n in names
        ],
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def ledger(tmp_path: Path, clock: Clock) -> AsyncIterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.sqlite", clock=clock, copy_retention_days=14)
    await ledger.open()
    yield ledger
    await ledger.close()


@pytest.fixture
def udc() -> FakeStorage:
    """The user data cache with the copies FTS wrote (the catalogue's size and adler32)."""
    return FakeStorage({f"root://udc//{n}": StoredFile(100, SUM) for n in "abc"})


def cleaner(
    ledger: Ledger, udc: FakeStorage, clock: Clock, **settings: object
) -> RestoredCopyCleaner:
    return RestoredCopyCleaner(ledger, udc, RestoreSettings(**settings), clock=clock)


async def restored(ledger: Ledger, request_id: str, names: list[str], **kw: object) -> None:
    message = restore_of(request_id, names, **kw)  # type: ignore[arg-type]
    await ledger.record(new_request(message, owner="root", source="http"))
    if names:
        await ledger.apply_status(finished(request_id, names))


class TestCleaner:
    async def test_an_expired_copy_it_wrote_is_removed_and_recorded(
        self, ledger: Ledger, udc: FakeStorage, clock: Clock
    ) -> None:
        await restored(ledger, "r1", ["a", "b"])
        clock.now += 13 * DAY
        assert await cleaner(ledger, udc, clock).clean_expired() == {}
        assert udc.removed == []

        clock.now += 2 * DAY
        assert await cleaner(ledger, udc, clock).clean_expired() == {"removed": 2}
        assert sorted(udc.removed) == ["root://udc//a", "root://udc//b"]
        assert "root://udc//c" in udc.files  # never restored by Datastore: untouched
        record = await ledger.copy_record("root://udc//a")
        assert record is not None and record[0] == "REMOVED"
        assert await cleaner(ledger, udc, clock).clean_expired() == {}  # once

    async def test_a_file_someone_replaced_is_left_alone(
        self, ledger: Ledger, udc: FakeStorage, clock: Clock
    ) -> None:
        await restored(ledger, "r1", ["a"])
        udc.files["root://udc//a"] = StoredFile(100, "adler32:ffffffff")
        clock.now += 15 * DAY
        assert await cleaner(ledger, udc, clock).clean_expired() == {"forgotten": 1}
        assert udc.removed == []
        record = await ledger.copy_record("root://udc//a")
        assert record is not None and record[0] == "FORGOTTEN"
        assert record[2] is not None and "left alone" in record[2]

    async def test_a_copy_a_live_restore_needs_stays(
        self, ledger: Ledger, udc: FakeStorage, clock: Clock
    ) -> None:
        await restored(ledger, "r1", ["a"])
        clock.now += 15 * DAY
        # A restore not yet ended uses it (found it online) beside a file still recalled.
        await ledger.record(
            new_request(restore_of("r2", ["c"], online=["a"]), owner="root", source="http")
        )
        clock.now += 15 * DAY  # its use extended the expiry by 14 days; past that too
        assert await cleaner(ledger, udc, clock).clean_expired() == {"kept": 1}
        assert udc.removed == []
        await ledger.apply_status(finished("r2", ["c"]))
        clock.now += 15 * DAY
        outcome = await cleaner(ledger, udc, clock).clean_expired()
        assert outcome == {"removed": 2}  # a, and c which r2 wrote

    async def test_finding_it_online_extends_its_stay(
        self, ledger: Ledger, udc: FakeStorage, clock: Clock
    ) -> None:
        await restored(ledger, "r1", ["a"])
        clock.now += 10 * DAY
        await restored(ledger, "r2", [], online=["a"])  # FINISHED at once
        clock.now += 5 * DAY  # 15 days after writing, 5 after its last use
        assert await cleaner(ledger, udc, clock).clean_expired() == {}
        clock.now += 10 * DAY
        assert await cleaner(ledger, udc, clock).clean_expired() == {"removed": 1}

    async def test_a_copy_without_a_catalogue_checksum_is_never_recorded(
        self, ledger: Ledger, udc: FakeStorage, clock: Clock
    ) -> None:
        await restored(ledger, "r1", ["a"], checksum=None)
        clock.now += 30 * DAY
        assert await cleaner(ledger, udc, clock).clean_expired() == {}
        assert await ledger.copy_record("root://udc//a") is None

    async def test_a_failed_copy_is_not_recorded(
        self, ledger: Ledger, udc: FakeStorage, clock: Clock
    ) -> None:
        await ledger.record(new_request(restore_of("r1", ["a"]), owner="root", source="http"))
        await ledger.apply_status(finished("r1", ["a"], state="FAILED"))
        assert await ledger.copy_record("root://udc//a") is None

    async def test_a_dry_run_removes_nothing_and_counts_what_it_would(
        self, ledger: Ledger, udc: FakeStorage, clock: Clock
    ) -> None:
        await restored(ledger, "r1", ["a", "b"])
        clock.now += 15 * DAY
        dry = cleaner(ledger, udc, clock, cleaner_dry_run=True)
        assert await dry.clean_expired() == {"would_remove": 2}
        assert udc.removed == []
        record = await ledger.copy_record("root://udc//a")
        assert record is not None and record[0] == "KEPT"


class TestCopiesUntil:
    async def test_the_completion_says_until_when_and_the_copies_stay_that_long(
        self, ledger: Ledger, udc: FakeStorage, clock: Clock
    ) -> None:
        await ledger.record(new_request(restore_of("r1", ["a", "b"]), owner="root", source="http"))
        await ledger.apply_status(finished("r1", ["a"]).model_copy(update={"job_state": "ACTIVE"}))
        clock.now += 10 * DAY  # b takes ten days to stage
        await ledger.apply_status(finished("r1", ["a", "b"]))
        [delivery] = await ledger.deliveries("r1")
        completed = RequestCompleted.model_validate_json(delivery.payload)
        assert completed.copies_until is not None
        assert completed.copies_until.timestamp() == clock.now + 14 * DAY
        record = await ledger.get("r1")
        assert record is not None
        assert copies_until(record) == completed.copies_until
        assert "stay until" in email_text(completed)[1]
        clock.now += 13 * DAY  # a was written 23 days ago, but the restore ended 13 ago
        assert await cleaner(ledger, udc, clock).clean_expired() == {}
        clock.now += 2 * DAY
        assert await cleaner(ledger, udc, clock).clean_expired() == {"removed": 2}
