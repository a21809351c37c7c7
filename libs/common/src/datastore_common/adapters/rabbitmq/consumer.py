"""Consuming under a stated ack policy: the one place that decides what a failure means.

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
  report on: it is counted and logged at error level);
- a message whose sender may not send it (``domain.senders``: its AMQP ``user_id`` has no
  role allowed to publish its type) -> ``dlq.<queue>`` with the reason, counted in
  ``datastore_messages_refused_total``; it reaches no handler and is not reported FAILED (a
  forger must not be able to fail someone else's request either). Such a message, or one that
  does not parse, is first shown to the consumer's ``on_refused`` (the icat-writer answers an
  instrument's with ``archive.rejected``).
Every re-publish is confirmed by the broker before the original is acked, so at each instant
at least one copy of a message is safely stored; if reporting or dead-lettering fails, the
message is returned to its queue and nothing is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import aio_pika.abc
from aio_pika.abc import AbstractIncomingMessage

from datastore_common.domain.senders import (
    HEADER_SENDER,
    RefusedSenderError,
    authorise,
    original_sender,
)
from datastore_common.errors import CredentialError, GaveUpError, PermanentError
from datastore_common.logging import bind_correlation_id, get_logger
from datastore_common.messages import Envelope, Payload, parse_envelope
from datastore_common.metrics import (
    CREDENTIAL_FAILURES,
    GIVEN_UP,
    MESSAGES_HANDLED,
    MESSAGES_REFUSED,
    RETRY_OLDEST_AGE,
)
from datastore_common.topology import dlq_name, retry_queue_name

if TYPE_CHECKING:
    from datastore_common.adapters.rabbitmq.bus import Bus

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


@dataclass(frozen=True)
class RefusedMessage:
    """A message refused before any handler ran: it did not parse, or its sender may not
    send it (``domain.senders``)."""

    body: bytes
    #: Who sent it, as far as the consumer believes (RabbitMQ's ``user_id``, or the one a
    #: service or operator vouched for: ``domain.senders.original_sender``).
    sender: str | None
    message_id: str | None
    correlation_id: str | None
    reason: str
    error: PermanentError


#: Called with a message refused before any handler ran, before it is dead-lettered: tells
#: its sender why, where it can be told. Raising keeps the message queued.
RefusalHandler = Callable[[RefusedMessage], Awaitable[None]]
#: Called after a retry was scheduled, with the message, the error and the delay in seconds:
#: tells the request's followers what it waits for. Best effort: a failure is only logged.
RetryHandler = Callable[[Envelope[Any], str, float], Awaitable[None]]
#: Called with a delivery's message id before its body is read: True when the consumer's
#: service already did what the message asks (it published the message itself and applied
#: it on the way; it may wait for that to finish), so it is acked unread: parsing a large
#: body only to do nothing again costs more than the work the service did.
AlreadyApplied = Callable[[str | None], Awaitable[bool]]


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
    on_refused: RefusalHandler | None = None
    prefetch: int | None = None
    already_applied: AlreadyApplied | None = None
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
        if self.already_applied is not None and await self.already_applied(message.message_id):
            await message.ack()
            self._handled_ok.inc()
            return
        try:
            envelope = self._accept(message)
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

    def _accept(self, message: AbstractIncomingMessage) -> Envelope[Any]:
        """Parse the body and check its sender (``domain.senders``): the envelope the handler
        may act on, or a ``PermanentError`` saying why not."""
        envelope = parse_envelope(message.body, self.payload_types)
        policy = self.bus.senders
        if policy is None:
            return envelope
        vouched = _vouched(message)
        if vouched and vouched != message.user_id and message.exchange:
            # Copies are put back through the default exchange (retries, delays, an operator's
            # replay); on the topic exchange the header can only be a forgery.
            raise RefusedSenderError(
                "false_vouch",
                f"refused: {message.user_id!r} published to {message.exchange!r} a message "
                f"naming {vouched!r} as its sender; only copies put back into a queue may",
            )
        return authorise(policy, envelope, message.user_id, vouched)

    def _sender_of(self, message: AbstractIncomingMessage) -> str | None:
        """Who sent the message, as far as we believe (see ``original_sender``)."""
        vouched = None if message.exchange else _vouched(message)
        policy = self.bus.senders
        if policy is None:
            return vouched or message.user_id
        return original_sender(policy, message.user_id, vouched)

    def _name_sender(self, message: AbstractIncomingMessage, headers: dict[str, Any]) -> None:
        sender = self._sender_of(message)
        if sender:
            headers[HEADER_SENDER] = sender
        else:
            headers.pop(HEADER_SENDER, None)

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
                good.append((message, self._accept(message)))
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
        # Our copy is published under our own broker user: say who sent the original (a
        # consumer believes this only from the service itself and from operators).
        self._name_sender(message, headers)
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
                if self.on_refused is not None and (
                    envelope is None or isinstance(exc, RefusedSenderError)
                ):
                    assert isinstance(exc, PermanentError)  # how _accept refuses
                    await self.on_refused(
                        RefusedMessage(
                            body=message.body,
                            sender=self._sender_of(message),
                            message_id=message.message_id,
                            correlation_id=message.correlation_id,
                            reason=reason,
                            error=exc,
                        )
                    )
                if isinstance(exc, RefusedSenderError):
                    MESSAGES_REFUSED.labels(queue=self.queue, reason=exc.kind).inc()
                    log.error(
                        "message_refused_sender",
                        queue=self.queue,
                        reason=reason,
                        user_id=message.user_id,
                        type=message.type,
                        action="a misconfigured publisher or a forgery: see the dead letter",
                    )
                elif envelope is None:
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


def _vouched(message: AbstractIncomingMessage) -> str | None:
    value = (message.headers or {}).get(HEADER_SENDER)
    return value if isinstance(value, str) and value else None


def _as_int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, PermanentError) else f"{type(exc).__name__}: {text}"
