"""GET /requests/{id}: the ledger follows a request from its 202 to its end (SQLite ledger,
events applied as the gateway's ledger consumer applies them)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from datastore_common.domain.answers import accepted as accepted_answer
from datastore_common.domain.failures import give_up_events
from datastore_common.errors import PeerUnavailableError
from datastore_common.messages import (
    ArchiveRegistered,
    ArchiveRequested,
    Envelope,
    FileState,
    InvestigationSpec,
    Payload,
    RequestCompleted,
    RequestDelayed,
    RequestFailed,
    TransferStatus,
    TransferSubmitted,
    wrap,
)
from datastore_gateway.ledger import Ledger
from datastore_gateway.ledger_feed import follow
from tests.support.factories import seed_body
from tests.unit.gateway.conftest import Gateway

FTS = "https://fts:8446"


def ledger_of(gateway: Gateway) -> Ledger:
    ledger = gateway.app.state.gateway.ledger
    assert isinstance(ledger, Ledger)
    return ledger


def archive(gateway: Gateway) -> ArchiveRequested:
    answer = gateway.client.post("/archive", json=seed_body(), headers=gateway.bearer())
    assert answer.status_code == 202, answer.text
    [published] = gateway.publisher.published
    assert isinstance(published.data, ArchiveRequested)
    return published.data


def get(gateway: Gateway, request_id: str, **who: str) -> Any:
    answer = gateway.client.get(f"/requests/{request_id}", headers=gateway.bearer(**who))
    return answer.status_code, answer.json()


async def feed(gateway: Gateway, data: Payload, *, source: str = "icat-writer") -> None:
    envelope: Envelope[Any] = wrap(data, source=source, correlation_id="c", user="simple/root")
    await follow(envelope, ledger=ledger_of(gateway))


def statuses(
    request: ArchiveRequested, state: str, files: list[str] | None = None
) -> TransferStatus:
    [job] = request.jobs
    return TransferStatus(
        request_id=request.request_id,
        kind="archive",
        job_id=job.job_id,
        fts_endpoint=FTS,
        job_state=state,
        files=[
            FileState(source=t.source, destination=t.destination, state=s)
            for t, s in zip(job.transfers, files or [state] * len(job.transfers), strict=True)
        ],
    )


async def test_an_accepted_archive_is_in_the_ledger_at_once(gateway: Gateway) -> None:
    request = archive(gateway)
    code, body = get(gateway, request.request_id)
    assert code == 200
    assert body["state"] == "SUBMITTED" and body["kind"] == "archive"
    assert (body["owner"], body["source"], body["failure"]) == ("simple/root", "http", None)
    assert body["waiting_on"].startswith("registration in ICAT")
    [job] = body["jobs"]
    assert job == {
        "job_id": request.jobs[0].job_id,
        "state": "PLANNED",
        "files_done": 0,
        "files_failed": 0,
        "files_total": 4,
        "bytes_done": 0,
        "bytes_total": 0,
    }
    assert body["datasets"] == [
        {"investigation": "ABC123", "visit_id": "1", "dataset": "scan_0000", "datafiles": 4}
    ]


async def test_others_get_404_and_admins_see_everything(gateway: Gateway) -> None:
    request = archive(gateway)
    code, body = get(gateway, request.request_id, username="alice", password="alice-pw", auth="db")
    assert code == 404 and request.request_id in body["detail"]
    assert get(gateway, "no-such-request")[0] == 404
    # alice's own request (published straight to the broker) is visible to root, an admin.
    mine = request.model_copy(update={"request_id": "alices"})
    envelope: Envelope[Any] = wrap(mine, source="instrument-7", correlation_id="c", user="db/alice")
    await follow(envelope, ledger=ledger_of(gateway))
    code, body = get(gateway, "alices")
    assert code == 200 and (body["owner"], body["source"]) == ("db/alice", "broker")
    assert get(gateway, "alices", username="alice", password="alice-pw", auth="db")[0] == 200


async def test_states_follow_the_events_forward_only_to_finished(gateway: Gateway) -> None:
    request = archive(gateway)
    [job] = request.jobs
    sized = job.model_copy(
        update={"transfers": [t.model_copy(update={"filesize": 100}) for t in job.transfers]}
    )
    await feed(gateway, ArchiveRegistered(request_id=request.request_id, jobs=[sized]))
    assert get(gateway, request.request_id)[1]["waiting_on"] == "submission to FTS"
    await feed(
        gateway,
        TransferSubmitted(
            request_id=request.request_id,
            kind="archive",
            job_id=job.job_id,
            fts_endpoint=FTS,
            transfers=job.transfers,
        ),
    )
    body = get(gateway, request.request_id)[1]
    assert (body["state"], body["waiting_on"]) == ("SUBMITTED", "a transfer slot in the FTS queue")
    await feed(gateway, statuses(request, "ACTIVE", ["FINISHED", "ACTIVE", "ACTIVE", "SUBMITTED"]))
    body = get(gateway, request.request_id)[1]
    assert (body["state"], body["waiting_on"]) == ("ACTIVE", "the copy")
    assert (body["jobs"][0]["files_done"], body["jobs"][0]["bytes_done"]) == (1, 100)
    assert body["jobs"][0]["bytes_total"] == 400
    await feed(gateway, statuses(request, "SUBMITTED"))  # stale: overtaken
    assert get(gateway, request.request_id)[1]["jobs"][0]["files_done"] == 1
    await feed(gateway, statuses(request, "FINISHED"))
    body = get(gateway, request.request_id)[1]
    assert (body["state"], body["waiting_on"]) == ("FINISHED", None)
    assert body["jobs"][0]["files_done"] == 4 and body["jobs"][0]["bytes_done"] == 400
    await feed(gateway, statuses(request, "ACTIVE"))  # a late event moves nothing back
    assert get(gateway, request.request_id)[1]["state"] == "FINISHED"


async def test_a_request_given_up_ends_failed_with_its_reason(gateway: Gateway) -> None:
    request = archive(gateway)
    for event in give_up_events(
        request, "gave up after 54 attempts: icat down", "system", fts_endpoint=FTS
    ):
        await feed(gateway, event)
    body = get(gateway, request.request_id)[1]
    assert body["state"] == "FAILED" and body["waiting_on"] is None
    assert body["failure"] == {"class": "system", "reason": "gave up after 54 attempts: icat down"}
    assert body["jobs"][0]["state"] == "FAILED" and body["jobs"][0]["files_failed"] == 4


async def test_some_files_failed_ends_finisheddirty(gateway: Gateway) -> None:
    request = archive(gateway)
    await feed(
        gateway, statuses(request, "FINISHEDDIRTY", ["FINISHED", "FAILED", "FINISHED", "FINISHED"])
    )
    body = get(gateway, request.request_id)[1]
    assert body["state"] == "FINISHEDDIRTY"
    assert (body["jobs"][0]["files_done"], body["jobs"][0]["files_failed"]) == (3, 1)


async def test_an_event_before_its_request_waits_then_is_dropped_when_old(
    gateway: Gateway,
) -> None:
    request = archive(gateway).model_copy(update={"request_id": "not-recorded-yet"})
    envelope: Envelope[Any] = wrap(statuses(request, "ACTIVE"), source="p", correlation_id="c")
    with pytest.raises(PeerUnavailableError, match="not in the ledger yet"):
        await follow(envelope, ledger=ledger_of(gateway))
    old = envelope.model_copy(update={"time": envelope.time.replace(year=2020)})
    await follow(old, ledger=ledger_of(gateway))  # no error: logged and dropped
    assert not await ledger_of(gateway).knows("not-recorded-yet")


async def test_ended_requests_are_forgotten_after_the_retention(gateway: Gateway) -> None:
    ended, running = archive(gateway), None
    gateway.publisher.published.clear()
    running = archive_other(gateway)
    await feed(gateway, statuses(ended, "FINISHED"))
    ledger = ledger_of(gateway)
    assert await ledger.purge(older_than_seconds=3600) == 0
    assert await ledger.purge(older_than_seconds=-1) == 1  # everything "older" than now
    assert not await ledger.knows(ended.request_id)
    assert await ledger.knows(running.request_id)


def archive_other(gateway: Gateway) -> ArchiveRequested:
    body = seed_body()
    body["investigations"][0]["name"] = "ABC124"
    answer = gateway.client.post("/archive", json=body, headers=gateway.bearer())
    assert answer.status_code == 202, answer.text
    [published] = gateway.publisher.published
    assert isinstance(published.data, ArchiveRequested)
    return published.data


async def test_a_key_whose_request_failed_lets_a_new_attempt_through(gateway: Gateway) -> None:
    headers = {**gateway.bearer(), "Idempotency-Key": "run-42"}
    first = gateway.client.post("/archive", json=seed_body(), headers=headers).json()
    replay = gateway.client.post("/archive", json=seed_body(), headers=headers).json()
    assert replay == first and len(gateway.publisher.published) == 1
    [published] = gateway.publisher.published
    for event in give_up_events(published.data, "icat down for 24 h", "system", fts_endpoint=FTS):
        await feed(gateway, event)

    again = gateway.client.post("/archive", json=seed_body(), headers=headers)

    assert again.status_code == 202
    assert again.json()["request_id"] != first["request_id"]
    assert len(gateway.publisher.published) == 2
    # ... and that new attempt is replayed as usual while it is not FAILED.
    assert gateway.client.post("/archive", json=seed_body(), headers=headers).json() == again.json()


async def test_a_retry_shows_in_waiting_on_until_the_request_moves_on(gateway: Gateway) -> None:
    request = archive(gateway)
    at = datetime(2026, 12, 1, 12, 5, tzinfo=UTC)
    await feed(
        gateway,
        RequestDelayed(request_id=request.request_id, reason="PeerTimeoutError: ICAT", retry_at=at),
    )
    assert get(gateway, request.request_id)[1]["waiting_on"] == (
        "a retry at 2026-12-01 12:05:00 UTC after: PeerTimeoutError: ICAT"
    )
    await feed(gateway, ArchiveRegistered(request_id=request.request_id, jobs=request.jobs))
    assert get(gateway, request.request_id)[1]["waiting_on"] == "submission to FTS"


async def test_a_ledger_made_by_an_earlier_release_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:
        old.execute(  # ledger_requests as first released: without retry_note
            "CREATE TABLE ledger_requests (request_id TEXT PRIMARY KEY, kind TEXT NOT NULL,"
            " owner TEXT, source TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,"
            " updated DOUBLE PRECISION NOT NULL, state TEXT NOT NULL,"
            " registered INTEGER NOT NULL DEFAULT 0, failure_class TEXT, failure_reason TEXT,"
            " datasets TEXT NOT NULL)"
        )
    ledger = Ledger(f"sqlite:///{path}")
    await ledger.open()
    try:
        delayed = RequestDelayed(request_id="r", reason="x", retry_at=datetime.now(UTC))
        await ledger.delayed(delayed)  # writes retry_note: the column exists now
    finally:
        await ledger.close()


async def test_an_instruments_request_enters_the_ledger_once_accepted(gateway: Gateway) -> None:
    """Published straight to the broker: the ledger skips the request itself (it may yet
    be rejected) and records it from the icat-writer's archive.accepted, with its
    instrument; its completion is addressed to that instrument."""
    ledger = ledger_of(gateway)
    body = seed_body()
    request = ArchiveRequested(
        request_id="daq-1",
        investigations=[InvestigationSpec.model_validate(i) for i in body["investigations"]],
    )
    requested: Envelope[Any] = wrap(request, source="daq", correlation_id="daq-1", user="db/alice")
    await follow(requested, ledger=ledger, instruments={"daq"})
    assert get(gateway, "daq-1")[0] == 404  # not accepted yet: maybe never
    accepted = accepted_answer(
        request,
        instrument="daq",
        owner="db/alice",
        job_ids=["j-1"],
        public_url="https://ds.example.org",
        request_message_id=str(requested.id),
    )
    envelope: Envelope[Any] = wrap(
        accepted, source="icat-writer", correlation_id="daq-1", user="db/alice"
    )
    await follow(envelope, ledger=ledger, instruments={"daq"})
    await follow(envelope, ledger=ledger, instruments={"daq"})  # redelivered: harmless
    code, shown = get(gateway, "daq-1", username="alice", password="alice-pw", auth="db")
    assert code == 200
    assert (shown["owner"], shown["source"], shown["instrument"]) == ("db/alice", "broker", "daq")
    assert shown["datasets"] == [
        {"investigation": "ABC123", "visit_id": "1", "dataset": "scan_0000", "datafiles": 4}
    ]
    listed = gateway.client.get(
        "/requests", headers=gateway.bearer(username="alice", password="alice-pw", auth="db")
    ).json()
    assert [item["request_id"] for item in listed["items"]] == ["daq-1"]
    await ledger.fail(
        RequestFailed(request_id="daq-1", kind="archive", failure_class="user", reason="gone")
    )
    [delivery] = await ledger.deliveries("daq-1")
    completed = RequestCompleted.model_validate_json(delivery.payload)
    assert completed.instrument == "daq"
    assert completed.routing_key() == "datastore.request.completed.v1.daq"
    assert not completed.mandatory()  # an instrument not listening does not stall the outbox


async def test_a_gateway_request_keeps_its_plain_completion(gateway: Gateway) -> None:
    request = archive(gateway)
    await ledger_of(gateway).fail(
        RequestFailed(
            request_id=request.request_id, kind="archive", failure_class="user", reason="x"
        )
    )
    [delivery] = await ledger_of(gateway).deliveries(request.request_id)
    completed = RequestCompleted.model_validate_json(delivery.payload)
    assert completed.instrument is None
    assert completed.routing_key() == "datastore.request.completed.v1"
    assert get(gateway, request.request_id)[1]["instrument"] is None


async def test_the_feed_copy_of_a_request_recorded_here_is_known_applied_once(
    gateway: Gateway,
) -> None:
    answer = gateway.client.post("/archive", json=seed_body(), headers=gateway.bearer())
    assert answer.status_code == 202, answer.text
    [published] = gateway.publisher.published
    assert published.message_id is not None
    ledger = ledger_of(gateway)
    # Its copy on gateway.ledger is acked unread: the request is in the ledger already.
    assert await ledger.knows(answer.json()["request_id"])
    assert await ledger.applied_here(str(published.message_id))
    # Once only (one copy), and never for a message this gateway did not record itself.
    assert not await ledger.applied_here(str(published.message_id))
    assert not await ledger.applied_here(None)
    assert not await ledger.applied_here("someone-elses")


async def test_a_request_not_recorded_here_is_left_to_the_feed(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = ledger_of(gateway)

    def locked(*_: Any, **__: Any) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(ledger, "_record_in", locked)
    answer = gateway.client.post("/archive", json=seed_body(), headers=gateway.bearer())
    assert answer.status_code == 202, answer.text  # the feed records it instead
    [published] = gateway.publisher.published
    monkeypatch.undo()
    assert not await ledger.applied_here(str(published.message_id))


async def test_a_feed_copy_arriving_before_the_record_waits_for_it(gateway: Gateway) -> None:
    ledger = ledger_of(gateway)
    ledger.expect("early")
    waiting = asyncio.ensure_future(ledger.applied_here("early"))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the request path has published, not yet recorded
    ledger.settle("early", recorded=True)
    ledger.settle("early", recorded=False)  # the request path's end: the first word counts
    assert await waiting
    ledger.expect("failed")
    failing = asyncio.ensure_future(ledger.applied_here("failed"))
    await asyncio.sleep(0)
    ledger.settle("failed", recorded=False)  # publish or record failed: the feed applies it
    assert not await failing


async def test_a_publish_that_fails_leaves_its_copy_to_the_feed(gateway: Gateway) -> None:
    gateway.publisher.fail_with = ConnectionError("broker gone")
    answer = gateway.client.post("/archive", json=seed_body(), headers=gateway.bearer())
    assert answer.status_code == 503
    assert not ledger_of(gateway)._own_events  # nothing left waiting or remembered
