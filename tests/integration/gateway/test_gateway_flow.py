"""The gateway on real peers: login and name checks through the ICAT emulator (the seed's
entities ingested), archive onto a real RabbitMQ.

Each test runs on its own exchange and queue prefix; every queue and exchange is deleted after.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import httpx
import pytest

from datastore_common.messages import PAYLOAD_TYPES, ArchiveRequested, parse_envelope
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import ICAT_WRITER_ARCHIVE
from datastore_common.worker import topology_from
from datastore_gateway.main import create_app
from tests.integration.icat_emulator.conftest import ingest_args
from tests.support.factories import seed_body
from tests.support.icat_fixtures import run_icat_script
from tests.support.rabbitmq_fixtures import BusFactory, unique_name

pytestmark = pytest.mark.integration

SEED_BODY = seed_body()


@dataclass
class LiveGateway:
    client: httpx.AsyncClient
    settings: DatastoreSettings
    probe: aio_pika.abc.AbstractQueue  # bound to archive.requested on the test exchange
    state: object

    async def bearer(self, auth: str = "simple", username: str = "root", pw: str = "pw") -> dict:
        answer = await self.client.post(
            "/login", json={"auth": auth, "username": username, "password": pw}
        )
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['sessionId']}"}

    async def next_message(self, within: float = 10.0) -> aio_pika.abc.AbstractIncomingMessage:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            message = await self.probe.get(fail=False, no_ack=True)
            if message is not None:
                return message
            await asyncio.sleep(0.05)
        raise AssertionError("no archive.requested message arrived")


@pytest.fixture
async def live_gateway(
    icat_emulator, rabbitmq_url: str, bus_factory: BusFactory, tmp_path: Path
) -> AsyncIterator[LiveGateway]:
    # The archive path asks ICAT whether the seed's facility, type, instrument... exist.
    ingest = run_icat_script("icatingest.py", *ingest_args(icat_emulator.url))
    assert ingest.returncode == 0, ingest.stderr
    name = unique_name("gw")
    settings = DatastoreSettings(
        icat={"url": icat_emulator.url},
        broker={
            "url": rabbitmq_url,
            "exchange": name,
            "queue_prefix": f"{name}.",
            "connect_attempts": 3,
        },
        gateway={"state_db": f"sqlite:///{tmp_path}/gateway.sqlite"},
        fts3={"vo": "test-vo"},
    )
    # This bus owns the test topology's clean-up (bus_factory deletes it all afterwards).
    cleanup_bus = await bus_factory(topology_from(settings))
    channel = await cleanup_bus.new_channel(10)
    probe = await channel.declare_queue(f"{name}.probe", auto_delete=True)
    await probe.bind(name, routing_key=ArchiveRequested.TYPE)

    app = create_app(settings)  # real ICAT sessions, real bus publisher, real SQLite store
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield LiveGateway(client, settings, probe, app.state.gateway)
    await channel.close()


async def test_archive_publishes_archive_requested_with_the_answered_job_ids(
    live_gateway: LiveGateway,
) -> None:
    headers = await live_gateway.bearer()
    answer = await live_gateway.client.post("/archive", json=SEED_BODY, headers=headers)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()

    message = await live_gateway.next_message()
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    envelope = parse_envelope(message.body, PAYLOAD_TYPES)
    assert envelope.type == ArchiveRequested.TYPE
    assert envelope.correlation_id == accepted["request_id"]
    assert envelope.user == "simple/root"
    assert isinstance(envelope.data, ArchiveRequested)
    assert [job.job_id for job in envelope.data.jobs] == accepted["job_ids"]
    assert len(envelope.data.jobs[0].transfers) == 4


async def test_message_also_waits_in_the_icat_writer_queue(
    live_gateway: LiveGateway, bus_factory: BusFactory
) -> None:
    headers = await live_gateway.bearer()
    answer = await live_gateway.client.post("/archive", json=SEED_BODY, headers=headers)
    assert answer.status_code == 202
    bus = await bus_factory(topology_from(live_gateway.settings))
    channel = await bus.new_channel(1)
    queue = await channel.get_queue(
        topology_from(live_gateway.settings).queue(ICAT_WRITER_ARCHIVE), ensure=False
    )
    message = await queue.get(fail=True, timeout=10)
    assert json.loads(message.body)["correlation_id"] == answer.json()["request_id"]
    await message.nack(requeue=True)
    await channel.close()


async def test_icat_refusals_are_401_and_non_archivers_403(live_gateway: LiveGateway) -> None:
    wrong = await live_gateway.client.post(
        "/login", json={"auth": "simple", "username": "root", "password": "wrong"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["detail"]

    unknown = await live_gateway.client.post(
        "/archive", json=SEED_BODY, headers={"Authorization": "Bearer 00000000-dead-beef"}
    )
    assert unknown.status_code == 401
    assert unknown.headers["www-authenticate"].startswith("Bearer")

    alice = await live_gateway.bearer("db", "alice", "alice-pw")
    forbidden = await live_gateway.client.post("/archive", json=SEED_BODY, headers=alice)
    assert forbidden.status_code == 403
    assert "db/alice" in forbidden.json()["detail"]


async def test_same_key_twice_publishes_once(live_gateway: LiveGateway) -> None:
    headers = {**await live_gateway.bearer(), "Idempotency-Key": unique_name("key")}
    first = await live_gateway.client.post("/archive", json=SEED_BODY, headers=headers)
    again = await live_gateway.client.post("/archive", json=SEED_BODY, headers=headers)
    assert first.json() == again.json()
    # A later, different request is the marker: messages arrive in publish order, so once
    # the marker's message is here, a second publish of the first request would be too.
    marker_headers = {**headers, "Idempotency-Key": unique_name("marker")}
    marker = await live_gateway.client.post("/archive", json=SEED_BODY, headers=marker_headers)
    assert marker.status_code == 202, marker.text
    assert marker.json()["request_id"] != first.json()["request_id"]

    correlation_ids: list[str] = []
    while marker.json()["request_id"] not in correlation_ids:
        message = await live_gateway.next_message()
        correlation_ids.append(parse_envelope(message.body, PAYLOAD_TYPES).correlation_id)
    assert correlation_ids == [first.json()["request_id"], marker.json()["request_id"]]


async def test_broker_gone_is_503_and_healthz_says_so(live_gateway: LiveGateway) -> None:
    headers = await live_gateway.bearer()
    assert (await live_gateway.client.get("/healthz")).status_code == 200
    bus = live_gateway.state.publisher._bus  # type: ignore[attr-defined]
    await bus.close()
    answer = await live_gateway.client.post("/archive", json=SEED_BODY, headers=headers)
    assert answer.status_code == 503, answer.text
    health = await live_gateway.client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["broker_connected"] is False
