"""Who may send what, against the real RabbitMQ and real per-role broker users.

RabbitMQ checks ``user_id`` against the publishing connection and fences instruments in with
permissions; our consumers refuse what the sender's role may not publish (domain.senders).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import aiormq
import pytest

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.consumer import HEADER_ERROR
from datastore_common.adapters.rabbitmq.declare import delete_topology
from datastore_common.domain.senders import (
    HEADER_SENDER,
    INSTRUMENT,
    OPERATOR,
    InstrumentGrant,
    SenderPolicy,
    publishers_by_type,
)
from datastore_common.errors import TransientError
from datastore_common.messages import PAYLOAD_TYPES, ArchiveAccepted, ArchiveRejected, Envelope
from datastore_common.metrics import MESSAGES_REFUSED
from datastore_common.topology import PUBLISHERS, QueueSpec, Topology, all_queue_names, dlq_name
from tests.integration.bus.test_bus import get_one, status
from tests.support.rabbitmq_fixtures import BrokerAccounts, unique_name

pytestmark = pytest.mark.integration

BusAs = Callable[..., Any]


def policy_for(accounts: BrokerAccounts, own_role: str) -> SenderPolicy:
    return SenderPolicy(
        users={a.user: a.role for a in accounts.by_role.values() if a.role != INSTRUMENT},
        publishers=publishers_by_type(PUBLISHERS),
        instruments={
            accounts.user(INSTRUMENT): InstrumentGrant(
                accounts.user(INSTRUMENT), "simple/daq", frozenset({"instrument"})
            )
        },
        own_user=accounts.user(own_role),
    )


@pytest.fixture
async def buses(broker_accounts: BrokerAccounts) -> AsyncIterator[Callable[..., Any]]:
    """``bus_as(role, topology, checked=False)``: a bus logged in as ``role``'s broker user;
    ``checked`` gives its consumers that role's sender policy. The topology is deleted after."""
    made: list[Bus] = []

    async def bus_as(role: str, topology: Topology, *, checked: bool = False) -> Bus:
        bus = Bus(
            broker_accounts.url(role),
            topology,
            source=role,
            senders=policy_for(broker_accounts, role) if checked else None,
        )
        await bus.connect(attempts=3)
        made.append(bus)
        return bus

    yield bus_as
    for bus in made:
        await bus.close(grace=1)
    cleaner = Bus(broker_accounts.url(OPERATOR), made[0].topology, source="cleanup")
    await cleaner.connect(attempts=3)
    topology = cleaner.topology
    await delete_topology(
        cleaner, all_queue_names(topology), [topology.exchange, topology.dead_letter_exchange]
    )
    await cleaner.close()


def status_topology(exchange: str | None = None) -> Topology:
    name = unique_name("senders")
    return Topology(
        exchange=exchange or name,
        queues=(QueueSpec(f"{name}.status", (status().type,)),),
        retry_delays=(0.2, 0.4),
        delivery_limit=3,
    )


async def test_a_role_that_may_not_send_a_type_is_refused_and_never_handled(
    buses: BusAs,
) -> None:
    topology = status_topology()
    writer = await buses("icat-writer", topology, checked=True)
    handled: list[str] = []
    arrived = asyncio.Event()

    async def record(envelope: Envelope[Any]) -> None:
        handled.append(envelope.data.job_id)
        arrived.set()

    queue = topology.queues[0].name
    refused_before = MESSAGES_REFUSED.labels(queue=queue, reason="role_not_allowed")._value.get()
    await writer.consume(queue, record, PAYLOAD_TYPES)
    gateway = await buses("gateway", topology)
    await gateway.publish(status("forged", "FINISHED"))
    dead = await get_one(writer, dlq_name(queue))
    assert "may not publish datastore.transfer.status" in dead.headers[HEADER_ERROR]
    # Dead-lettered by the writer, under the name of its real publisher.
    assert dead.headers[HEADER_SENDER] == gateway.user
    poller = await buses("status-poller", topology)
    await poller.publish(status("real", "FINISHED"))
    await asyncio.wait_for(arrived.wait(), 10)
    assert handled == ["real"]
    after = MESSAGES_REFUSED.labels(queue=queue, reason="role_not_allowed")._value.get()
    assert after == refused_before + 1


async def test_a_retried_message_is_still_the_original_senders(buses: BusAs) -> None:
    topology = status_topology()
    writer = await buses("icat-writer", topology, checked=True)
    deliveries: list[str | None] = []
    twice = asyncio.Event()

    async def flaky(envelope: Envelope[Any]) -> None:
        deliveries.append(envelope.data.job_id)
        if len(deliveries) == 1:
            raise TransientError("ICAT is slow")
        twice.set()

    await writer.consume(topology.queues[0].name, flaky, PAYLOAD_TYPES)
    poller = await buses("status-poller", topology)
    await poller.publish(status("retried"))
    # The copy comes back published by the writer itself, vouching for the poller.
    await asyncio.wait_for(twice.wait(), 15)
    assert deliveries == ["retried", "retried"]


async def test_rabbitmq_refuses_a_user_id_that_is_not_the_publishers(
    buses: BusAs, broker_accounts: BrokerAccounts
) -> None:
    topology = status_topology()
    await buses(OPERATOR, topology)  # declares the exchange
    connection = await aio_pika.connect(broker_accounts.url("gateway"))
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.exchange, ensure=False)
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="user_id"):
            await exchange.publish(
                aio_pika.Message(b"{}", user_id=broker_accounts.user("status-poller")),
                routing_key=status().type,
            )
    finally:
        await connection.close()


async def test_a_vouch_on_the_topic_exchange_is_refused_even_in_the_publishers_own_queue(
    buses: BusAs,
) -> None:
    """The writer's own user may vouch only for copies it puts back into a queue: a message it
    publishes on the topic exchange naming another sender is a forgery."""
    topology = status_topology()
    writer = await buses("icat-writer", topology, checked=True)

    async def never(envelope: Envelope[Any]) -> None:
        raise AssertionError("a forged status reached the handler")

    queue = topology.queues[0].name
    await writer.consume(queue, never, PAYLOAD_TYPES)
    poller_user = (await buses("status-poller", topology)).user
    await writer.publish(status("self-vouched"), headers={HEADER_SENDER: poller_user})
    dead = await get_one(writer, dlq_name(queue))
    assert "only copies put back into a queue may" in dead.headers[HEADER_ERROR]
    assert dead.headers[HEADER_SENDER] == writer.user


async def test_a_false_vouch_is_refused(buses: BusAs) -> None:
    topology = status_topology()
    writer = await buses("icat-writer", topology, checked=True)

    async def never(envelope: Envelope[Any]) -> None:
        raise AssertionError("a forged status reached the handler")

    queue = topology.queues[0].name
    await writer.consume(queue, never, PAYLOAD_TYPES)
    gateway = await buses("gateway", topology)
    poller_user = (await buses("status-poller", topology)).user
    # Straight into the writer's queue, as a retry copy comes: still not the gateway's to vouch.
    await gateway.send_to_queue(queue, status("vouched"), headers={HEADER_SENDER: poller_user})
    dead = await get_one(writer, dlq_name(queue))
    assert "may not vouch" in dead.headers[HEADER_ERROR]
    # Not laundered: an operator replaying it would vouch for the gateway, not the poller.
    assert dead.headers[HEADER_SENDER] == gateway.user


async def test_an_instrument_reaches_no_queue_and_publishes_only_archive_requests(
    buses: BusAs, broker_accounts: BrokerAccounts
) -> None:
    # The accounts' topic permissions are written for this exchange.
    topology = status_topology(exchange=broker_accounts.exchange)
    await buses(OPERATOR, topology)
    url = broker_accounts.url(INSTRUMENT)
    user = broker_accounts.user(INSTRUMENT)

    async def publish(exchange_name: str, routing_key: str) -> None:
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = (
                channel.default_exchange
                if exchange_name == ""
                else await channel.get_exchange(exchange_name, ensure=False)
            )
            await exchange.publish(aio_pika.Message(b"{}", user_id=user), routing_key=routing_key)
        finally:
            if not connection.is_closed:
                await connection.close()

    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match=r"amq\.default"):
        await publish("", topology.queues[0].name)
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match=r"restore\.requested"):
        await publish(topology.exchange, "datastore.restore.requested.v1")
    await publish(topology.exchange, "datastore.archive.requested.v1")  # confirmed


async def test_an_instrument_hears_its_own_answers_and_may_bind_nothing_else(
    buses: BusAs, broker_accounts: BrokerAccounts
) -> None:
    """ops/broker_users.py: the instrument declares and binds its own answer queue to its
    own answers (archive.accepted / archive.rejected / request.completed + its user) only."""
    topology = status_topology(exchange=broker_accounts.exchange)
    operator = await buses(OPERATOR, topology)  # stands in for the icat-writer
    url = broker_accounts.url(INSTRUMENT)
    user = broker_accounts.user(INSTRUMENT)
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.exchange, ensure=False)
        queue = await channel.declare_queue(
            f"{user}.answers.{uuid.uuid4().hex[:8]}", exclusive=True
        )
        await queue.bind(exchange, routing_key=f"{ArchiveRejected.TYPE}.{user}")
        answer = ArchiveRejected(
            request_id="r", instrument=user, rejection="unknown_names", reason="unknown x"
        )
        await operator.publish_payload(answer, correlation_id="r")
        # An answer to nobody listening is no error (not mandatory) and reaches nobody else.
        await operator.publish_payload(
            answer.model_copy(update={"instrument": "nobody"}), correlation_id="r"
        )
        heard = await queue.get(timeout=10, fail=True)
        assert heard is not None
        assert Envelope[ArchiveRejected].model_validate_json(heard.body).data == answer
        await heard.ack()
        assert await queue.get(fail=False) is None

        async def refused(attempt: Callable[[aio_pika.abc.AbstractChannel], Any]) -> None:
            other = await connection.channel()
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await attempt(other)

        async def bind(key: str) -> Callable[[aio_pika.abc.AbstractChannel], Any]:
            async def attempt(other: aio_pika.abc.AbstractChannel) -> None:
                mine = await other.declare_queue(f"{user}.answers.{uuid.uuid4().hex[:8]}")
                try:
                    await mine.bind(topology.exchange, routing_key=key)
                finally:
                    with contextlib.suppress(Exception):
                        await mine.delete()

            return attempt

        # Another instrument's answers, every answer, anything else: refused.
        for key in (
            f"{ArchiveAccepted.TYPE}.someone-else",
            f"{ArchiveAccepted.TYPE}.#",
            "datastore.transfer.status.v1",
        ):
            await refused(await bind(key))

        async def foreign_queue(other: aio_pika.abc.AbstractChannel) -> None:
            await other.declare_queue(f"not-{user}.answers")

        await refused(foreign_queue)
    finally:
        await connection.close()
