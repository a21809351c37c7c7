"""The consumer's ``already_applied``: a message its service says it already applied (by
message id) is acked unread, whatever its body; any other goes to the handler as before.
A bus and a delivery as small stand-ins (no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from datastore_common.adapters.rabbitmq.consumer import Consumer
from datastore_common.topology import payload_types
from datastore_common.worker import Route
from tests.unit.common.test_consumer_refusals import POLICY, Delivery, StandInBus, request_body


def consumer(bus: StandInBus, handled: list[Any], applied: set[str]) -> Consumer:
    async def handler(envelope: Any) -> None:
        handled.append(envelope)

    async def already_applied(message_id: str | None) -> bool:
        return message_id in applied

    return Consumer(
        bus,  # type: ignore[arg-type]
        "icat-writer.archive",
        payload_types("icat-writer.archive"),
        handler=handler,
        already_applied=already_applied,
    )


async def test_a_message_already_applied_is_acked_unread() -> None:
    bus, handled = StandInBus(POLICY), []  # type: ignore[var-annotated]
    # Not even JSON: had it been read, it would have been dead-lettered.
    delivery = Delivery(b"not json", user_id="daq", message_id="mine")
    await consumer(bus, handled, {"mine"})._handle_one(delivery)  # type: ignore[arg-type]
    assert delivery.acked and handled == [] and bus.sent == []


async def test_any_other_message_is_read_and_handled() -> None:
    bus, handled = StandInBus(POLICY), []  # type: ignore[var-annotated]
    delivery = Delivery(request_body(), user_id="daq", message_id="theirs")
    await consumer(bus, handled, {"mine"})._handle_one(delivery)  # type: ignore[arg-type]
    assert delivery.acked and len(handled) == 1
    unreadable = Delivery(b"not json", user_id="daq", message_id=None)
    await consumer(bus, handled, {"mine"})._handle_one(unreadable)  # type: ignore[arg-type]
    assert [queue for queue, _, _ in bus.sent] == ["dlq.icat-writer.archive"]


def test_a_batch_route_takes_no_already_applied() -> None:
    async def batch(envelopes: list[Any]) -> None:
        return None

    async def always(_: str | None) -> bool:
        return True

    with pytest.raises(ValueError, match="one-by-one"):
        Route("icat-writer.archive", batch_handler=batch, already_applied=always)
