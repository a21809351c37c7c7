"""Dead-letter queues: list them, describe their messages, replay them to the queue they came
from, purge them, without ever losing a message (see the package's description)."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aio_pika
import aio_pika.abc

from datastore_common.adapters.rabbitmq.connection import connect_plain
from datastore_common.adapters.rabbitmq.consumer import (
    HEADER_ATTEMPT,
    HEADER_DELIVERY_COUNT,
    HEADER_ERROR,
    HEADER_ERROR_TYPE,
    HEADER_ORIGINAL_QUEUE,
)
from datastore_common.domain.broker_nodes import split_urls
from datastore_common.domain.senders import HEADER_SENDER
from datastore_common.topology import Topology, dlq_name

PROG: Final = "datastore-ops"
DLQ_PREFIX: Final = dlq_name("")
HEADER_REPLAYS: Final = "x-datastore-replays"
HEADER_DEATH: Final = "x-death"
DEFAULT_SHOW_LIMIT: Final = 20
CONNECT_TIMEOUT: Final = 10.0
PUBLISH_TIMEOUT: Final = 30.0

# Headers that describe failed attempts, not the message: dropped on replay so the message
# starts over (a fresh retry ladder, retry age and delivery count). Every ``x-datastore-*``
# header the bus writes is such history (attempt, error, error type, original queue, first
# failure, and whatever joins them), so the whole family goes, except the replay count.
_DATASTORE_HEADERS: Final = "x-datastore-"
_DROPPED_ON_REPLAY: Final = frozenset({HEADER_DELIVERY_COUNT, HEADER_DEATH})
_DROPPED_PREFIXES: Final = (_DATASTORE_HEADERS, "x-first-death-", "x-last-death-")

Connection = aio_pika.abc.AbstractConnection
Message = aio_pika.abc.AbstractIncomingMessage


class OpsError(Exception):
    """The operation failed (exit 1)."""


class UsageError(Exception):
    """The operator asked for something that cannot be meant (exit 2)."""


# -- what the tool reports -----------------------------------------------------------------------
@dataclass(frozen=True)
class DlqCount:
    queue: str
    role: str
    messages: int | None  # None: the queue is not declared on the broker


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message, as an operator needs to see it."""

    position: int
    id: str | None
    type: str | None
    correlation_id: str | None
    attempt: int | None
    original_queue: str
    error_type: str | None
    error: str | None
    dead_lettered_by: str | None  # "datastore" (the bus's policy) or "rabbitmq" (x-death)
    death_reason: str | None  # RabbitMQ's reason: delivery_limit, rejected, expired, ...
    replays: int
    size: int
    body: Any = None  # only with --body: the parsed JSON, or the text when it is not JSON

    def matches(self, message_id: str | None, correlation_id: str | None) -> bool:
        return (message_id is None or self.id == message_id) and (
            correlation_id is None or self.correlation_id == correlation_id
        )


@dataclass(frozen=True)
class ShowReport:
    queue: str
    messages: int
    shown: list[DeadLetter]


@dataclass(frozen=True)
class ReplayReport:
    queue: str
    replayed: list[DeadLetter] = field(default_factory=list)
    kept: int = 0


# -- queue names -----------------------------------------------------------------------------
def resolve_dlq(topology: Topology, name: str) -> str:
    """The DLQ meant by ``name``: a role or queue name, with or without ``dlq.`` and prefix."""
    base = name.removeprefix(DLQ_PREFIX)
    queues = [spec.name for spec in topology.queues]
    for candidate in (base, f"{topology.queue_prefix}{base}"):
        if candidate in queues:
            return dlq_name(candidate)
    roles = ", ".join(_role(topology, queue) for queue in queues)
    raise UsageError(f"unknown queue {name!r}; expected one of: {roles} (or dlq.<role>)")


def _role(topology: Topology, queue: str) -> str:
    return queue.removeprefix(topology.queue_prefix)


def original_queue(dlq: str, headers: Mapping[str, Any]) -> str:
    """Where a dead letter came from: the bus's header, else the DLQ's name without ``dlq.``."""
    named = headers.get(HEADER_ORIGINAL_QUEUE)
    if isinstance(named, bytes):
        named = named.decode(errors="replace")
    return named if isinstance(named, str) and named else dlq.removeprefix(DLQ_PREFIX)


# -- reading a message -----------------------------------------------------------------------
def describe(dlq: str, message: Message, position: int, *, with_body: bool = False) -> DeadLetter:
    headers = dict(message.headers or {})
    envelope = _envelope_fields(message.body)
    deaths = headers.get(HEADER_DEATH)
    last_death = deaths[0] if isinstance(deaths, list) and deaths else None
    death_reason = _text(last_death.get("reason")) if isinstance(last_death, dict) else None
    death_reason = death_reason or _text(headers.get("x-first-death-reason"))
    error_type = _text(headers.get(HEADER_ERROR_TYPE))
    by = "datastore" if error_type else ("rabbitmq" if death_reason else None)
    attempt = headers.get(HEADER_ATTEMPT)
    return DeadLetter(
        position=position,
        id=envelope.get("id") or message.message_id,
        type=envelope.get("type") or message.type,
        correlation_id=envelope.get("correlation_id") or message.correlation_id,
        attempt=attempt if isinstance(attempt, int) else None,
        original_queue=original_queue(dlq, headers),
        error_type=error_type,
        error=_text(headers.get(HEADER_ERROR)),
        dead_lettered_by=by,
        death_reason=death_reason,
        replays=_int(headers.get(HEADER_REPLAYS)),
        size=len(message.body),
        body=_body(message.body) if with_body else None,
    )


def _envelope_fields(body: bytes) -> dict[str, str]:
    """id, type and correlation_id from the envelope, as far as the body is one."""
    try:
        raw = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        key: str(raw[key])
        for key in ("id", "type", "correlation_id")
        if isinstance(raw.get(key), str | int) and raw[key] != ""
    }


def _body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def replay_message(message: Message, *, operator: str) -> aio_pika.Message:
    """A fresh copy of a dead letter: same body and properties, failure headers removed,
    published by ``operator`` (its broker user) on behalf of the original sender."""
    old = message.headers or {}
    headers: dict[str, Any] = {
        key: value
        for key, value in old.items()
        if key not in _DROPPED_ON_REPLAY and not key.startswith(_DROPPED_PREFIXES)
    }
    headers[HEADER_REPLAYS] = _int(old.get(HEADER_REPLAYS)) + 1
    # The broker checks user_id against whoever publishes, now the operator; consumers believe
    # an operator's word for who sent the original (domain.senders).
    sender = _text(old.get(HEADER_SENDER)) or message.user_id
    if sender:
        headers[HEADER_SENDER] = sender
    # No expiration: a redriven message must not vanish.
    return aio_pika.Message(
        message.body,
        user_id=operator,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


# -- the operations --------------------------------------------------------------------------
async def message_count(connection: Connection, queue: str) -> int | None:
    """Messages ready in ``queue``, or None when it does not exist (checked passively)."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return None
    finally:
        if not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()
    return declared.declaration_result.message_count or 0


async def list_dlqs(connection: Connection, topology: Topology) -> list[DlqCount]:
    """Every DLQ of the topology with its message count."""
    return [
        DlqCount(
            queue=dlq_name(spec.name),
            role=_role(topology, spec.name),
            messages=await message_count(connection, dlq_name(spec.name)),
        )
        for spec in topology.queues
    ]


async def show_dlq(
    connection: Connection, dlq: str, *, limit: int = DEFAULT_SHOW_LIMIT, with_body: bool = False
) -> ShowReport:
    """Describe the first ``limit`` messages; every message stays, in its order."""
    channel = await connection.channel()
    last: Message | None = None
    shown: list[DeadLetter] = []
    try:
        queue = await _existing(channel, dlq)
        total = queue.declaration_result.message_count or 0
        for position in range(1, total + 1):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            last = message
            if len(shown) < limit:
                shown.append(describe(dlq, message, position, with_body=with_body))
    finally:
        await _give_back(last)
        await _close(channel)
    return ShowReport(queue=dlq, messages=total, shown=shown)


def connection_user(connection: Connection) -> str:
    """The broker user a connection logged in as (it publishes as that ``user_id``)."""
    url = getattr(connection, "url", None)
    user = getattr(url, "user", None)  # a yarl URL: already decoded
    return user if isinstance(user, str) and user else "guest"


async def replay_dlq(
    connection: Connection,
    dlq: str,
    *,
    limit: int | None = None,
    message_id: str | None = None,
    correlation_id: str | None = None,
) -> ReplayReport:
    """Move dead letters back to their original queue; each copy is confirmed before the ack.

    Only the messages present at the start are considered, so a message that fails again and
    comes back during the run is not replayed twice. After a refused publish nothing more is
    replayed; the pass goes on only to hold the rest, so that everything goes back in order.
    """
    channel = await connection.channel()
    publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
    replayed: list[DeadLetter] = []
    kept = 0
    last_kept: Message | None = None
    refused: tuple[DeadLetter, Exception] | None = None
    try:
        queue = await _existing(channel, dlq)
        total = queue.declaration_result.message_count or 0
        for position in range(1, total + 1):
            done = refused is not None or (limit is not None and len(replayed) >= limit)
            if done and last_kept is None:
                break  # nothing is held back, so stopping here keeps the order
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            letter = describe(dlq, message, position)
            if done or not letter.matches(message_id, correlation_id):
                last_kept, kept = message, kept + 1
                continue
            try:
                await publisher.default_exchange.publish(
                    replay_message(message, operator=connection_user(connection)),
                    routing_key=letter.original_queue,
                    mandatory=True,
                    timeout=PUBLISH_TIMEOUT,
                )
            except Exception as error:
                last_kept, kept = message, kept + 1
                refused = (letter, error)
                continue
            await message.ack()
            replayed.append(letter)
        if refused is not None:
            failed, cause = refused
            raise OpsError(
                f"broker did not take message {failed.id or failed.position} for "
                f"{failed.original_queue} ({one_line(cause)}); it stays in {dlq}"
                + (f", {len(replayed)} replayed before it" if replayed else "")
            ) from cause
    finally:
        await _give_back(last_kept)
        await _close(channel)
        await _close(publisher)
    return ReplayReport(queue=dlq, replayed=replayed, kept=kept)


async def purge_dlq(connection: Connection, dlq: str) -> int:
    """Delete every ready message of one DLQ; returns how many went."""
    channel = await connection.channel()
    try:
        queue = await _existing(channel, dlq)
        result = await queue.purge()
    finally:
        await _close(channel)
    return result.message_count or 0


async def _existing(
    channel: aio_pika.abc.AbstractChannel, queue: str
) -> aio_pika.abc.AbstractQueue:
    try:
        return await channel.declare_queue(queue, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        raise OpsError(
            f"{queue} does not exist on the broker (has a service declared the topology?)"
        ) from None


async def _give_back(last: Message | None) -> None:
    """Return every unacked message up to ``last`` in delivery order (one nack, multiple)."""
    if last is not None:
        # If this fails the channel is gone, and the broker returns them on its own.
        with contextlib.suppress(Exception):
            await last.nack(multiple=True, requeue=True)


async def _close(channel: aio_pika.abc.AbstractChannel) -> None:
    if not channel.is_closed:
        with contextlib.suppress(Exception):
            await channel.close()


@contextlib.asynccontextmanager
async def connect(url: str | Sequence[str]) -> AsyncIterator[Connection]:
    """One plain connection for one command (no reconnecting, no topology declared), to the
    first node that answers when ``url`` names a cluster's (``broker.url``)."""
    urls = split_urls(url)
    try:
        connection = await connect_plain(urls, connect_timeout=CONNECT_TIMEOUT, name=PROG)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        where = ", ".join(_where(node) for node in urls)
        raise OpsError(f"cannot reach the broker at {where}: {one_line(exc)}") from exc
    try:
        yield connection
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


def _where(url: str) -> str:
    """The broker's address without credentials."""
    parsed = urllib.parse.urlsplit(url)
    vhost = parsed.path if parsed.path not in ("", "/") else ""
    return f"{parsed.hostname}:{parsed.port or 5672}{vhost}"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
