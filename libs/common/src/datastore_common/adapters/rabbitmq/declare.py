"""The topology (``datastore_common.topology``, pure data) applied to the broker with aio-pika."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aio_pika
import aio_pika.abc

from datastore_common.logging import get_logger
from datastore_common.topology import (
    Topology,
    delay_arguments,
    dlq_name,
    queue_arguments,
    retry_queue_name,
)

if TYPE_CHECKING:
    from datastore_common.adapters.rabbitmq.bus import Bus

log = get_logger(__name__)


async def declare_topology(channel: aio_pika.abc.AbstractChannel, topology: Topology) -> None:
    """Declare exchanges, queues, dead-letter and delay queues; safe to repeat.

    A queue that already exists with other arguments (declared by an older release or another
    ``delivery_limit``) is used as it is, with a warning, rather than stopping the service:
    delay queues are named by their delay, so only the main queues' arguments can differ.
    """
    exchange = await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dlx = await channel.declare_exchange(
        topology.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )

    async def declare(name: str, arguments: dict[str, Any]) -> aio_pika.abc.AbstractQueue:
        try:
            return await channel.declare_queue(name, durable=True, arguments=arguments)
        except aio_pika.exceptions.ChannelPreconditionFailed as exc:
            log.warning("queue_arguments_differ", queue=name, wanted=arguments, error=str(exc))
            await channel.reopen()
            return await channel.declare_queue(name, passive=True)

    for spec in topology.queues:
        queue = await declare(spec.name, queue_arguments(topology, spec.name))
        for key in spec.routing_keys:
            await queue.bind(exchange, routing_key=key)
        dead = await declare(dlq_name(spec.name), {"x-queue-type": "quorum"})
        await dead.bind(dlx, routing_key=dlq_name(spec.name))
        if spec.with_retries:
            for seconds in sorted(set(topology.retry_delays)):
                await declare(
                    retry_queue_name(spec.name, seconds), delay_arguments(spec.name, seconds)
                )
    for delay in topology.delays:
        await declare(delay.name, delay_arguments(delay.target, delay.seconds))


async def delete_topology(bus: Bus, names: Sequence[str], exchanges: Sequence[str] = ()) -> None:
    """Remove queues and exchanges (tests clean up after themselves)."""
    channel = await bus.new_channel(1)
    for name in names:
        with contextlib.suppress(Exception):
            await channel.queue_delete(name)
    for name in exchanges:
        with contextlib.suppress(Exception):
            await channel.exchange_delete(name)
    await channel.close()
