"""``datastore-ops retry``: what it picks (pure), and the whole path on a gateway of fakes
(the ledger's listing -> POST /datasets/{id}/retry), as an operator runs it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from datastore_common.messages import ArchiveRetryRequested, RequestFailed, wrap
from datastore_common.ops.cli import run_cli
from datastore_common.ops.dlq import UsageError
from datastore_common.ops.retry import Gateway, bulk_retry, datasets_to_retry, parse_since
from datastore_gateway.ledger_feed import follow
from tests.unit.gateway.conftest import build_gateway

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2d", NOW - timedelta(days=2)),
        ("12h", NOW - timedelta(hours=12)),
        ("30m", NOW - timedelta(minutes=30)),
        ("1w", NOW - timedelta(weeks=1)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T06:00:00+00:00", datetime(2026, 3, 1, 6, tzinfo=UTC)),
    ],
)
def test_since_is_a_duration_back_or_a_date(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_since_that_is_neither_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="2d"):
        parse_since("two days", NOW)


def request(
    request_id: str, datasets: list[dict[str, Any]], failure: str | None, kind: str = "archive"
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "kind": kind,
        "datasets": datasets,
        "failure": None if failure is None else {"class": failure, "reason": "x"},
    }


def test_datasets_of_the_archives_of_the_class_asked_once_each() -> None:
    scan = {"investigation": "ABC", "visit_id": "1", "dataset": "scan_0000", "datafiles": 2}
    listed = [
        request("r1", [scan, {"dataset_id": 7}], "system"),
        request("r2", [scan], None),  # FTS failed its files: a system failure
        request("r3", [{"investigation": "ABC", "visit_id": "1", "dataset": "s1"}], "user"),
        request("r4", [{"dataset_id": 9}], "system", kind="restore"),
    ]
    picked = datasets_to_retry(listed, failure_classes=["system"])
    assert [(p.request_id, p.label) for p in picked] == [
        ("r1", "ABC-1/scan_0000"),
        ("r1", "dataset 7"),
    ]
    everything = datasets_to_retry(listed, failure_classes=[])
    assert [p.label for p in everything] == ["ABC-1/scan_0000", "dataset 7", "ABC-1/s1"]


async def test_bulk_retry_goes_through_the_gateways_own_retry(tmp_path: Path) -> None:
    harness = build_gateway(tmp_path)
    app = harness.app
    ids = harness.selections.add_dataset(
        1, 10, ["instrument/20XX/ABC123-1/scan/scan_0000/f0.nxs"], first_datafile_id=100,
        investigation="ABC123", name="scan_0000", state="FAILED",
    )  # fmt: skip
    async with app.router.lifespan_context(app):
        ledger = app.state.gateway.ledger
        # An earlier retry of dataset 10 that was given up (a system failure).
        earlier = ArchiveRetryRequested(request_id="r-old", dataset_id=10, datafile_ids=ids)
        await follow(wrap(earlier, source="gateway", correlation_id="r-old", user="simple/root"),
                     ledger=ledger)  # fmt: skip
        failed = RequestFailed(
            request_id="r-old", kind="archive", failure_class="system", reason="FTS down"
        )
        await follow(wrap(failed, source="fts-submitter", correlation_id="r-old"), ledger=ledger)
        session = await harness.sessions.login("simple", {"username": "root", "password": "pw"})
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {session}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", headers=headers
        ) as client:
            gateway = Gateway(client)
            since = datetime.now(UTC) - timedelta(days=2)
            planned = await bulk_retry(
                gateway, states=["FAILED"], failure_classes=["system"], since=since, dry_run=True
            )
            assert planned.planned == ["dataset 10 (request r-old)"]
            assert harness.publisher.published == []
            none = await bulk_retry(
                gateway, states=["FAILED"], failure_classes=["user"], since=since, dry_run=False
            )
            assert none.retried == [] and harness.publisher.published == []
            done = await bulk_retry(
                gateway, states=["FAILED"], failure_classes=["system"], since=since, dry_run=False
            )
    [(label, request_id)] = done.retried
    assert label == "dataset 10"
    [published] = harness.publisher.published
    assert isinstance(published.data, ArchiveRetryRequested)
    assert published.data.request_id == request_id and published.data.datafile_ids == ids


async def test_retry_without_a_session_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATASTORE_SESSION", raising=False)
    assert await run_cli(["retry", "--since", "2d"]) == 2
    assert "needs an ICAT session" in capsys.readouterr().err
