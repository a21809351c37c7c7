"""The bus on the three-node cluster (``make up-cluster``): quorum queues on every node, and a
bus that keeps publishing and consuming when the node it is connected to stops."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.declare import delete_topology
from datastore_common.errors import PeerUnavailableError
from datastore_common.messages import PAYLOAD_TYPES, Envelope, TransferStatus, wrap
from datastore_common.topology import QueueSpec, Topology, all_queue_names
from tests.support.rabbitmq_fixtures import unique_name
from tests.support.rabbitmqcluster_fixtures import NODES, RabbitMQCluster, node_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def make_topology() -> Topology:
    name = unique_name("cluster")
    return Topology(
        exchange=name,
        queues=(QueueSpec(f"{name}.work", (TransferStatus.TYPE,)),),
        retry_delays=(0.2, 0.4),
        delivery_limit=3,
        queue_prefix=f"{name}.",
    )


def status(job: str) -> Envelope[Any]:
    data = TransferStatus(
        request_id="req", kind="archive", job_id=job, fts_endpoint="https://fts", job_state="ACTIVE"
    )
    return wrap(data, source="tests", correlation_id="req")


async def publish_through(bus: Bus, envelope: Envelope[Any], within: float = 60.0) -> None:
    """Publish as a careful caller does: again after a refusal (the node went mid-publish)."""
    deadline = time.monotonic() + within
    while True:
        try:
            await asyncio.wait_for(bus.publish(envelope), timeout=15)
            return
        except (PeerUnavailableError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def wait_for(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.2)


async def _cleanup(bus: Bus) -> None:
    topology = bus.topology
    try:
        await delete_topology(
            bus, all_queue_names(topology), [topology.exchange, topology.dead_letter_exchange]
        )
    finally:
        await bus.close(grace=2)


async def test_every_queue_is_quorum_with_a_member_on_each_node(
    rabbitmq_cluster: RabbitMQCluster,
) -> None:
    topology = make_topology()
    bus = Bus(list(rabbitmq_cluster.urls), topology, source=unique_name("members"))
    await bus.connect(attempts=5)
    try:
        members = rabbitmq_cluster.quorum_members(topology.exchange)
        # The work queue, its DLQ and retry queues: each replicated on the three nodes.
        assert len(members) == len(all_queue_names(topology)), members
        wanted = sorted(node_name(n) for n in NODES)
        assert all(nodes == wanted for nodes in members.values()), members
    finally:
        await _cleanup(bus)


async def test_the_bus_moves_to_another_node_when_its_node_stops(
    rabbitmq_cluster: RabbitMQCluster,
) -> None:
    topology = make_topology()
    name = unique_name("failover")
    bus = Bus(list(rabbitmq_cluster.urls), topology, source=name)
    await bus.connect(attempts=5)
    received: list[str] = []

    async def handle(envelope: Envelope[Any]) -> None:
        received.append(envelope.data.job_id)

    stopped: int | None = None
    try:
        await bus.consume(topology.queues[0].name, handle, PAYLOAD_TYPES)
        before = [f"before-{i}" for i in range(20)]
        for job in before:
            await bus.publish(status(job))
        await wait_for(lambda: set(before) <= set(received), 30, "the first messages handled")

        stopped = rabbitmq_cluster.node_of_connection(name)
        first_node = bus.node
        rabbitmq_cluster.stop_node(stopped)
        # Published while the node is gone: the bus reconnects to another node and its
        # consumer is re-created there; the quorum queue keeps every message.
        after = [f"after-{i}" for i in range(20)]
        for job in after:
            await publish_through(bus, status(job))
        await wait_for(lambda: set(after) <= set(received), 120, "the messages after the stop")
        assert bus.node != first_node
        assert rabbitmq_cluster.node_of_connection(name) != stopped

        rabbitmq_cluster.start_node(stopped)
        stopped = None
        again = [f"again-{i}" for i in range(5)]
        for job in again:
            await publish_through(bus, status(job))
        await wait_for(lambda: set(again) <= set(received), 60, "the messages after the restart")
        assert set(received) == {*before, *after, *again}
        queue = topology.queues[0].name
        assert rabbitmq_cluster.messages(f"dlq.{queue}") == {f"dlq.{queue}": 0}
    finally:
        if stopped is not None:
            rabbitmq_cluster.start_node(stopped)
        await _cleanup(bus)
