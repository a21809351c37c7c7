"""The consumer's ``on_refused``: a message refused before any handler ran (unreadable, or
from a sender who may not send it) is shown to the hook, then dead-lettered; the handler
never sees it. A bus and a delivery as small stand-ins (no broker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datastore_common.adapters.rabbitmq.consumer import Consumer, RefusedMessage
from datastore_common.domain.senders import InstrumentGrant, SenderPolicy, publishers_by_type
from datastore_common.messages import ArchiveRequested, InvestigationSpec, wrap
from datastore_common.topology import PUBLISHERS, datastore_topology, payload_types
from tests.support.factories import seed_body


@dataclass
class StandInBus:
    senders: SenderPolicy
    topology: Any = field(default_factory=datastore_topology)
    sent: list[tuple[str, bytes, dict[str, Any]]] = field(default_factory=list)

    async def send_to_queue(self, queue: str, body: bytes, *, headers: dict[str, Any]) -> None:
        self.sent.append((queue, body, headers))


@dataclass
class Delivery:
    body: bytes
    user_id: str | None
    message_id: str | None = "m-1"
    correlation_id: str | None = "c-1"
    type: str | None = ArchiveRequested.TYPE
    headers: dict[str, Any] = field(default_factory=dict)
    exchange: str = "datastore"  # published on the topic exchange
    acked: bool = False
    requeued: bool = False

    async def ack(self) -> None:
        self.acked = True

    async def nack(self, requeue: bool = False) -> None:
        self.requeued = requeue


POLICY = SenderPolicy(
    users={"gw": "gateway"},
    publishers=publishers_by_type(PUBLISHERS),
    instruments={"daq": InstrumentGrant("daq", "simple/daq", frozenset({"instrument"}))},
    own_user="writer",
)


def request_body(instrument: str = "instrument") -> bytes:
    body = seed_body("ABC123", files=1)
    body["investigations"][0]["instrument"]["name"] = instrument
    request = ArchiveRequested(
        request_id="r-1",
        investigations=[InvestigationSpec.model_validate(i) for i in body["investigations"]],
    )
    return wrap(request, source="daq", correlation_id="r-1").model_dump_json().encode()


def consumer(bus: StandInBus, refused: list[RefusedMessage], handled: list[Any]) -> Consumer:
    async def handler(envelope: Any) -> None:
        handled.append(envelope)

    async def on_refused(message: RefusedMessage) -> None:
        refused.append(message)

    return Consumer(
        bus,  # type: ignore[arg-type]
        "icat-writer.archive",
        payload_types("icat-writer.archive"),
        handler=handler,
        on_refused=on_refused,
    )


async def test_a_refused_sender_is_shown_to_the_hook_then_dead_lettered() -> None:
    bus, refused, handled = StandInBus(POLICY), [], []  # type: ignore[var-annotated]
    delivery = Delivery(request_body(instrument="other"), user_id="daq")
    await consumer(bus, refused, handled)._handle_one(delivery)  # type: ignore[arg-type]
    [message] = refused
    assert message.sender == "daq" and message.message_id == "m-1"
    assert "may archive only for instrument" in message.reason
    assert handled == []
    [(queue, _, headers)] = bus.sent
    assert queue == "dlq.icat-writer.archive" and "only for" in headers["x-datastore-error"]
    assert delivery.acked


async def test_an_unreadable_message_is_shown_to_the_hook_with_its_real_sender() -> None:
    bus, refused, handled = StandInBus(POLICY), [], []  # type: ignore[var-annotated]
    delivery = Delivery(b'{"type": "datastore.archive.requested.v1", "data": {}}', user_id="daq")
    await consumer(bus, refused, handled)._handle_one(delivery)  # type: ignore[arg-type]
    [message] = refused
    assert message.sender == "daq" and "invalid datastore.archive.requested.v1" in message.reason
    assert [queue for queue, _, _ in bus.sent] == ["dlq.icat-writer.archive"]


async def test_an_allowed_message_reaches_the_handler_and_not_the_hook() -> None:
    bus, refused, handled = StandInBus(POLICY), [], []  # type: ignore[var-annotated]
    delivery = Delivery(request_body(), user_id="daq")
    await consumer(bus, refused, handled)._handle_one(delivery)  # type: ignore[arg-type]
    assert refused == [] and bus.sent == []
    [envelope] = handled
    assert (envelope.source, envelope.user) == ("daq", "simple/daq")


async def test_a_hook_that_fails_keeps_the_message_queued() -> None:
    bus, handled = StandInBus(POLICY), []  # type: ignore[var-annotated]

    async def broken(message: RefusedMessage) -> None:
        raise ConnectionError("broker gone")

    subject = Consumer(
        bus,  # type: ignore[arg-type]
        "icat-writer.archive",
        payload_types("icat-writer.archive"),
        handler=handled.append,  # type: ignore[arg-type]
        on_refused=broken,
    )
    delivery = Delivery(b"not json", user_id="daq")
    await subject._handle_one(delivery)  # type: ignore[arg-type]
    assert delivery.requeued and not delivery.acked and bus.sent == []
