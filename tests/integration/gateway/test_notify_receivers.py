"""The notifier against real receivers: an HTTP server (starlette on uvicorn, in this process,
on a free port) that checks the webhook's signature as a user's would, and an SMTP sink
(aiosmtpd) that receives the e-mail. The ledger is SQLite; the broker is the recording fake
(the notifier needs no broker for webhooks and e-mail), so this runs with nothing started."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datastore_common.domain.completion import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    completion_message_id,
    verify_signature,
)
from datastore_common.domain.ledger import LedgerJob, NewRequest, PlannedFile
from datastore_common.messages import FileState, RequestCompleted, TransferStatus
from datastore_common.settings import NotifySettings
from datastore_common.testing.fakes import RecordingPublisher
from datastore_gateway.ledger import Ledger
from datastore_gateway.notifications import HttpWebhookSender, SmtpMailSender
from datastore_gateway.notifier import Notifier

pytestmark = pytest.mark.integration

SECRET = b"integration-secret"
FILES = ["root://tape//a/f0", "root://tape//a/f1", "root://tape//a/f2"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Receiver:
    """A webhook receiver: answers 503 to the first ``fail_first`` calls, then checks the
    signature (401 when it does not hold) and keeps what it verified."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.calls = 0
        self.verified: list[tuple[bytes, dict[str, str]]] = []

    async def hook(self, request: Request) -> Response:
        self.calls += 1
        if self.calls <= self.fail_first:
            return Response(status_code=503)
        body = await request.body()
        ok = verify_signature(
            SECRET,
            body,
            timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
            signed=request.headers.get(SIGNATURE_HEADER, ""),
            now=time.time(),
        )
        if not ok:
            return Response(status_code=401)
        self.verified.append((body, dict(request.headers)))
        return Response(status_code=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hooks = Receiver(fail_first=1)
    app = Starlette(routes=[Route("/hook", hooks.hook, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    for _ in range(100):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "the webhook receiver did not start"
    yield hooks, f"http://127.0.0.1:{port}/hook"
    server.should_exit = True
    await serving


class Sink:
    def __init__(self) -> None:
        self.mails: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


async def test_a_signed_webhook_and_an_email_reach_real_receivers(
    tmp_path: Path, receiver: tuple[Receiver, str], smtp_sink: tuple[Sink, int]
) -> None:
    hooks, url = receiver
    sink, smtp_port = smtp_sink
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.sqlite", public_url="https://ds.example.org")
    await ledger.open()
    settings = NotifySettings(
        webhook_secret=SECRET.decode(),
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_from="datastore@example.org",
        retry_delays=(0.2,),
        max_attempts=3,
    )
    webhooks = HttpWebhookSender(timeout=5)
    notifier = Notifier(
        ledger,
        settings,
        publisher=RecordingPublisher(),
        webhooks=webhooks,
        mail=SmtpMailSender(settings),
    )
    try:
        await ledger.record(
            NewRequest(
                request_id="req-notify",
                kind="restore",
                owner="db/alice",
                source="http",
                datasets=({"dataset_id": 1, "datafiles": 3},),
                jobs=(LedgerJob("job-1", tuple(PlannedFile(f, 1000) for f in FILES)),),
                notify={"webhook": url, "email": "alice@example.org"},
            )
        )
        await ledger.apply_status(
            TransferStatus(
                request_id="req-notify",
                kind="restore",
                job_id="job-1",
                fts_endpoint="https://fts",
                job_state="FINISHEDDIRTY",
                files=[
                    FileState(source="s", destination=FILES[0], state="FINISHED"),
                    FileState(source="s", destination=FILES[1], state="FINISHED"),
                    FileState(
                        source="s", destination=FILES[2], state="FAILED", reason="tape offline"
                    ),
                ],
            )
        )
        assert await notifier.deliver_due() == 2  # broker and e-mail; the webhook said 503
        assert hooks.calls == 1 and hooks.verified == []
        await asyncio.sleep(0.3)
        assert await notifier.deliver_due() == 1  # retried after its backoff
        assert await notifier.deliver_due() == 0
    finally:
        await webhooks.aclose()
        await ledger.close()

    [(body, headers)] = hooks.verified
    completed = RequestCompleted.model_validate_json(body)
    assert (completed.request_id, completed.state) == ("req-notify", "FINISHEDDIRTY")
    assert completed.files == {"FAILED": 1, "FINISHED": 2}
    assert completed.status_url == "https://ds.example.org/requests/req-notify"
    assert headers[DELIVERY_HEADER.lower()] == str(completion_message_id("req-notify"))
    assert json.loads(body)["failure"]["reason"] == "1 of 3 files failed: tape offline"

    [envelope] = sink.mails
    assert envelope.rcpt_tos == ["alice@example.org"]
    assert envelope.mail_from == "datastore@example.org"
    mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert mail["Subject"] == "Datastore restore req-notify: FINISHEDDIRTY"
    assert mail["Message-ID"] == f"<{completion_message_id('req-notify')}@datastore>"
    text = mail.get_content()
    assert "https://ds.example.org/requests/req-notify" in text
    assert "Files: 3 (1 FAILED, 2 FINISHED)" in text
