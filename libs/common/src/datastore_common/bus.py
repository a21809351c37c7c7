"""The message bus on aio-pika: publish with confirms, consume with a stated ack policy.

Outcome policy, decided here once for every worker (handlers only raise):
- handler returns            -> ack (the handler has made its effect durable first);
- ``TransientError`` or an unexpected exception -> re-published to the delay queue of the next
  backoff step (the last step repeats), then acked;
- ``CredentialError`` (our own credential refused) -> the same, for ever, with an alarm (error
  log + ``datastore_credential_failures_total``): the request is not at fault;
- *giving up*: a ``PermanentError``, retries exhausted (``Topology.retries``), or a message
  delivered ``delivery_limit`` times without an answer (its handler keeps killing the worker)
  -> the consumer's ``on_give_up`` reports the failure (the request ends FAILED, visibly),
  then the message goes to ``dlq.<queue>`` with the reason in headers and is acked;
- a message that does not parse -> ``dlq.<queue>`` with the reason (there is no request to
  report on: it is counted and logged at error level).
Every re-publish is confirmed by the broker before the original is acked, so at each instant
at least one copy of a message is safely stored; if reporting or dead-lettering fails, the
message is returned to its queue and nothing is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aio_pika
import aio_pika.abc
from aio_pika.abc import AbstractIncomingMessage
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from datastore_common.errors import CredentialError, PeerUnavailableError, PermanentError
from datastore_common.logging import bind_correlation_id, get_logger
from datastore_common.messages import Envelope, Payload, parse_envelope
from datastore_common.metrics import (
    CREDENTIAL_FAILURES,
    GIVEN_UP,
    MESSAGES_HANDLED,
    MESSAGES_PUBLISHED,
    RETRY_OLDEST_AGE,
)
from datastore_common.topology import (
    Topology,
    delay_arguments,
    dlq_name,
    queue_arguments,
    retry_queue_name,
)

log = get_logger(__name__)

HEADER_ATTEMPT: Final = "x-datastore-attempt"
HEADER_ERROR: Final = "x-datastore-error"
HEADER_ERROR_TYPE: Final = "x-datastore-error-type"
HEADER_ORIGINAL_QUEUE: Final = "x-datastore-original-queue"
HEADER_FIRST_FAILURE: Final = "x-datastore-first-failure"
HEADER_DELIVERY_COUNT: Final = "x-delivery-count"
MAX_HEADER_TEXT: Final = 2000

Handler = Callable[[Envelope[Any]], Awaitable[None]]
BatchHandler = Callable[[list[Envelope[Any]]], Awaitable[None]]
#: Called with the message and the reason before a message is given up: publishes what makes
#: the failure visible (FAILED states, ``request.failed``). Raising keeps the message queued.
GiveUpHandler = Callable[[Envelope[Any], str, BaseException], Awaitable[None]]
#: Called after a retry was scheduled, with the message, the error and the delay in seconds:
#: tells the request's followers what it waits for. Best effort: a failure is only logged.
RetryHandler = Callable[[Envelope[Any], str, float], Awaitable[None]]


class GaveUpError(PermanentError):
    """A message was delivered ``delivery_limit`` times without its handler ever answering."""


class Bus:
    """One connection, a confirming publish channel, and consumers on their own channels."""

    def __init__(self, url: str, topology: Topology, *, source: str, prefetch: int = 64) -> None:
        self._url = url
        self.topology = topology
        self.source = source
        self.prefetch = prefetch
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._publish_channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._consumers: list[Consumer] = []

    # -- lifecycle -------------------------------------------------------------------------
    async def connect(self, *, attempts: int = 30) -> None:
        """Connect (retrying while the broker starts) and declare the topology."""
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.2, max=5),
            retry=retry_if_exception_type((OSError, aio_pika.exceptions.AMQPConnectionError)),
            reraise=True,
        ):
            with attempt:
                self._connection = await aio_pika.connect_robust(
                    self._url, client_properties={"connection_name": self.source}
                )
        assert self._connection is not None
        self._publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await declare_topology(self._publish_channel, self.topology)
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

    # -- publishing ------------------------------------------------------------------------
    async def publish(
        self, envelope: Envelope[Any], *, headers: Mapping[str, Any] | None = None
    ) -> None:
        """Publish to the topic exchange; returns once the broker has stored it (confirm)."""
        if self._exchange is None:
            raise PeerUnavailableError("bus is not connected")
        await self._confirmed(self._exchange, envelope.type, _message(envelope, headers))

    async def publish_payload(
        self, data: Payload, *, correlation_id: str, user: str | None = None
    ) -> Envelope[Any]:
        from datastore_common.messages import wrap

        envelope = wrap(data, source=self.source, correlation_id=correlation_id, user=user)
        await self.publish(envelope)
        return envelope

    async def send_to_queue(
        self, queue: str, body: bytes | Envelope[Any], *, headers: Mapping[str, Any] | None = None
    ) -> None:
        """Put a message straight into one queue (retries, delays, dead letters)."""
        if self._publish_channel is None:
            raise PeerUnavailableError("bus is not connected")
        message = (
            _message(body, headers)
            if isinstance(body, Envelope)
            else aio_pika.Message(
                body,
                headers=dict(headers or {}),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
            )
        )
        await self._confirmed(self._publish_channel.default_exchange, queue, message)

    async def _confirmed(
        self, exchange: aio_pika.abc.AbstractExchange, routing_key: str, message: aio_pika.Message
    ) -> None:
        try:
            await exchange.publish(message, routing_key=routing_key, mandatory=True)
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
        MESSAGES_PUBLISHED.labels(routing_key=routing_key).inc()

    # -- consuming -------------------------------------------------------------------------
    async def consume(
        self,
        queue: str,
        handler: Handler,
        payload_types: Mapping[str, type[Payload]],
        *,
        on_give_up: GiveUpHandler | None = None,
        on_retry: RetryHandler | None = None,
        prefetch: int | None = None,
    ) -> Consumer:
        consumer = Consumer(
            self,
            queue,
            payload_types,
            handler=handler,
            on_give_up=on_give_up,
            on_retry=on_retry,
            prefetch=prefetch,
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


@dataclass
class Consumer:
    """Delivers a queue's messages to a handler (one by one, or in batches) under the policy."""

    bus: Bus
    queue: str
    payload_types: Mapping[str, type[Payload]]
    handler: Handler | None = None
    batch_handler: BatchHandler | None = None
    max_batch: int = 100
    max_wait: float = 0.5
    on_give_up: GiveUpHandler | None = None
    on_retry: RetryHandler | None = None
    prefetch: int | None = None
    _channel: aio_pika.abc.AbstractChannel | None = None
    _queue: aio_pika.abc.AbstractQueue | None = None
    _tag: str | None = None
    _in_flight: set[asyncio.Future[Any]] = field(default_factory=set)
    _pending: list[AbstractIncomingMessage] = field(default_factory=list)
    _flush_timer: asyncio.TimerHandle | None = None
    _handled_ok: Any = None
    _retrying_since: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._handled_ok = MESSAGES_HANDLED.labels(queue=self.queue, outcome="ok")

    async def start(self) -> None:
        prefetch = self.prefetch or max(
            self.bus.prefetch, self.max_batch if self.batch_handler else 0
        )
        self._channel = await self.bus.new_channel(prefetch)
        self._channel.close_callbacks.add(self._channel_closed)
        self._queue = await self._channel.get_queue(self.queue, ensure=True)
        self._tag = await self._queue.consume(self._on_message)

    def _channel_closed(self, _channel: object, exc: BaseException | None = None) -> None:
        """The broker closed our channel (its ``consumer_timeout`` passed, or the connection
        broke): the messages in hand can no longer be acked and are being redelivered, maybe
        to another worker. Stop their handlers, so that no request is ever handled twice at
        the same time; idempotence covers what they already did."""
        for task in list(self._in_flight):
            if not task.done():
                log.warning("handler_cancelled_channel_closed", queue=self.queue, error=str(exc))
                task.cancel()

    async def stop(self, *, grace: float = 30.0) -> None:
        """Stop taking messages, finish the ones in hand, close the channel.

        Work still running after ``grace`` seconds is cancelled; it was never acked, so the
        broker hands it to another worker.
        """
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):
                await self._queue.cancel(self._tag)
            self._tag = None
        if self._pending:
            self._flush()
        if self._in_flight:
            _, late = await asyncio.wait(set(self._in_flight), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self.batch_handler is None:
            await self._track(self._handle_one(message))
            return
        self._pending.append(message)
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(self.max_wait, self._flush)

    async def _track(self, coro: Awaitable[None]) -> None:
        # aiormq already runs each delivery in its own task: track that one for graceful stop.
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            await coro
        finally:
            self._in_flight.discard(task)

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._handle_batch(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _handle_one(self, message: AbstractIncomingMessage) -> None:
        assert self.handler is not None
        try:
            envelope = parse_envelope(message.body, self.payload_types)
        except PermanentError as exc:
            await self._settle(message, exc)
            return
        try:
            self._check_deliveries(message)
            # Every log line of the handler names the request (each delivery has its own task
            # and so its own context).
            with bind_correlation_id(correlation_id=envelope.correlation_id):
                await self.handler(envelope)
        except Exception as exc:  # the policy, not the handler, decides what a failure means
            await self._settle(message, exc, envelope)
            return
        await message.ack()
        self._succeeded(envelope)
        self._handled_ok.inc()

    def _check_deliveries(self, message: AbstractIncomingMessage) -> None:
        """Give up on the last delivery RabbitMQ grants, while we can still report it."""
        deliveries = _as_int((message.headers or {}).get(HEADER_DELIVERY_COUNT))
        if deliveries >= self.bus.topology.delivery_limit:
            raise GaveUpError(
                f"system error: delivered {deliveries + 1} times and never answered "
                "(the worker stopped while handling it each time)"
            )

    def _succeeded(self, envelope: Envelope[Any]) -> None:
        """The message is settled: it no longer counts as waiting for a retry."""
        if self._retrying_since.pop(str(envelope.id), None) is not None:
            self._update_retry_age()

    def _update_retry_age(self) -> None:
        oldest = min(self._retrying_since.values(), default=None)
        RETRY_OLDEST_AGE.labels(queue=self.queue).set(0 if oldest is None else time.time() - oldest)

    async def _handle_batch(self, messages: list[AbstractIncomingMessage]) -> None:
        assert self.batch_handler is not None
        good: list[tuple[AbstractIncomingMessage, Envelope[Any]]] = []
        for message in messages:
            try:
                good.append((message, parse_envelope(message.body, self.payload_types)))
            except PermanentError as exc:
                await self._settle(message, exc)
        if not good:
            return
        fresh: list[tuple[AbstractIncomingMessage, Envelope[Any]]] = []
        for message, envelope in good:
            try:
                self._check_deliveries(message)
            except GaveUpError as exc:
                await self._settle(message, exc, envelope)
            else:
                fresh.append((message, envelope))
        good = fresh
        if not good:
            return
        try:
            await self.batch_handler([envelope for _, envelope in good])
        except Exception as exc:
            for message, envelope in good:
                await self._settle(message, exc, envelope)
            return
        for message, envelope in good:
            await message.ack()
            self._succeeded(envelope)
        MESSAGES_HANDLED.labels(queue=self.queue, outcome="ok").inc(len(good))

    async def _settle(
        self,
        message: AbstractIncomingMessage,
        exc: BaseException,
        envelope: Envelope[Any] | None = None,
    ) -> None:
        """Retry later, or give up (report, dead-letter); only then ack the original."""
        headers = dict(message.headers or {})
        attempt = _as_int(headers.get(HEADER_ATTEMPT)) + 1
        topology = self.bus.topology
        correlation_id = envelope.correlation_id if envelope else None
        credential = isinstance(exc, CredentialError)
        if credential:
            CREDENTIAL_FAILURES.labels(queue=self.queue).inc()
            log.error(
                "credential_refused",
                queue=self.queue,
                error=_reason(exc),
                attempt=attempt,
                correlation_id=correlation_id,
                action="fix the service's credential; the work waits and is retried",
            )
        give_up = isinstance(exc, PermanentError) or (attempt > topology.retries and not credential)
        try:
            if give_up:
                reason = (
                    _reason(exc)
                    if isinstance(exc, PermanentError)
                    else f"gave up after {attempt} attempts: {_reason(exc)}"
                )
                if envelope is None:
                    log.error("unreadable_message_dead_lettered", queue=self.queue, reason=reason)
                elif self.on_give_up is not None:
                    await self.on_give_up(envelope, reason, exc)
                    GIVEN_UP.labels(queue=self.queue).inc()
                headers.update(
                    {
                        HEADER_ERROR: reason[:MAX_HEADER_TEXT],
                        HEADER_ERROR_TYPE: type(exc).__name__,
                        HEADER_ATTEMPT: attempt,
                        HEADER_ORIGINAL_QUEUE: self.queue,
                    }
                )
                await self.bus.send_to_queue(dlq_name(self.queue), message.body, headers=headers)
                MESSAGES_HANDLED.labels(queue=self.queue, outcome="dead_lettered").inc()
                log.warning(
                    "message_dead_lettered",
                    queue=self.queue,
                    reason=reason,
                    correlation_id=correlation_id,
                    attempt=attempt,
                )
                if envelope is not None:
                    self._succeeded(envelope)  # no longer waiting: out of the age gauge
            else:
                first_failure = headers.get(HEADER_FIRST_FAILURE)
                if not isinstance(first_failure, int | float):
                    first_failure = time.time()
                headers.update(
                    {
                        HEADER_ATTEMPT: attempt,
                        HEADER_ERROR: _reason(exc)[:MAX_HEADER_TEXT],
                        HEADER_FIRST_FAILURE: first_failure,
                    }
                )
                delay = topology.retry_delay(attempt)
                retry_queue = retry_queue_name(self.queue, delay)
                await self.bus.send_to_queue(retry_queue, message.body, headers=headers)
                MESSAGES_HANDLED.labels(queue=self.queue, outcome="retried").inc()
                if envelope is not None:
                    self._retrying_since[str(envelope.id)] = float(first_failure)
                    self._update_retry_age()
                log.info(
                    "message_retry_scheduled",
                    queue=self.queue,
                    attempt=attempt,
                    delay=delay,
                    error=_reason(exc),
                    correlation_id=correlation_id,
                )
        except Exception:
            # Could not report or store the copy: give the message back so it is not lost.
            log.exception("message_settle_failed", queue=self.queue)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            return
        await message.ack()
        if not give_up and envelope is not None and self.on_retry is not None:
            try:
                await self.on_retry(envelope, _reason(exc), topology.retry_delay(attempt))
            except Exception as notice_error:  # the retry itself is safely stored
                log.warning("retry_notice_failed", queue=self.queue, error=str(notice_error))


def _as_int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, PermanentError) else f"{type(exc).__name__}: {text}"


def _message(envelope: Envelope[Any], headers: Mapping[str, Any] | None) -> aio_pika.Message:
    return aio_pika.Message(
        envelope.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(envelope.id),
        correlation_id=envelope.correlation_id,
        type=envelope.type,
        headers=dict(headers or {}),
        timestamp=envelope.time,
    )


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


async def run_until_signalled(stop_hooks: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Block until SIGTERM/SIGINT, then run the stop hooks in order (graceful stop)."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopping")
        for hook in stop_hooks:
            await hook()
