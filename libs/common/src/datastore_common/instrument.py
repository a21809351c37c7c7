"""What instrument software imports to archive through the broker (docs/instruments.md).

``InstrumentLink`` publishes ``archive.requested`` as an instrument account (publisher
confirms, ``user_id`` = its broker user, a message id and correlation id derived from the
request id) and, when asked to listen, hears the answers addressed to it: ``archive.accepted``
or ``archive.rejected``, then ``request.completed``. ``archive`` does the whole round:

    outcome = await archive(
        "amqp://daq-abc:secret@rabbit:5672/", body, exchange="datastore", wait="end"
    )
    outcome.accepted, outcome.rejected, outcome.completed

Publishing the same body again (after a lost confirm, a crash) names the same request
(``request_id_for``: the same id within ``window`` seconds) and so the same message, the same
FTS jobs and the same answer: nothing new is created.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aio_pika
import aio_pika.abc

from datastore_common.adapters.rabbitmq.connection import connect_plain
from datastore_common.domain.answers import ANSWERS_NAMESPACE, request_id_for
from datastore_common.domain.broker_nodes import split_urls, user_of
from datastore_common.errors import InvalidMessageError, PeerUnavailableError
from datastore_common.messages import (
    PAYLOAD_TYPES,
    ArchiveAccepted,
    ArchiveRejected,
    ArchiveRequested,
    Envelope,
    RequestCompleted,
    parse_envelope,
    wrap,
)

#: The answers an instrument may bind its queue to (each ``<type>.<its broker user>``).
ANSWER_TYPES = (ArchiveAccepted, ArchiveRejected, RequestCompleted)
#: The fields of a request file: what POST /archive takes, and an optional request id.
REQUEST_FIELDS = frozenset({"investigations", "notify", "request_id"})
#: How long the same body names the same request by default (gateway.idempotency_window_seconds).
DEFAULT_WINDOW_SECONDS = 24 * 3600.0

Wait = Literal["none", "answer", "end"]


class RequestFileError(ValueError):
    """The request body is not one this helper can publish (nothing was published)."""


def broker_user(url: str) -> str:
    """The broker user ``url`` names (one for every node when it names a cluster's)."""
    return user_of(split_urls(url))


def request_message_id(instrument: str, request_id: str) -> uuid.UUID:
    """The envelope (and AMQP message) id of a request: the same whenever it is published."""
    return uuid.uuid5(ANSWERS_NAMESPACE, f"{instrument}:{request_id}:requested")


def build_request(
    body: Mapping[str, Any], *, instrument: str, now: float | None = None, window: float
) -> ArchiveRequested:
    """The ``archive.requested`` of a request body (POST /archive's, ``request_id`` optional:
    derived from the body when missing, so that publishing it again names the same request)."""
    unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        raise RequestFileError(
            f"unknown field(s) {', '.join(unknown)}; a request holds "
            f"{', '.join(sorted(REQUEST_FIELDS))}"
        )
    investigations = body.get("investigations")
    if not isinstance(investigations, list) or not investigations:
        raise RequestFileError("'investigations' must be a non-empty list")
    request_id = body.get("request_id") or request_id_for(
        instrument, investigations, now=time.time() if now is None else now, window=window
    )
    try:
        return ArchiveRequested.model_validate(
            {
                "request_id": request_id,
                "investigations": investigations,
                **({"notify": body["notify"]} if body.get("notify") else {}),
            }
        )
    except ValueError as exc:
        raise RequestFileError(" ".join(str(exc).split())) from exc


@dataclass
class Outcome:
    """How a published request went, as far as it was followed."""

    request_id: str
    message_id: str
    accepted: ArchiveAccepted | None = None
    rejected: ArchiveRejected | None = None
    completed: RequestCompleted | None = None
    #: What was not heard within the time-out ("answer", "end"), if anything.
    timed_out: str | None = None


class InstrumentLink:
    """One connection as an instrument account: publish requests, hear answers."""

    def __init__(self, url: str, *, exchange: str = "datastore", icat_user: str | None = None):
        self._url = url
        self.exchange_name = exchange
        self.instrument = broker_user(url)
        self.icat_user = icat_user
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._answers: asyncio.Queue[Envelope[Any]] = asyncio.Queue()
        self._queue: aio_pika.abc.AbstractQueue | None = None

    async def __aenter__(self) -> InstrumentLink:
        try:
            # The first node that answers when the URL names a cluster's (``broker.url``).
            self._connection = await connect_plain(split_urls(self._url))
            self._channel = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            # An instrument may not declare the exchange: use it as the system declared it.
            self._exchange = await self._channel.get_exchange(self.exchange_name, ensure=False)
        except (OSError, aio_pika.exceptions.AMQPError) as exc:
            await self.close()
            raise PeerUnavailableError(f"cannot reach the broker: {exc!r}") from exc
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    def answer_queue_name(self) -> str:
        return f"{self.instrument}.answers.{uuid.uuid4().hex[:12]}"

    async def listen(self) -> str:
        """Bind a private queue (deleted with the connection) to this instrument's answers;
        call before publishing so that no answer is missed. Returns the queue's name."""
        assert self._channel is not None and self._exchange is not None, "not connected"
        if self._queue is not None:
            return self._queue.name
        queue = await self._channel.declare_queue(
            self.answer_queue_name(), exclusive=True, auto_delete=True
        )
        for answer in ANSWER_TYPES:
            await queue.bind(self._exchange, routing_key=f"{answer.TYPE}.{self.instrument}")
        await queue.consume(self._on_answer)
        self._queue = queue
        return queue.name

    async def _on_answer(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            try:
                envelope = parse_envelope(message.body, PAYLOAD_TYPES)
            except InvalidMessageError:
                return  # not ours to understand: dropped
            await self._answers.put(envelope)

    async def publish(self, request: ArchiveRequested) -> str:
        """Publish ``request``; returns its message id once the broker confirmed it."""
        assert self._exchange is not None, "not connected"
        message_id = request_message_id(self.instrument, request.request_id)
        envelope = wrap(
            request,
            source=self.instrument,
            correlation_id=request.request_id,
            user=self.icat_user,
            id=message_id,
        )
        try:
            await self._exchange.publish(
                aio_pika.Message(
                    envelope.model_dump_json().encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    user_id=self.instrument,  # RabbitMQ checks it is the connection's user
                    message_id=str(message_id),
                    correlation_id=request.request_id,
                    type=envelope.type,
                    timestamp=envelope.time,
                ),
                routing_key=envelope.type,
                mandatory=True,
            )
        except (OSError, aio_pika.exceptions.AMQPError) as exc:
            raise PeerUnavailableError(f"the broker did not take the request: {exc!r}") from exc
        return str(message_id)

    async def next_answer(
        self, request_id: str, *, within: float, message_id: str | None = None
    ) -> Envelope[Any] | None:
        """The next answer about ``request_id`` (or to the message ``message_id``) within
        ``within`` seconds (None: none came)."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                envelope = await asyncio.wait_for(self._answers.get(), left)
            except TimeoutError:
                return None
            data = envelope.data
            if getattr(data, "request_id", None) == request_id or (
                message_id is not None and getattr(data, "request_message_id", None) == message_id
            ):
                return envelope


async def archive(
    url: str,
    body: Mapping[str, Any],
    *,
    exchange: str = "datastore",
    icat_user: str | None = None,
    wait: Wait = "answer",
    answer_timeout: float = 600.0,
    end_timeout: float = 7 * 24 * 3600.0,
    window: float = DEFAULT_WINDOW_SECONDS,
) -> Outcome:
    """Publish an archive request as the instrument account of ``url`` and follow it: not at
    all (``wait="none"``), until accepted or rejected (``"answer"``), or to its end
    (``"end"``: ``request.completed``)."""
    instrument = broker_user(url)
    request = build_request(body, instrument=instrument, window=window)
    async with InstrumentLink(url, exchange=exchange, icat_user=icat_user) as link:
        if wait != "none":
            await link.listen()
        message_id = await link.publish(request)
        outcome = Outcome(request.request_id, message_id)
        if wait == "none":
            return outcome
        deadline = time.monotonic() + end_timeout
        waiting_for = "answer"
        while True:
            within = answer_timeout if waiting_for == "answer" else deadline - time.monotonic()
            envelope = await link.next_answer(
                request.request_id, within=within, message_id=message_id
            )
            if envelope is None:
                outcome.timed_out = waiting_for
                return outcome
            data = envelope.data
            if isinstance(data, ArchiveRejected):
                outcome.rejected = data
                return outcome
            if isinstance(data, ArchiveAccepted):
                outcome.accepted = data
                if wait == "answer":
                    return outcome
                waiting_for = "end"
            elif isinstance(data, RequestCompleted):
                outcome.completed = data
                return outcome
