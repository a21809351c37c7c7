"""Giving a message up against the real RabbitMQ: it is reported before it is dead-lettered,
never lost when reporting fails, and a message that keeps killing workers is given up too."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.consumer import (
    HEADER_ATTEMPT,
    HEADER_ERROR,
    HEADER_ERROR_TYPE,
    HEADER_FIRST_FAILURE,
)
from datastore_common.adapters.rabbitmq.declare import declare_topology
from datastore_common.errors import CredentialError, PermanentError, TransientError
from datastore_common.messages import PAYLOAD_TYPES, Envelope
from datastore_common.topology import Topology, dlq_name, retry_queue_name
from tests.integration.bus.test_bus import get_one, make_topology, status
from tests.support.rabbitmq_fixtures import BusFactory

pytestmark = pytest.mark.integration


class Reports:
    def __init__(self, fail_times: int = 0) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail_times = fail_times
        self.done = asyncio.Event()

    async def __call__(self, envelope: Envelope[Any], reason: str, exc: BaseException) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise TransientError("broker hiccup while reporting")
        self.calls.append((envelope.data.job_id, reason, type(exc).__name__))
        self.done.set()


async def test_a_permanent_error_is_reported_then_dead_lettered(bus_factory: BusFactory) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    reports = Reports()

    async def refuses(envelope: Envelope[Any]) -> None:
        raise PermanentError("unknown instrument 'nope'")

    await bus.publish(status("j1"))
    queue = topology.queues[0].name
    await bus.consume(queue, refuses, PAYLOAD_TYPES, on_give_up=reports)
    dead = await get_one(bus, dlq_name(queue))
    assert reports.calls == [("j1", "unknown instrument 'nope'", "PermanentError")]
    assert dead.headers[HEADER_ERROR] == "unknown instrument 'nope'"


async def test_when_reporting_fails_the_message_stays_and_is_reported_later(
    bus_factory: BusFactory,
) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    reports = Reports(fail_times=2)

    async def refuses(envelope: Envelope[Any]) -> None:
        raise PermanentError("bad request")

    await bus.publish(status("j2"))
    queue = topology.queues[0].name
    await bus.consume(queue, refuses, PAYLOAD_TYPES, on_give_up=reports)
    dead = await get_one(bus, dlq_name(queue))
    assert reports.calls == [("j2", "bad request", "PermanentError")]
    assert reports.fail_times == 0
    assert dead.headers[HEADER_ERROR_TYPE] == "PermanentError"


async def test_exhausted_retries_are_reported_with_the_last_error(bus_factory: BusFactory) -> None:
    topology = make_topology(retry_delays=(0.1, 0.2))
    bus = await bus_factory(topology)
    reports = Reports()

    async def down(envelope: Envelope[Any]) -> None:
        raise TransientError("icat down")

    await bus.publish(status("j3"))
    queue = topology.queues[0].name
    await bus.consume(queue, down, PAYLOAD_TYPES, on_give_up=reports)
    dead = await get_one(bus, dlq_name(queue))
    [(_, reason, kind)] = reports.calls
    assert reason == "gave up after 3 attempts: TransientError: icat down"
    assert kind == "TransientError"
    assert dead.headers[HEADER_ATTEMPT] == 3
    assert isinstance(dead.headers[HEADER_FIRST_FAILURE], float)


async def test_a_message_that_keeps_killing_workers_is_given_up_on_its_last_delivery(
    bus_factory: BusFactory,
) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    queue = topology.queues[0].name
    await bus.publish(status("killer"))
    channel = await bus.new_channel(1)
    q = await channel.get_queue(queue)
    # Each reject-with-requeue is what a dying worker looks like to the broker.
    for _ in range(topology.delivery_limit):
        message = await q.get(fail=False, timeout=5)
        assert message is not None
        await message.nack(requeue=True)
    reports = Reports()
    handled = False

    async def handler(envelope: Envelope[Any]) -> None:
        nonlocal handled
        handled = True

    await bus.consume(queue, handler, PAYLOAD_TYPES, on_give_up=reports)
    dead = await get_one(bus, dlq_name(queue))
    assert not handled
    [(job, reason, kind)] = reports.calls
    assert (job, kind) == ("killer", "GaveUpError")
    assert "never answered" in reason
    assert dead.headers[HEADER_ERROR_TYPE] == "GaveUpError"


async def test_a_refused_credential_is_retried_beyond_the_budget_and_never_given_up(
    bus_factory: BusFactory,
) -> None:
    topology = make_topology(retry_delays=(0.05,))
    bus = await bus_factory(topology)
    reports = Reports()
    attempts = 0
    fixed = asyncio.Event()

    async def our_token_is_revoked(envelope: Envelope[Any]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 4:  # four times the retry budget of one
            raise CredentialError("FTS3 POST /jobs: 401 token revoked")
        fixed.set()

    await bus.publish(status("cred"))
    queue = topology.queues[0].name
    await bus.consume(queue, our_token_is_revoked, PAYLOAD_TYPES, on_give_up=reports)
    await asyncio.wait_for(fixed.wait(), 20)
    assert reports.calls == []
    assert attempts == 5


async def test_changed_delays_and_limits_declare_next_to_the_old_queues(
    bus_factory: BusFactory,
) -> None:
    topology = make_topology(retry_delays=(0.2, 0.4))
    bus: Bus = await bus_factory(topology)
    changed = Topology(
        exchange=topology.exchange,
        queues=topology.queues,
        retry_delays=(0.3, 0.9),
        delivery_limit=topology.delivery_limit + 2,  # the main queue keeps its old limit
    )
    channel = await bus.new_channel(1)
    await declare_topology(channel, changed)  # does not raise PRECONDITION_FAILED
    queue = topology.queues[0].name
    for seconds in (0.2, 0.4, 0.3, 0.9):
        await channel.declare_queue(retry_queue_name(queue, seconds), passive=True)
    await channel.close()
    names = [retry_queue_name(queue, s) for s in (0.3, 0.9)]
    await asyncio.gather(*(bus.send_to_queue(n, b"{}") for n in names))  # both exist


async def test_a_channel_closed_by_the_broker_stops_its_handlers_before_redelivery(
    bus_factory: BusFactory,
) -> None:
    """RabbitMQ closes a channel whose handler outlives ``consumer_timeout`` and redelivers
    its message: the old handler must stop, so that two never run the same request at once."""
    topology = make_topology()
    bus = await bus_factory(topology)
    queue = topology.queues[0].name
    started = asyncio.Event()
    running: list[str] = []
    deliveries = 0
    cancelled = asyncio.Event()
    finished_twice = asyncio.Event()

    async def slow(envelope: Envelope[Any]) -> None:
        nonlocal deliveries
        deliveries += 1
        running.append("start")
        started.set()
        try:
            assert len(running) == 1, "two handlers of one message at once"
            if deliveries == 1:
                await asyncio.sleep(60)  # the first delivery hangs past any time-out
            finished_twice.set()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finally:
            running.remove("start")

    await bus.publish(status("slow"))
    consumer = await bus.consume(queue, slow, PAYLOAD_TYPES)
    await asyncio.wait_for(started.wait(), 10)
    assert consumer._channel is not None
    await consumer._channel.close()  # what the broker does at consumer_timeout
    await asyncio.wait_for(cancelled.wait(), 10)
    await bus.consume(queue, slow, PAYLOAD_TYPES)  # another worker gets the redelivery
    await asyncio.wait_for(finished_twice.wait(), 10)
    assert running == [] and deliveries == 2


async def test_each_scheduled_retry_is_announced_with_its_delay(bus_factory: BusFactory) -> None:
    topology = make_topology(retry_delays=(0.1, 0.2))
    bus = await bus_factory(topology)
    notices: list[tuple[str, str, float]] = []
    done = asyncio.Event()
    calls = 0

    async def flaky(envelope: Envelope[Any]) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransientError("fts down")
        done.set()

    async def on_retry(envelope: Envelope[Any], reason: str, delay: float) -> None:
        notices.append((envelope.data.job_id, reason, delay))

    await bus.publish(status("r1"))
    await bus.consume(topology.queues[0].name, flaky, PAYLOAD_TYPES, on_retry=on_retry)
    await asyncio.wait_for(done.wait(), 20)
    assert notices == [
        ("r1", "TransientError: fts down", 0.1),
        ("r1", "TransientError: fts down", 0.2),
    ]
