"""Being told, through the four services: an archive with ``notify`` ends with one
``request.completed`` on the broker, a signed webhook call on a real HTTP receiver and an
e-mail in a real SMTP sink (aiosmtpd), all linking to the ledger's ``/requests/{id}``."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aio_pika
import httpx
import pytest
from aiosmtpd.controller import Controller

from datastore_common.domain.completion import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    completion_message_id,
    verify_signature,
)
from datastore_common.messages import RequestCompleted
from tests.e2e.api_client import dataset_folder, login, wait_for, write_idc_files
from tests.support.factories import seed_body
from tests.support.fts3_fixtures import free_port
from tests.support.stack_fixtures import StackFactory

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret"
PUBLIC_URL = "https://datastore.example.org"


@dataclass
class Received:
    calls: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[Received, str]]:
    """An HTTP server on a free port that keeps every POST (body, headers) and answers 204."""
    received = Received()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.calls.append((body, {k: v for k, v in self.headers.items()}))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


class Sink:
    def __init__(self) -> None:
        self.mails: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    sink, port = Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


class CompletedWatch:
    """A queue of our own bound to the stack's exchange for request.completed (as any
    consumer of the message would bind one); deleted by ``close``."""

    def __init__(self, url: str, exchange: str) -> None:
        self.url, self.exchange = url, exchange
        self.queue = f"e2e-watch-{uuid.uuid4().hex[:8]}"
        asyncio.run(self._bind())

    async def _bind(self) -> None:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(self.exchange)
            queue = await channel.declare_queue(self.queue, durable=True)
            await queue.bind(exchange, RequestCompleted.TYPE)

    def take(self) -> list[dict[str, Any]]:
        async def take() -> list[dict[str, Any]]:
            connection = await aio_pika.connect(self.url)
            async with connection:
                channel = await connection.channel()
                queue = await channel.get_queue(self.queue)
                found = []
                while (message := await queue.get(no_ack=True, fail=False)) is not None:
                    found.append(json.loads(message.body))
                return found

        return asyncio.run(take())

    def close(self) -> None:
        async def delete() -> None:
            connection = await aio_pika.connect(self.url)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(self.queue)

        asyncio.run(delete())


@pytest.mark.timeout(600)
def test_an_archive_with_a_webhook_and_an_email_tells_both_and_the_broker_once(
    datastore_stack_factory: StackFactory,
    rabbitmq_url: str,
    webhook_receiver: tuple[Received, str],
    smtp_sink: tuple[Sink, int],
) -> None:
    received, hook_url = webhook_receiver
    sink, smtp_port = smtp_sink
    stack = datastore_stack_factory(
        gateway={"public_url": PUBLIC_URL},
        notify={
            "webhook_secret": SECRET,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_from": "datastore@example.org",
            "poll_seconds": 0.5,
            "retry_delays": [1],
        },
    )
    settings = stack.settings
    watch = CompletedWatch(rabbitmq_url, settings.broker.exchange)
    try:
        name = f"NTF{uuid.uuid4().hex[:8].upper()}"
        names = [f"file_{i:04d}.nxs" for i in range(2)]
        write_idc_files(settings.instrument_data_cache, dataset_folder(name), names)
        body = seed_body(name, files=2) | {
            "notify": {"webhook": hook_url, "email": "alice@example.org"}
        }
        headers = login(stack)
        answer = httpx.post(f"{stack.gateway_url}/archive", json=body, headers=headers, timeout=60)
        assert answer.status_code == 202, answer.text
        request_id = answer.json()["request_id"]

        wait_for(lambda: received.calls, 300, "the webhook call", interval=1)
        wait_for(lambda: sink.mails, 60, "the e-mail", interval=0.5)
        stack.assert_running()

        [(hook_body, hook_headers)] = received.calls
        assert verify_signature(
            SECRET.encode(),
            hook_body,
            timestamp=hook_headers[TIMESTAMP_HEADER],
            signed=hook_headers[SIGNATURE_HEADER],
            now=time.time(),
        ), hook_headers
        completed = RequestCompleted.model_validate_json(hook_body)
        assert (completed.request_id, completed.kind) == (request_id, "archive")
        assert completed.state == "FINISHED", completed
        assert (completed.files, completed.files_total) == ({"FINISHED": 2}, 2)
        assert completed.status_url == f"{PUBLIC_URL}/requests/{request_id}"

        [envelope] = sink.mails
        assert envelope.rcpt_tos == ["alice@example.org"]
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert mail["Subject"] == f"Datastore archive {request_id}: FINISHED"
        assert f"{PUBLIC_URL}/requests/{request_id}" in mail.get_content()

        # The link is the ledger's: it answers from the gateway alone (FTS not asked).
        status = httpx.get(f"{stack.gateway_url}/requests/{request_id}", headers=headers)
        assert status.status_code == 200 and status.json()["state"] == "FINISHED"

        # One request.completed on the broker, under the request's one message id.
        time.sleep(2)  # the notifier would have sent a second by now
        published = [m for m in watch.take() if m["correlation_id"] == request_id]
        assert [m["id"] for m in published] == [str(completion_message_id(request_id))]
        assert published[0]["data"] == json.loads(hook_body)
        assert len(received.calls) == 1 and len(sink.mails) == 1
    finally:
        watch.close()
