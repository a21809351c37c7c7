"""``Requeue`` on the bus: the topology's delay queue (TTL = poll interval) feeds the poll queue."""

from __future__ import annotations

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.messages import TransferTracked, wrap
from datastore_common.topology import STATUS_POLLER_POLL
from datastore_status_poller.ports import Requeue


class DelayQueueRequeue(Requeue):
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.queue = bus.topology.delay_into(STATUS_POLLER_POLL)

    async def later(
        self, tracked: TransferTracked, *, correlation_id: str, user: str | None = None
    ) -> None:
        envelope = wrap(tracked, source=self._bus.source, correlation_id=correlation_id, user=user)
        await self._bus.send_to_queue(self.queue, envelope)
