"""Queue depths against the real RabbitMQ: passive declares count ready messages and consumers,
name a queue the broker does not have, and leave every message where it was (no delivery
counted against the quorum queue's delivery limit)."""

from __future__ import annotations

import pytest

from datastore_common.adapters.rabbitmq.depths import BusQueueDepths
from datastore_common.topology import dlq_name
from tests.integration.bus.test_bus import get_one, make_topology, status
from tests.support.rabbitmq_fixtures import BusFactory, unique_name

pytestmark = pytest.mark.integration


async def test_depths_count_messages_and_consumers_without_touching_them(
    bus_factory: BusFactory,
) -> None:
    topology = make_topology()
    bus = await bus_factory(topology)
    work = topology.queues[0].name
    for job in ("job-1", "job-2"):
        await bus.publish(status(job))
    missing = unique_name("no-such-queue")
    depths = BusQueueDepths(bus)

    # Asked twice, a queue the broker lacks in between: the channel it closed is replaced.
    for _ in range(2):
        found = await depths.depths([work, missing, dlq_name(work)])
        assert [(d.queue, d.messages, d.consumers) for d in found] == [
            (work, 2, 0),
            (missing, None, None),
            (dlq_name(work), 0, 0),
        ]
    # Both messages are still there, first one first, never delivered.
    first = await get_one(bus, work)
    assert b"job-1" in first.body
    assert not first.redelivered
