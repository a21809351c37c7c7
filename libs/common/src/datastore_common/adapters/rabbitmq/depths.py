"""Queue depths on the bus's own connection: passive declares, which count a queue's ready
messages and consumers without touching a message (a peek would count as a delivery on a
quorum queue, and its delivery limit would dead-letter a message an operator only looked at).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import aio_pika
import aio_pika.abc

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.errors import PeerUnavailableError
from datastore_common.ports import QueueDepth, QueueDepths


class BusQueueDepths(QueueDepths):
    """Asks the broker on a short-lived channel of the bus's connection."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def depths(self, queues: Sequence[str]) -> list[QueueDepth]:
        found: list[QueueDepth] = []
        channel: aio_pika.abc.AbstractChannel | None = None
        try:
            for queue in queues:
                if channel is None or channel.is_closed:
                    # The broker closes the channel on a queue it does not have: a new one.
                    channel = await self._bus.new_channel(prefetch=1)
                try:
                    declared = await channel.declare_queue(queue, passive=True)
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    found.append(QueueDepth(queue, None, None))
                    continue
                result = declared.declaration_result
                found.append(
                    QueueDepth(queue, result.message_count or 0, result.consumer_count or 0)
                )
        except (
            TimeoutError,
            ConnectionError,
            aio_pika.exceptions.AMQPError,
            aio_pika.exceptions.ChannelInvalidStateError,
        ) as exc:
            raise PeerUnavailableError(f"broker: queue depths: {exc!r}") from exc
        finally:
            if channel is not None and not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()
        return found
