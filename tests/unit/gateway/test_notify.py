"""Being told a request ended: ``notify`` in the bodies, the ledger's outbox (one
``request.completed`` per request, written with the end), and the notifier sending it on each
channel with fakes (broker, webhook, e-mail), retrying and giving up as it should."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from datastore_common.domain.completion import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    completion_message_id,
    verify_signature,
)
from datastore_common.domain.ledger import LedgerJob, NewRequest, PlannedFile
from datastore_common.errors import PeerUnavailableError
from datastore_common.messages import (
    ArchiveRequested,
    FileState,
    RequestCompleted,
    RequestFailed,
    RestoreRequested,
    TransferStatus,
)
from datastore_common.settings import NotifySettings
from datastore_common.testing.fakes import RecordingPublisher
from datastore_gateway.ledger import Ledger
from datastore_gateway.notifications import DeliveryRefusedError, MailSender, WebhookSender
from datastore_gateway.notifier import Notifier
from tests.support.factories import seed_body
from tests.unit.gateway.conftest import build_gateway
from tests.unit.gateway.test_restore import LOCATIONS

SECRET = "s3cret"
FILES = ["root://tape//a/f0", "root://tape//a/f1"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeWebhooks(WebhookSender):
    """Records each call; ``fail_with`` makes the next ones raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []
        self.fail_with: Exception | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((url, body, dict(headers)))


class FakeMail(MailSender):
    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []
        self.fail_with: Exception | None = None

    async def send(self, to: str, subject: str, body: str, *, message_id: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append({"to": to, "subject": subject, "body": body, "id": message_id})


def settings(**changes: Any) -> NotifySettings:
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "smtp_host": "mail.example.org",
        "max_attempts": 3,
        "retry_delays": (10.0, 60.0),
    }
    return NotifySettings(**(values | changes))


@pytest.fixture
async def ledger(tmp_path: Path) -> Any:
    clock = Clock()
    store = Ledger(
        f"sqlite:///{tmp_path}/ledger.sqlite", clock=clock, public_url="https://ds.example.org"
    )
    await store.open()
    store.test_clock = clock  # type: ignore[attr-defined]
    yield store
    await store.close()


def clock_of(ledger: Ledger) -> Clock:
    clock: Clock = ledger.test_clock  # type: ignore[attr-defined]
    return clock


def new(request_id: str = "r1", notify: dict[str, str] | None = None) -> NewRequest:
    return NewRequest(
        request_id=request_id,
        kind="archive",
        owner="db/alice",
        source="http",
        datasets=({"investigation": "X", "visit_id": "1", "dataset": "d", "datafiles": 2},),
        jobs=(LedgerJob("job-1", tuple(PlannedFile(f, 100) for f in FILES)),),
        notify=notify,
    )


def status(states: list[str], *, request_id: str = "r1", reason: str | None = None) -> Any:
    return TransferStatus(
        request_id=request_id,
        kind="archive",
        job_id="job-1",
        fts_endpoint="https://fts",
        job_state=states[0] if len(set(states)) == 1 else "FINISHEDDIRTY",
        files=[
            FileState(source="s", destination=f, state=s, reason=reason if s == "FAILED" else None)
            for f, s in zip(FILES, states, strict=True)
        ],
    )


async def webhook_of(ledger: Ledger) -> Any:
    [webhook] = [d for d in await ledger.deliveries("r1") if d.channel == "webhook"]
    return webhook


BOTH = {"webhook": "https://hooks.example.org/ds", "email": "alice@example.org"}


class TestOutbox:
    async def test_nothing_is_due_before_the_request_ends(self, ledger: Ledger) -> None:
        await ledger.record(new(notify=BOTH))
        await ledger.apply_status(status(["ACTIVE", "ACTIVE"]))
        assert await ledger.deliveries("r1") == []
        assert await ledger.claim_due(limit=10, lease_seconds=60) == []

    async def test_the_end_writes_one_completion_per_channel_once(self, ledger: Ledger) -> None:
        await ledger.record(new(notify=BOTH))
        await ledger.apply_status(status(["FINISHED", "FAILED"], reason="checksum mismatch"))
        # Redelivered, then a late give-up: still the one completion, as first written.
        await ledger.apply_status(status(["FINISHED", "FAILED"], reason="checksum mismatch"))
        await ledger.fail(
            RequestFailed(request_id="r1", kind="archive", failure_class="system", reason="x")
        )
        deliveries = await ledger.deliveries("r1")
        assert [(d.channel, d.target) for d in deliveries] == [
            ("broker", None),
            ("email", "alice@example.org"),
            ("webhook", "https://hooks.example.org/ds"),
        ]
        assert {d.message_id for d in deliveries} == {str(completion_message_id("r1"))}
        completed = RequestCompleted.model_validate_json(deliveries[0].payload)
        assert completed.state == "FINISHEDDIRTY"
        assert completed.files == {"FAILED": 1, "FINISHED": 1}
        assert (completed.bytes_total, completed.bytes_done) == (200, 100)
        assert completed.failure is not None
        assert completed.failure.reason == "1 of 2 files failed: checksum mismatch"
        assert completed.status_url == "https://ds.example.org/requests/r1"
        assert completed.owner == "db/alice"

    async def test_without_notify_only_the_broker_is_told(self, ledger: Ledger) -> None:
        await ledger.record(new())
        await ledger.fail(
            RequestFailed(request_id="r1", kind="archive", failure_class="user", reason="gone")
        )
        [delivery] = await ledger.deliveries("r1")
        completed = RequestCompleted.model_validate_json(delivery.payload)
        assert (delivery.channel, completed.state) == ("broker", "FAILED")
        assert completed.failure is not None
        assert (completed.failure.failure_class, completed.failure.reason) == ("user", "gone")

    async def test_a_claim_is_leased_then_free_again(self, ledger: Ledger) -> None:
        await ledger.record(new())
        await ledger.apply_status(status(["FINISHED", "FINISHED"]))
        [first] = await ledger.claim_due(limit=10, lease_seconds=60)
        assert first.attempts == 1
        assert await ledger.claim_due(limit=10, lease_seconds=60) == []  # another replica
        clock_of(ledger).now += 61  # the holder stopped without marking it
        [again] = await ledger.claim_due(limit=10, lease_seconds=60)
        assert (again.request_id, again.attempts) == ("r1", 2)

    async def test_purge_forgets_the_outbox_too(self, ledger: Ledger) -> None:
        await ledger.record(new())
        await ledger.apply_status(status(["FINISHED", "FINISHED"]))
        clock_of(ledger).now += 100
        assert await ledger.purge(older_than_seconds=10) == 1
        assert await ledger.deliveries("r1") == []


def notifier_of(
    ledger: Ledger, publisher: RecordingPublisher, webhooks: FakeWebhooks, mail: FakeMail, **kw: Any
) -> Notifier:
    return Notifier(
        ledger,
        settings(**kw),
        publisher=publisher,
        webhooks=webhooks,
        mail=mail,
        clock=clock_of(ledger),
    )


async def ended(ledger: Ledger, notify: dict[str, str] | None = BOTH) -> None:
    await ledger.record(new(notify=notify))
    await ledger.apply_status(status(["FINISHED", "FINISHED"]))


class TestNotifier:
    async def test_each_channel_is_told_once(self, ledger: Ledger) -> None:
        publisher, webhooks, mail = RecordingPublisher(), FakeWebhooks(), FakeMail()
        notifier = notifier_of(ledger, publisher, webhooks, mail)
        await ended(ledger)
        assert await notifier.deliver_due() == 3
        assert await notifier.deliver_due() == 0  # marked sent: nothing again
        [published] = publisher.published
        assert isinstance(published.data, RequestCompleted)
        assert published.message_id == completion_message_id("r1")
        assert (published.correlation_id, published.user) == ("r1", "db/alice")
        [(url, body, headers)] = webhooks.calls
        assert url == "https://hooks.example.org/ds"
        assert json.loads(body) == published.data.model_dump(mode="json")
        assert verify_signature(
            SECRET.encode(),
            body,
            timestamp=headers[TIMESTAMP_HEADER],
            signed=headers[SIGNATURE_HEADER],
            now=clock_of(ledger).now,
        )
        [mailed] = mail.sent
        assert mailed["to"] == "alice@example.org"
        assert mailed["subject"] == "Datastore archive r1: FINISHED"
        assert "https://ds.example.org/requests/r1" in mailed["body"]
        assert {d.state for d in await ledger.deliveries("r1")} == {"SENT"}

    async def test_a_receiver_down_is_retried_with_backoff_then_given_up(
        self, ledger: Ledger
    ) -> None:
        publisher, webhooks, mail = RecordingPublisher(), FakeWebhooks(), FakeMail()
        notifier = notifier_of(ledger, publisher, webhooks, mail)
        await ended(ledger, {"webhook": BOTH["webhook"]})
        webhooks.fail_with = PeerUnavailableError("webhook answered 503")
        assert await notifier.deliver_due() == 1  # the broker's
        clock = clock_of(ledger)
        clock.now += 9
        assert await notifier.deliver_due() == 0 and webhooks.calls == []  # not due yet
        clock.now += 1
        await notifier.deliver_due()  # second attempt fails: 60 s next
        clock.now += 59
        await notifier.deliver_due()
        webhook = await webhook_of(ledger)
        assert (webhook.state, webhook.attempts) == ("PENDING", 2)
        clock.now += 1
        await notifier.deliver_due()  # third of max_attempts=3: given up
        webhook = await webhook_of(ledger)
        assert (webhook.state, webhook.attempts) == ("GAVE_UP", 3)
        assert webhook.last_error is not None and "503" in webhook.last_error

    async def test_a_receiver_recovering_gets_it_and_a_restart_resends_unsent(
        self, ledger: Ledger
    ) -> None:
        publisher, webhooks, mail = RecordingPublisher(), FakeWebhooks(), FakeMail()
        await ended(ledger, {"email": BOTH["email"]})
        mail.fail_with = PeerUnavailableError("mail server down")
        publisher.fail_with = PeerUnavailableError("broker down")
        assert await notifier_of(ledger, publisher, webhooks, mail).deliver_due() == 0
        # A new gateway process (the same ledger), once both are back.
        mail.fail_with = publisher.fail_with = None
        clock_of(ledger).now += 10
        restarted = notifier_of(ledger, publisher, webhooks, mail)
        assert await restarted.deliver_due() == 2
        assert len(mail.sent) == 1 and len(publisher.published) == 1

    async def test_refused_for_good_is_given_up_at_once(self, ledger: Ledger) -> None:
        publisher, webhooks, mail = RecordingPublisher(), FakeWebhooks(), FakeMail()
        notifier = notifier_of(ledger, publisher, webhooks, mail)
        await ended(ledger, {"webhook": BOTH["webhook"]})
        webhooks.fail_with = DeliveryRefusedError("webhook answered 404")
        await notifier.deliver_due()
        webhook = await webhook_of(ledger)
        assert (webhook.state, webhook.attempts) == ("GAVE_UP", 1)

    async def test_a_host_no_longer_allowed_is_not_called(self, ledger: Ledger) -> None:
        publisher, webhooks, mail = RecordingPublisher(), FakeWebhooks(), FakeMail()
        notifier = notifier_of(
            ledger, publisher, webhooks, mail, webhook_allowed_hosts=("other.example.org",)
        )
        await ended(ledger, {"webhook": BOTH["webhook"]})
        await notifier.deliver_due()
        assert webhooks.calls == []
        webhook = await webhook_of(ledger)
        assert webhook.state == "GAVE_UP" and "webhook_allowed_hosts" in str(webhook.last_error)

    async def test_the_broker_is_retried_for_ever(self, ledger: Ledger) -> None:
        publisher, webhooks, mail = RecordingPublisher(), FakeWebhooks(), FakeMail()
        notifier = notifier_of(ledger, publisher, webhooks, mail)
        await ended(ledger, None)
        publisher.fail_with = PeerUnavailableError("broker down")
        for _ in range(10):
            clock_of(ledger).now += 1000
            await notifier.deliver_due()
        [broker] = await ledger.deliveries("r1")
        assert (broker.state, broker.attempts) == ("PENDING", 10)


class TestHttpBodies:
    def test_notify_travels_with_an_accepted_archive_and_restore(self, tmp_path: Path) -> None:
        gateway = _with_notify(build_gateway(tmp_path), tmp_path)
        with gateway.client:
            body = seed_body() | {"notify": BOTH}
            answer = gateway.client.post("/archive", json=body, headers=gateway.bearer())
            assert answer.status_code == 202, answer.text
            [published] = gateway.publisher.published
            assert isinstance(published.data, ArchiveRequested)
            assert published.data.notify is not None
            assert published.data.notify.model_dump() == BOTH
            gateway.selections.add_dataset(1, 10, LOCATIONS, first_datafile_id=100)
            restored = gateway.client.post(
                "/restore",
                json={"dataset_ids": [10], "notify": {"email": "alice@example.org"}},
                headers=gateway.bearer(),
            )
            assert restored.status_code == 202, restored.text
            data = gateway.publisher.published[-1].data
            assert isinstance(data, RestoreRequested) and data.notify is not None
            assert data.notify.email == "alice@example.org" and data.notify.webhook is None
            # ... and the ledger keeps it for when the request ends.
            ledger = gateway.app.state.gateway.ledger
            assert isinstance(ledger, Ledger)
            with ledger._db.transaction() as db:
                stored = db.execute(
                    "SELECT notify FROM ledger_requests WHERE request_id = ?", (data.request_id,)
                )
            assert json.loads(stored[0][0]) == {"email": "alice@example.org"}

    @pytest.mark.parametrize(
        ("notify", "configured", "why"),
        [
            ({"email": "nobody"}, {}, "e-mail address"),
            ({"webhook": "http://hooks.example.org/x"}, {}, "https"),
            ({"webhook": "https://hooks.example.org/x", "sms": "1"}, {}, "sms"),
            ({"email": "a@example.org"}, {"smtp_host": None}, "notify.smtp_host"),
            ({"webhook": "https://hooks.example.org/x"}, {"webhook_secret": None}, "secret"),
            (
                {"webhook": "https://evil.example.com/x"},
                {"webhook_allowed_hosts": [".example.org"]},
                "evil.example.com",
            ),
        ],
    )
    def test_bad_or_unsendable_notify_is_a_422_saying_why(
        self, tmp_path: Path, notify: dict[str, str], configured: dict[str, Any], why: str
    ) -> None:
        gateway = _with_notify(build_gateway(tmp_path), tmp_path, **configured)
        with gateway.client:
            for path, body in (
                ("/archive", seed_body()),
                ("/restore", {"dataset_ids": [1]}),
            ):
                answer = gateway.client.post(
                    path, json=body | {"notify": notify}, headers=gateway.bearer()
                )
                assert answer.status_code == 422, answer.text
                assert why in answer.text
            assert gateway.publisher.published == []


def _with_notify(gateway: Any, tmp_path: Path, **configured: Any) -> Any:
    """The same fakes, with settings that can send webhooks and e-mail (unless changed)."""
    from fastapi.testclient import TestClient

    from datastore_gateway.main import create_app

    notify = {"webhook_secret": SECRET, "smtp_host": "mail.example.org"} | configured
    settings = gateway.settings.model_copy(update={"notify": NotifySettings(**notify)})
    app = create_app(
        settings,
        sessions=gateway.sessions,
        publisher=gateway.publisher,
        vo="test-vo",
        selections=gateway.selections,
        transfers=gateway.transfers,
        vocabulary=gateway.vocabulary,
        user_cache=gateway.user_cache,
    )
    gateway.app, gateway.client, gateway.settings = app, TestClient(app), settings
    return gateway


async def test_an_unexpected_error_is_retried_and_bounded_like_any_other(ledger: Ledger) -> None:
    publisher, webhooks, mail = RecordingPublisher(), FakeWebhooks(), FakeMail()
    notifier = notifier_of(ledger, publisher, webhooks, mail, max_attempts=2)
    await ended(ledger, {"webhook": BOTH["webhook"]})
    webhooks.fail_with = RuntimeError("a bug in a sender")
    await notifier.deliver_due()
    clock_of(ledger).now += 10
    await notifier.deliver_due()
    webhook = await webhook_of(ledger)
    assert (webhook.state, webhook.attempts) == ("GAVE_UP", 2)
    assert "a bug in a sender" in str(webhook.last_error)


async def test_get_request_shows_who_is_told_and_how_it_went(tmp_path: Path) -> None:
    gateway = _with_notify(build_gateway(tmp_path), tmp_path)
    with gateway.client:
        headers = gateway.bearer()
        body = seed_body() | {"notify": BOTH}
        answer = gateway.client.post("/archive", json=body, headers=headers)
        assert answer.status_code == 202, answer.text
        request_id = answer.json()["request_id"]
        [published] = gateway.publisher.published
        assert isinstance(published.data, ArchiveRequested)
        [job] = published.data.jobs
        shown = gateway.client.get(f"/requests/{request_id}", headers=headers).json()
        assert shown["notify"] == BOTH and shown["notifications"] == []
        ledger = gateway.app.state.gateway.ledger
        assert isinstance(ledger, Ledger)
        await ledger.apply_status(
            TransferStatus(
                request_id=request_id,
                kind="archive",
                job_id=job.job_id,
                fts_endpoint="https://fts",
                job_state="FINISHED",
                files=[
                    FileState(source=t.source, destination=t.destination, state="FINISHED")
                    for t in job.transfers
                ],
            )
        )
        webhooks = FakeWebhooks()
        webhooks.fail_with = PeerUnavailableError("webhook answered 502")
        notifier = Notifier(
            ledger,
            gateway.settings.notify,
            publisher=gateway.publisher,
            webhooks=webhooks,
            mail=FakeMail(),
        )
        assert await notifier.deliver_due() == 2
        shown = gateway.client.get(f"/requests/{request_id}", headers=headers).json()
        assert shown["state"] == "FINISHED"
        assert shown["notifications"] == [
            {"channel": "broker", "state": "SENT", "attempts": 1, "error": None},
            {"channel": "email", "state": "SENT", "attempts": 1, "error": None},
            {
                "channel": "webhook",
                "state": "PENDING",
                "attempts": 1,
                "error": "PeerUnavailableError: webhook answered 502",
            },
        ]
        listed = gateway.client.get("/requests", headers=headers).json()["items"]
        assert listed[0]["notifications"] == shown["notifications"]
