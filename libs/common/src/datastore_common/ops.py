"""``datastore-ops``: look at dead letters and redrive them.

    datastore-ops [--config PATH] dlq list [--json]
    datastore-ops [--config PATH] dlq show QUEUE [--limit N] [--body] [--json]
    datastore-ops [--config PATH] dlq replay QUEUE [--limit N] [--id ID] [--correlation-id ID]
    datastore-ops [--config PATH] dlq purge QUEUE [--yes]

QUEUE is a consumer role (``icat-writer.archive``) or its dead-letter queue
(``dlq.icat-writer.archive``); ``broker.queue_prefix`` is added when the name lacks it. Only the
DLQs of the configured topology can be named, so a work queue can never be purged by mistake.

Nothing here loses a message:
- ``show`` reads with ``basic.get`` without acking and gives everything back with one
  ``basic.nack(requeue)`` at the end. It takes a full pass over the messages that were there when
  it started (even with ``--limit``): RabbitMQ 3.x quorum queues put returned messages at the
  tail, so returning only the first N would move them behind the rest. It nacks rather than
  rejects: on RabbitMQ 4.x a reject counts towards the quorum queue's delivery limit, a nack
  does not;
- ``replay`` publishes a clean copy (every ``x-datastore-*`` failure header, ``x-death`` and
  ``x-delivery-count`` removed; ``x-datastore-replays`` counted up) to the original queue,
  waits for the broker's confirm, and only then acks the DLQ copy; a failed publish gives the
  message back and stops. A crash between confirm and ack leaves a duplicate, never a gap
  (handlers are idempotent). With a filter it also takes a full pass, for the same reason;
- ``purge`` refuses without ``--yes``.

The tool does not declare the topology (it only passively checks queues), so a config that
differs from the running services' cannot change or break the broker's queues.

Exit codes: 0 ok, 2 usage (bad arguments, unknown queue, purge without ``--yes``), 1 failure
(broker unreachable, queue missing, publish refused, no message matched), with a one-line reason
on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import aio_pika
import aio_pika.abc

from datastore_common.bus import (
    HEADER_ATTEMPT,
    HEADER_DELIVERY_COUNT,
    HEADER_ERROR,
    HEADER_ERROR_TYPE,
    HEADER_ORIGINAL_QUEUE,
)
from datastore_common.errors import ConfigurationError
from datastore_common.settings import command_line, settings_from
from datastore_common.topology import Topology, dlq_name
from datastore_common.worker import topology_from

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


def replay_message(message: Message) -> aio_pika.Message:
    """A fresh copy of a dead letter: same body and properties, failure headers removed."""
    old = message.headers or {}
    headers: dict[str, Any] = {
        key: value
        for key, value in old.items()
        if key not in _DROPPED_ON_REPLAY and not key.startswith(_DROPPED_PREFIXES)
    }
    headers[HEADER_REPLAYS] = _int(old.get(HEADER_REPLAYS)) + 1
    # No expiration (a redriven message must not vanish) and no user_id (the broker checks it
    # against whoever publishes, which is now the operator).
    return aio_pika.Message(
        message.body,
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
                    replay_message(message),
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
                f"{failed.original_queue} ({_one_line(cause)}); it stays in {dlq}"
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
async def connect(url: str) -> AsyncIterator[Connection]:
    """One plain connection for one command (no reconnecting, no topology declared)."""
    try:
        connection = await aio_pika.connect(
            url, timeout=CONNECT_TIMEOUT, client_properties={"connection_name": PROG}
        )
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        raise OpsError(f"cannot reach the broker at {_where(url)}: {_one_line(exc)}") from exc
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the command line ------------------------------------------------------------------------
_EPILOG = """\
QUEUE is a consumer role (icat-writer.archive) or its DLQ (dlq.icat-writer.archive);
broker.queue_prefix is added when missing. Exit codes: 0 ok, 2 usage, 1 failure."""


_QUEUE_HELP = "a role (icat-writer.archive) or its DLQ (dlq.icat-writer.archive)"


def build_parser() -> argparse.ArgumentParser:
    parser = command_line(PROG, "Look at and redrive dead-lettered messages.")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    # --config is also accepted after the sub-command; SUPPRESS keeps it from hiding the
    # top-level value when it is given there.
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    groups = parser.add_subparsers(dest="group", metavar="{dlq}", required=True)
    dlq = groups.add_parser(
        "dlq",
        help="dead-letter queues",
        description="Dead-letter queues: list, show, replay, purge.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[config],
    )
    actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="every DLQ with its message count", parents=[config])
    listing.add_argument("--json", action="store_true", help="print JSON")

    show = actions.add_parser(
        "show",
        help="describe dead letters: type, ids, attempt, original queue, error",
        description="Describe dead letters without removing them (order is kept).",
        parents=[config],
    )
    show.add_argument("queue", metavar="QUEUE", help=_QUEUE_HELP)
    show.add_argument(
        "--limit",
        type=_positive,
        default=DEFAULT_SHOW_LIMIT,
        metavar="N",
        help=f"describe at most N messages (default {DEFAULT_SHOW_LIMIT})",
    )
    show.add_argument("--body", action="store_true", help="include each message body")
    show.add_argument("--json", action="store_true", help="print JSON")

    replay = actions.add_parser(
        "replay",
        help="move dead letters back to their original queue",
        description="Move dead letters back to their original queue with the attempt, error "
        "and death headers removed. Each copy is confirmed by the broker before the dead "
        "letter is acked.",
        parents=[config],
    )
    replay.add_argument("queue", metavar="QUEUE", help=_QUEUE_HELP)
    replay.add_argument(
        "--limit", type=_positive, metavar="N", help="replay at most N messages (default all)"
    )
    replay.add_argument(
        "--id", dest="message_id", metavar="MESSAGE_ID", help="only the message with this id"
    )
    replay.add_argument(
        "--correlation-id",
        metavar="ID",
        help="only messages of this request (the id the gateway answered with)",
    )

    purge = actions.add_parser(
        "purge",
        help="delete every message of one DLQ",
        description="Delete every message of one DLQ. Refused without --yes.",
        parents=[config],
    )
    purge.add_argument("queue", metavar="QUEUE", help=_QUEUE_HELP)
    purge.add_argument("--yes", action="store_true", help="really delete them")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


async def run_cli(argv: Sequence[str] | None = None) -> int:
    """The whole command; returns the exit code and never raises (tests call this)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage or help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        settings = settings_from(args)
        topology = topology_from(settings)
        dlq = resolve_dlq(topology, args.queue) if getattr(args, "queue", None) else ""
        async with connect(settings.broker.url.get_secret_value()) as connection:
            return await _dispatch(args, connection, topology, dlq)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line, no traceback: this is an operator's tool
        plain = isinstance(exc, OpsError | ConfigurationError)
        reason = " ".join(str(exc).split()) if plain else _one_line(exc)
        print(f"{PROG}: error: {reason}", file=sys.stderr)
        return 1


async def _dispatch(
    args: argparse.Namespace, connection: Connection, topology: Topology, dlq: str
) -> int:
    if args.action == "list":
        counts = await list_dlqs(connection, topology)
        if args.json:
            _print_json([asdict(count) for count in counts])
        else:
            _print_counts(counts)
        return 0
    if args.action == "show":
        report = await show_dlq(connection, dlq, limit=args.limit, with_body=args.body)
        if args.json:
            _print_json(
                {
                    "queue": report.queue,
                    "messages": report.messages,
                    "shown": [_letter_json(letter, args.body) for letter in report.shown],
                }
            )
        else:
            _print_letters(report, with_body=args.body)
        return 0
    if args.action == "replay":
        result = await replay_dlq(
            connection,
            dlq,
            limit=args.limit,
            message_id=args.message_id,
            correlation_id=args.correlation_id,
        )
        return _print_replay(result, filtered=bool(args.message_id or args.correlation_id))
    if args.action == "purge":
        waiting = await message_count(connection, dlq)
        if waiting is None:
            raise OpsError(f"{dlq} does not exist on the broker")
        if not args.yes:
            raise UsageError(f"refusing to purge {dlq} ({waiting} message(s)) without --yes")
        purged = await purge_dlq(connection, dlq)
        print(f"purged {purged} message(s) from {dlq}")
        return 0
    raise UsageError(f"unknown action {args.action!r}")  # argparse makes this unreachable


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


def _letter_json(letter: DeadLetter, with_body: bool) -> dict[str, Any]:
    data = asdict(letter)
    if not with_body:
        del data["body"]
    return data


def _print_counts(counts: Sequence[DlqCount]) -> None:
    rows = [
        (count.queue, "not declared" if count.messages is None else str(count.messages))
        for count in counts
    ]
    width = max([len("QUEUE"), *(len(queue) for queue, _ in rows)])
    number = max([len("MESSAGES"), *(len(shown) for _, shown in rows)])
    print(f"{'QUEUE':<{width}}  {'MESSAGES':>{number}}")
    for queue, shown in rows:
        print(f"{queue:<{width}}  {shown:>{number}}")


def _print_letters(report: ShowReport, *, with_body: bool) -> None:
    print(f"{report.queue}: {report.messages} message(s), showing {len(report.shown)}")
    for letter in report.shown:
        if letter.dead_lettered_by == "rabbitmq":
            error_type = f"(dead-lettered by RabbitMQ: {letter.death_reason})"
        else:
            error_type = letter.error_type or "-"
        rows = [
            ("id", letter.id),
            ("correlation id", letter.correlation_id),
            ("attempt", letter.attempt),
            ("original queue", letter.original_queue),
            ("error type", error_type),
            ("error", letter.error),
        ]
        if letter.replays:
            rows.append(("replayed before", f"{letter.replays} time(s)"))
        print(f"[{letter.position}] {letter.type or '(not an envelope)'}  ({letter.size} bytes)")
        for label, value in rows:
            print(f"    {label + ':':<16} {'-' if value is None else value}")
        if with_body:
            body = letter.body if isinstance(letter.body, str) else json.dumps(letter.body)
            print(f"    {'body:':<16} {body}")


def _print_replay(report: ReplayReport, *, filtered: bool) -> int:
    if not report.replayed:
        if filtered:
            print(f"{PROG}: error: no message in {report.queue} matches", file=sys.stderr)
            return 1
        print(f"{report.queue} is empty: nothing to replay")
        return 0
    targets: dict[str, int] = {}
    for letter in report.replayed:
        targets[letter.original_queue] = targets.get(letter.original_queue, 0) + 1
    where = ", ".join(f"{n} to {queue}" for queue, n in targets.items())
    print(f"replayed {len(report.replayed)} message(s) from {report.queue}: {where}")
    for letter in report.replayed:
        print(f"    {letter.id or '-'}  {letter.type or '-'}  {letter.correlation_id or '-'}")
    if report.kept:
        print(f"{report.kept} message(s) left in {report.queue}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # The client libraries log connection trouble themselves; the tool says it once, on one line.
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return asyncio.run(run_cli(argv))
    except KeyboardInterrupt:  # unacked messages go back to the DLQ when the connection drops
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
