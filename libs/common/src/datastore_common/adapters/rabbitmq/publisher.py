"""The ``Publisher`` port on the bus."""

from __future__ import annotations

import uuid

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.messages import Payload
from datastore_common.ports import Publisher


class BusPublisher(Publisher):
    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def publish(
        self,
        data: Payload,
        *,
        correlation_id: str,
        user: str | None = None,
        message_id: uuid.UUID | None = None,
    ) -> None:
        await self._bus.publish_payload(
            data, correlation_id=correlation_id, user=user, message_id=message_id
        )
