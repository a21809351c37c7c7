"""The bus against the real RabbitMQ: delivery, ack policy, retries and dead letters."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import aio_pika
import pytest

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.consumer import (
    HEADER_ATTEMPT,
    HEADER_ERROR,
    HEADER_ERROR_TYPE,
    HEADER_ORIGINAL_QUEUE,
)
from datastore_common.adapters.rabbitmq.declare import declare_topology
from datastore_common.errors import PermanentError, TransientError
from datastore_common.messages import PAYLOAD_TYPES, Envelope, TransferStatus, wrap
from datastore_common.topology import QueueSpec, Topology, dlq_name
from tests.support.rabbitmq_fixtures import BusFactory, unique_name

pytestmark = pytest.mark.integration


def make_topology(retry_delays: tuple[float, ...] = (0.2, 0.4, 0.8)) -> Topology:
    name = unique_name("bus")
    return Topology(
        exchange=name,
        queues=(QueueSpec(f"{name}.work", (TransferStatus.TYPE,)),),
        retry_delays=retry_delays,
        delivery_limit=3,
    )


def status(job: str = "job-1", state: str = "ACTIVE") -> Envelope[Any]:
    data = TransferStatus(
        request_id="req", kind="archive", job_id=job, fts_endpoint="https://fts", job_state=state
    )
    return wrap(data, source="tests", correlation_id="req")


async def get_one(bus: Bus, queue: str, wait: float = 10.0) -> aio_pika.abc.AbstractIncomingMessage:
    channel = await bus.new_channel(1)
    q = await channel.get_queue(queue, ensure=False)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        message = await q.get(no_ack=True, fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue} within {wait}s")


async def test_published_message_reaches_the_handler_and_is_acked(bus_factory: BusFactory) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    received: list[Envelope[Any]] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope[Any]) -> None:
        received.append(envelope)
        done.set()

    sent = status()
    await bus.publish(sent)
    consumer = await bus.consume(topology.queues[0].name, handler, PAYLOAD_TYPES)
    await asyncio.wait_for(done.wait(), 10)
    await consumer.stop()
    assert received == [sent]
    # acked: a fresh consumer finds the queue empty
    channel = await bus.new_channel(1)
    q = await channel.get_queue(topology.queues[0].name)
    assert await q.get(no_ack=True, fail=False) is None


async def test_unroutable_publish_raises_instead_of_vanishing(bus_factory: BusFactory) -> None:
    topology = Topology(exchange=unique_name("bus"), queues=())
    bus = await bus_factory(topology)
    with pytest.raises(TransientError, match="did not take"):
        await bus.publish(status())


async def test_handler_crash_before_ack_gets_the_message_again(
    bus_factory: BusFactory, rabbitmq_url: str
) -> None:
    topology = make_topology()
    first = await bus_factory(topology)
    entered = asyncio.Event()

    async def dies(envelope: Envelope[Any]) -> None:
        entered.set()
        await asyncio.sleep(3600)  # the process "dies" here: it never returns

    await first.publish(status("crashy"))
    await first.consume(topology.queues[0].name, dies, PAYLOAD_TYPES)
    await asyncio.wait_for(entered.wait(), 10)
    # Simulate the worker process dying: its connection goes away without an ack.
    await first.close(grace=0)

    second = Bus(rabbitmq_url, topology, source="tests")
    await second.connect()
    got: list[Envelope[Any]] = []
    arrived = asyncio.Event()

    async def survives(envelope: Envelope[Any]) -> None:
        got.append(envelope)
        arrived.set()

    try:
        await second.consume(topology.queues[0].name, survives, PAYLOAD_TYPES)
        await asyncio.wait_for(arrived.wait(), 10)
        assert got[0].data.job_id == "crashy"
    finally:
        await second.close()


async def test_transient_failures_retry_with_growing_delays_then_succeed(
    bus_factory: BusFactory,
) -> None:
    topology = make_topology(retry_delays=(0.3, 0.9, 2.0))
    bus = await bus_factory(topology)
    seen: list[float] = []
    done = asyncio.Event()

    async def flaky(envelope: Envelope[Any]) -> None:
        seen.append(time.monotonic())
        if len(seen) < 4:
            raise TransientError("icat is down")
        done.set()

    await bus.publish(status())
    await bus.consume(topology.queues[0].name, flaky, PAYLOAD_TYPES)
    await asyncio.wait_for(done.wait(), 20)
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert len(gaps) == 3
    # each wait is at least its configured delay, and the waits grow
    for gap, delay in zip(gaps, topology.retry_delays, strict=True):
        assert gap >= delay * 0.9
    assert gaps[0] < gaps[1] < gaps[2]


async def test_permanent_error_dead_letters_at_once_with_the_reason(
    bus_factory: BusFactory,
) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    calls = 0

    async def refuses(envelope: Envelope[Any]) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("investigation ABC123-1 names unknown instrument 'nope'")

    await bus.publish(status())
    queue = topology.queues[0].name
    await bus.consume(queue, refuses, PAYLOAD_TYPES)
    dead = await get_one(bus, dlq_name(queue))
    assert calls == 1
    assert dead.headers[HEADER_ERROR] == "investigation ABC123-1 names unknown instrument 'nope'"
    assert dead.headers[HEADER_ERROR_TYPE] == "PermanentError"
    assert dead.headers[HEADER_ORIGINAL_QUEUE] == queue
    assert Envelope[TransferStatus].model_validate_json(dead.body).data.job_id == "job-1"


async def test_poison_message_lands_in_dlq_after_the_retry_limit(bus_factory: BusFactory) -> None:
    topology = make_topology(retry_delays=(0.1, 0.2))
    bus = await bus_factory(topology)
    calls = 0

    async def always_breaks(envelope: Envelope[Any]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug in handler")

    await bus.publish(status())
    queue = topology.queues[0].name
    await bus.consume(queue, always_breaks, PAYLOAD_TYPES)
    dead = await get_one(bus, dlq_name(queue))
    assert calls == 3  # the first try and one per delay step
    assert "gave up after 3 attempts" in dead.headers[HEADER_ERROR]
    assert "RuntimeError: bug in handler" in dead.headers[HEADER_ERROR]
    assert dead.headers[HEADER_ATTEMPT] == 3


async def test_malformed_body_is_dead_lettered_without_calling_the_handler(
    bus_factory: BusFactory,
) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    called = False

    async def handler(envelope: Envelope[Any]) -> None:
        nonlocal called
        called = True

    queue = topology.queues[0].name
    await bus.send_to_queue(queue, b'{"type": "datastore.transfer.status.v1", "data": {}}')
    await bus.consume(queue, handler, PAYLOAD_TYPES)
    dead = await get_one(bus, dlq_name(queue))
    assert not called
    assert "invalid datastore.transfer.status.v1" in dead.headers[HEADER_ERROR]
    assert dead.headers[HEADER_ERROR_TYPE] == "InvalidMessageError"


async def test_delivery_limit_dead_letters_a_message_that_keeps_killing_workers(
    bus_factory: BusFactory,
) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    queue = topology.queues[0].name
    await bus.publish(status("killer"))
    channel = await bus.new_channel(1)
    q = await channel.get_queue(queue)
    # Each reject-with-requeue is what a dying worker looks like to the broker.
    for _ in range(topology.delivery_limit + 1):
        message = await q.get(fail=False, timeout=5)
        if message is None:
            break
        await message.nack(requeue=True)
    dead = await get_one(bus, dlq_name(queue))
    assert Envelope[TransferStatus].model_validate_json(dead.body).data.job_id == "killer"
    assert dead.headers["x-first-death-reason"] == "delivery_limit"


async def test_declaring_the_topology_twice_is_harmless(bus_factory: BusFactory) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    await bus.publish(status("kept"))
    channel = await bus.new_channel(1)
    await declare_topology(channel, topology)
    await declare_topology(channel, topology)
    kept = await get_one(bus, topology.queues[0].name)
    assert Envelope[TransferStatus].model_validate_json(kept.body).data.job_id == "kept"


async def test_batches_are_delivered_together(bus_factory: BusFactory) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    batches: list[int] = []
    done = asyncio.Event()

    async def handler(envelopes: list[Envelope[Any]]) -> None:
        batches.append(len(envelopes))
        if sum(batches) == 250:
            done.set()

    for i in range(250):
        await bus.publish(status(f"job-{i}"))
    await bus.consume_batches(
        topology.queues[0].name, handler, PAYLOAD_TYPES, max_batch=100, max_wait=0.3
    )
    await asyncio.wait_for(done.wait(), 20)
    assert max(batches) == 100
    assert len(batches) <= 5


async def test_graceful_stop_finishes_the_message_in_hand(bus_factory: BusFactory) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(envelope: Envelope[Any]) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.set()

    await bus.publish(status())
    consumer = await bus.consume(topology.queues[0].name, slow, PAYLOAD_TYPES)
    await asyncio.wait_for(started.wait(), 10)
    await consumer.stop()
    assert finished.is_set()
    channel = await bus.new_channel(1)
    q = await channel.get_queue(topology.queues[0].name)
    assert await q.get(no_ack=True, fail=False) is None  # it was acked, not requeued
