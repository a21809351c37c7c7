"""The message bus on aio-pika: one connection, publish with confirms, consumers under the ack
policy of :mod:`datastore_common.adapters.rabbitmq.consumer`.

The connection goes to one broker, or to the first node of a cluster that answers; when its
node goes it moves to another one and re-opens its channels and consumers there
(:mod:`datastore_common.adapters.rabbitmq.connection`). Messages in hand when a connection
drops were never acked: the broker delivers them again (handlers are idempotent).

Every publish is confirmed by the broker before it returns, so a caller (and the consumer's
policy, which re-publishes before it acks) knows the message is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import aio_pika
import aio_pika.abc
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential,
)

from datastore_common.adapters.rabbitmq.connection import (
    ClusterConnection,
    ConnectionFactory,
    connect_cluster,
)
from datastore_common.adapters.rabbitmq.consumer import (
    AlreadyApplied,
    BatchHandler,
    Consumer,
    GiveUpHandler,
    Handler,
    RefusalHandler,
    RetryHandler,
)
from datastore_common.adapters.rabbitmq.declare import declare_topology
from datastore_common.domain.broker_nodes import check_urls, split_urls, user_of
from datastore_common.domain.senders import SenderPolicy
from datastore_common.errors import PeerUnavailableError
from datastore_common.messages import Envelope, Payload
from datastore_common.metrics import MESSAGES_PUBLISHED
from datastore_common.topology import Topology


class Bus:
    """One connection, a confirming publish channel, and consumers on their own channels."""

    def __init__(
        self,
        url: str | Sequence[str],
        topology: Topology,
        *,
        source: str,
        prefetch: int = 64,
        senders: SenderPolicy | None = None,
        connection_factory: ConnectionFactory = ClusterConnection,
    ) -> None:
        #: One URL, or every cluster node's (``domain.broker_nodes``: one user and vhost).
        self._urls = check_urls(split_urls(url))
        self._connection_factory = connection_factory
        self.topology = topology
        self.source = source
        self.prefetch = prefetch
        #: Every message published carries it as ``user_id``; RabbitMQ checks it is ours. It is
        #: the same on every node: ``check_urls`` refuses URLs naming different users.
        self.user = user_of(self._urls)
        #: Who may send what to our consumers (``domain.senders``); None checks nothing
        #: (tools and tests on throw-away topologies).
        self.senders = senders
        self._connection: ClusterConnection | None = None
        self._publish_channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._consumers: list[Consumer] = []

    # -- lifecycle -------------------------------------------------------------------------
    async def connect(self, *, attempts: int = 30) -> None:
        """Connect to the first node that answers (each attempt tries every node once; retried
        while the broker starts; ``attempts`` 0 = until one answers) and declare the topology."""
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts) if attempts else stop_never,
            wait=wait_exponential(multiplier=0.2, max=5),
            retry=retry_if_exception_type((OSError, aio_pika.exceptions.AMQPConnectionError)),
            reraise=True,
        ):
            with attempt:
                self._connection = await connect_cluster(
                    self._urls,
                    client_properties={"connection_name": self.source},
                    factory=self._connection_factory,
                )
        assert self._connection is not None
        # Declared once, on a channel closed afterwards: the topology is durable (and on every
        # node of a cluster), so a reconnection need not declare it all again.
        setup = await self._connection.channel()
        await declare_topology(setup, self.topology)
        await setup.close()
        self._publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchange = await self._publish_channel.get_exchange(self.topology.exchange)

    async def close(self, *, grace: float = 30.0) -> None:
        """Stop every consumer (waiting up to ``grace`` s for work in hand), then disconnect."""
        for consumer in self._consumers:
            await consumer.stop(grace=grace)
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def __aenter__(self) -> Bus:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    @property
    def node(self) -> str | None:
        """The node the connection uses (or tries next), without credentials; None before
        ``connect``."""
        return None if self._connection is None else self._connection.node

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node's URL this bus may use (with credentials: for tools that connect too)."""
        return self._urls

    # -- publishing ------------------------------------------------------------------------
    async def publish(
        self, envelope: Envelope[Any], *, headers: Mapping[str, Any] | None = None
    ) -> None:
        """Publish to the topic exchange; returns once the broker has stored it (confirm).

        The routing key is the type, or ``<type>.<instrument>`` for a message addressed to an
        instrument (``Payload.routing_key``)."""
        if self._exchange is None:
            raise PeerUnavailableError("bus is not connected")
        data = envelope.data
        await self._confirmed(
            self._exchange,
            data.routing_key(),
            _message(envelope, headers, user_id=self.user),
            mandatory=data.mandatory(),
            label=envelope.type,
        )

    async def publish_payload(
        self,
        data: Payload,
        *,
        correlation_id: str,
        user: str | None = None,
        message_id: uuid.UUID | None = None,
    ) -> Envelope[Any]:
        from datastore_common.messages import wrap

        envelope = wrap(
            data, source=self.source, correlation_id=correlation_id, user=user, id=message_id
        )
        await self.publish(envelope)
        return envelope

    async def send_to_queue(
        self, queue: str, body: bytes | Envelope[Any], *, headers: Mapping[str, Any] | None = None
    ) -> None:
        """Put a message straight into one queue (retries, delays, dead letters)."""
        if self._publish_channel is None:
            raise PeerUnavailableError("bus is not connected")
        message = (
            _message(body, headers, user_id=self.user)
            if isinstance(body, Envelope)
            else aio_pika.Message(
                body,
                headers=dict(headers or {}),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
                user_id=self.user,
            )
        )
        await self._confirmed(self._publish_channel.default_exchange, queue, message)

    async def _confirmed(
        self,
        exchange: aio_pika.abc.AbstractExchange,
        routing_key: str,
        message: aio_pika.Message,
        *,
        mandatory: bool = True,
        label: str | None = None,
    ) -> None:
        try:
            await exchange.publish(message, routing_key=routing_key, mandatory=mandatory)
        except aio_pika.exceptions.DeliveryError as exc:
            # Unroutable or nacked: nobody would ever see it, so the caller must not go on.
            raise PeerUnavailableError(
                f"broker did not take message for {routing_key}: {exc}"
            ) from exc
        except (
            TimeoutError,
            ConnectionError,
            aio_pika.exceptions.AMQPError,
            aio_pika.exceptions.ChannelInvalidStateError,  # publishing on a closed channel
        ) as exc:
            raise PeerUnavailableError(f"publish to {routing_key} failed: {exc!r}") from exc
        # Labelled by type, not by an addressed key: one series per message type.
        MESSAGES_PUBLISHED.labels(routing_key=label or routing_key).inc()

    # -- consuming -------------------------------------------------------------------------
    async def consume(
        self,
        queue: str,
        handler: Handler,
        payload_types: Mapping[str, type[Payload]],
        *,
        on_give_up: GiveUpHandler | None = None,
        on_retry: RetryHandler | None = None,
        on_refused: RefusalHandler | None = None,
        prefetch: int | None = None,
        already_applied: AlreadyApplied | None = None,
    ) -> Consumer:
        consumer = Consumer(
            self,
            queue,
            payload_types,
            handler=handler,
            on_give_up=on_give_up,
            on_retry=on_retry,
            on_refused=on_refused,
            prefetch=prefetch,
            already_applied=already_applied,
        )
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def consume_batches(
        self,
        queue: str,
        handler: BatchHandler,
        payload_types: Mapping[str, type[Payload]],
        *,
        max_batch: int = 100,
        max_wait: float = 0.5,
        on_give_up: GiveUpHandler | None = None,
        on_retry: RetryHandler | None = None,
        on_refused: RefusalHandler | None = None,
    ) -> Consumer:
        consumer = Consumer(
            self,
            queue,
            payload_types,
            batch_handler=handler,
            max_batch=max_batch,
            max_wait=max_wait,
            on_give_up=on_give_up,
            on_retry=on_retry,
            on_refused=on_refused,
        )
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def new_channel(self, prefetch: int) -> aio_pika.abc.AbstractChannel:
        if self._connection is None:
            raise PeerUnavailableError("bus is not connected")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        return channel


def _message(
    envelope: Envelope[Any], headers: Mapping[str, Any] | None, *, user_id: str
) -> aio_pika.Message:
    return aio_pika.Message(
        envelope.model_dump_json().encode(),
        user_id=user_id,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(envelope.id),
        correlation_id=envelope.correlation_id,
        type=envelope.type,
        headers=dict(headers or {}),
        timestamp=envelope.time,
    )
