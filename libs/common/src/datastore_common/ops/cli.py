"""The ``datastore-ops`` command line: arguments, exit codes and what it prints."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.xrootd.storage import XRootDStorage
from datastore_common.domain.audit import summary
from datastore_common.domain.broker_nodes import join_urls
from datastore_common.errors import ConfigurationError
from datastore_common.logging import configure_logging
from datastore_common.ops.audit import run_audit, write_metrics_file, write_report
from datastore_common.ops.broker_users import (
    account_url,
    definitions,
    import_definitions,
    local_accounts,
)
from datastore_common.ops.dlq import (
    DEFAULT_SHOW_LIMIT,
    PROG,
    Connection,
    DeadLetter,
    DlqCount,
    OpsError,
    ReplayReport,
    ShowReport,
    UsageError,
    connect,
    list_dlqs,
    message_count,
    one_line,
    purge_dlq,
    replay_dlq,
    resolve_dlq,
    show_dlq,
)
from datastore_common.ops.retry import Gateway, RetryReport, bulk_retry, parse_since
from datastore_common.ports import Catalogue, Storage
from datastore_common.settings import DatastoreSettings, command_line, settings_from
from datastore_common.topology import Topology
from datastore_common.worker import topology_from

# -- the command line ------------------------------------------------------------------------
_EPILOG = """\
QUEUE is a consumer role (icat-writer.archive) or its DLQ (dlq.icat-writer.archive);
broker.queue_prefix is added when missing. Exit codes: 0 ok, 2 usage, 1 failure."""


_QUEUE_HELP = "a role (icat-writer.archive) or its DLQ (dlq.icat-writer.archive)"


def build_parser() -> argparse.ArgumentParser:
    parser = command_line(
        PROG,
        "Operate Datastore: dead letters, bulk retries, broker accounts, the catalogue-vs-tape "
        "audit.",
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    # --config is also accepted after the sub-command; SUPPRESS keeps it from hiding the
    # top-level value when it is given there.
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    groups = parser.add_subparsers(
        dest="group", metavar="{dlq,retry,broker-accounts,audit}", required=True
    )
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

    broker = groups.add_parser(
        "broker-accounts",
        help="one broker user per role: passwords, URLs and RabbitMQ definitions",
        description="Make (once) a password for each role's broker user and each instrument "
        "under SECRETS (mode 0600), write each one's URL to SECRETS/<user>.url, and write "
        "the RabbitMQ definitions (users, permissions, topic permissions) to DEFINITIONS for "
        "`rabbitmqctl import_definitions` or the server's load_definitions. No broker needed.",
    )
    broker.add_argument("--secrets", required=True, type=Path, metavar="SECRETS")
    broker.add_argument("--definitions", required=True, type=Path, metavar="DEFINITIONS")
    broker.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help="the broker's URL (default amqp://127.0.0.1:5672/); repeat it for each node of "
        "a cluster: each account's URL then names every node (broker.url)",
    )
    broker.add_argument("--exchange", default="datastore", help="the topic exchange")
    broker.add_argument("--prefix", default="", help="prepended to every user name (tests)")
    broker.add_argument(
        "--instrument", action="append", default=[], metavar="USER", help="an instrument's user"
    )
    broker.add_argument(
        "--apply",
        action="store_true",
        help="also import them into the RabbitMQ on this host (rabbitmqctl import_definitions)",
    )
    broker.add_argument(
        "--rabbitmqctl",
        default="rabbitmqctl",
        metavar="COMMAND",
        help="how --apply runs rabbitmqctl, e.g. 'rabbitmqctl -n rabbit@node1' or the local "
        "cluster's 'deploy/local/rabbitmq-cluster.sh ctl' (default rabbitmqctl)",
    )
    retry = groups.add_parser(
        "retry",
        help="retry in bulk the datasets of archives that ended badly",
        description="Retry, through the gateway (POST /datasets/{id}/retry), every dataset of "
        "the archive requests that ended in --state since --since with a failure of --class. "
        f"The session (--session or ${SESSION_ENV}) must be an admin's (gateway.admins: "
        "everyone's requests) and an archiver's. Exit codes: 0 ok, 2 usage, 1 failure.",
        parents=[config],
    )
    retry.add_argument(
        "--state",
        action="append",
        choices=("FAILED", "FINISHEDDIRTY", "CANCELED"),
        help="the requests' end state (repeatable; default FAILED)",
    )
    retry.add_argument(
        "--class",
        dest="failure_class",
        action="append",
        choices=("user", "system"),
        help="the failure class (repeatable; default both); FTS failures count as system",
    )
    retry.add_argument(
        "--since",
        required=True,
        help="requests accepted since: a duration back from now (30m, 12h, 2d, 1w) or an ISO date",
    )
    retry.add_argument("--dry-run", action="store_true", help="only list what would be retried")
    retry.add_argument(
        "--gateway",
        metavar="URL",
        help="the gateway's URL (default http://<gateway.host>:<gateway.port>)",
    )
    retry.add_argument("--session", metavar="ID", help=f"the ICAT session (default ${SESSION_ENV})")
    audit = groups.add_parser(
        "audit",
        help="compare ICAT's archived datafiles with the tape; re-verify a sample's adler32",
        description='Compare the datafiles ICAT calls archived ("Archival state" FINISHED, '
        "written by the functional account) with the files under the tape root "
        "(tape_archive + tape_root_dir): files on tape ICAT does not know, files the tape "
        "lacks or holds with another size. Then recompute on tape the adler32 of a random "
        "sample and compare it with ICAT's checksum; a mismatch is recorded on the datafile "
        'as an "Archival failure" of class fixity (unless --dry-run). Exit codes: 0 '
        "catalogue and tape agree, 3 disagreements found, 2 usage, 1 failure.",
        parents=[config],
    )
    audit.add_argument(
        "--under",
        metavar="FOLDER",
        help="only this folder below the tape root, e.g. an instrument (default audit.under)",
    )
    audit.add_argument(
        "--sample",
        type=_not_negative,
        metavar="N",
        help="tape files whose adler32 is recomputed (default audit.sample_size)",
    )
    audit.add_argument(
        "--report-dir",
        type=Path,
        metavar="DIR",
        help="write audit-<time>.json and .txt there (default audit.report_dir; none: print)",
    )
    audit.add_argument(
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="write the figures in Prometheus text format (node_exporter textfile collector)",
    )
    audit.add_argument("--dry-run", action="store_true", help="record nothing in ICAT, only report")
    audit.add_argument("--json", action="store_true", help="print the JSON report")
    return parser


#: ``datastore-ops audit``'s exit code when the catalogue and the tape disagree.
EXIT_DISAGREEMENTS = 3

#: Where ``retry`` reads the operator's ICAT session from when --session is not given.
SESSION_ENV = "DATASTORE_SESSION"


def write_broker_accounts(args: argparse.Namespace) -> int:
    accounts = local_accounts(args.secrets, instruments=args.instrument, prefix=args.prefix)
    nodes = args.url or ["amqp://127.0.0.1:5672/"]
    for account in accounts:
        # Every node's URL, as broker.url takes them (one user: domain.broker_nodes).
        url = join_urls([account_url(node, account) for node in nodes])
        url_file = args.secrets / f"{account.user}.url"
        url_file.touch(mode=0o600)
        url_file.write_text(url + "\n")
        # The same as an env file: compose's env_file, kubectl's --from-env-file.
        env_file = args.secrets / f"{account.user}.env"
        env_file.touch(mode=0o600)
        env_file.write_text(f"DATASTORE__BROKER__URL={url}\n")
    document = definitions(accounts, exchange=args.exchange)
    args.definitions.touch(mode=0o600)
    args.definitions.write_text(json.dumps(document, indent=2) + "\n")
    print(f"{len(accounts)} broker accounts; definitions in {args.definitions}")
    if args.apply:
        import_definitions(args.definitions, rabbitmqctl=shlex.split(args.rabbitmqctl))
        print(f"imported with {args.rabbitmqctl}")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _not_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


async def run_cli(
    argv: Sequence[str] | None = None,
    *,
    catalogue: Catalogue | None = None,
    tape: Storage | None = None,
) -> int:
    """The whole command; returns the exit code and never raises (tests call this, and may
    give ``audit`` its ports)."""
    if not structlog.is_configured():
        # Standard output is the command's answer (tables, --json): log lines go to stderr.
        configure_logging(PROG, level="WARNING")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage or help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.group == "broker-accounts":
            return write_broker_accounts(args)
        settings = settings_from(args)
        if args.group == "retry":
            return await _retry(args, settings)
        if args.group == "audit":
            return await _audit(args, settings, catalogue=catalogue, tape=tape)
        topology = topology_from(settings)
        dlq = resolve_dlq(topology, args.queue) if getattr(args, "queue", None) else ""
        async with connect(settings.broker.url.get_secret_value()) as connection:
            return await _dispatch(args, connection, topology, dlq)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line, no traceback: this is an operator's tool
        plain = isinstance(exc, OpsError | ConfigurationError)
        reason = " ".join(str(exc).split()) if plain else one_line(exc)
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


async def _retry(args: argparse.Namespace, settings: DatastoreSettings) -> int:
    session = args.session or os.environ.get(SESSION_ENV)
    if not session:
        raise UsageError(f"retry needs an ICAT session: --session or ${SESSION_ENV}")
    since = parse_since(args.since, datetime.now(UTC))
    url = args.gateway or f"http://{settings.gateway.host}:{settings.gateway.port}"
    headers = {"Authorization": f"Bearer {session}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60.0) as client:
        report = await bulk_retry(
            Gateway(client),
            states=args.state or ["FAILED"],
            failure_classes=args.failure_class or [],
            since=since,
            dry_run=args.dry_run,
        )
    return _print_retry(report, dry_run=args.dry_run)


async def _audit(
    args: argparse.Namespace,
    settings: DatastoreSettings,
    *,
    catalogue: Catalogue | None,
    tape: Storage | None,
) -> int:
    owned: IcatCatalogue | None = None
    if catalogue is None:
        catalogue = owned = IcatCatalogue(settings.icat)
    try:
        report = await run_audit(
            catalogue=catalogue,
            tape=tape if tape is not None else XRootDStorage.from_settings(settings),
            tape_archive=settings.tape_archive,
            tape_root_dir=settings.tape_root_dir,
            under=settings.audit.under if args.under is None else args.under,
            sample_size=settings.audit.sample_size if args.sample is None else args.sample,
            page_size=settings.audit.page_size,
            record=not args.dry_run,
        )
    finally:
        if owned is not None:
            await owned.close()
    report_dir = args.report_dir or settings.audit.report_dir
    if report_dir is not None:
        data, text = write_report(report, report_dir)
        print(f"report: {data}, {text}", file=sys.stderr)
    if args.metrics_file is not None:
        write_metrics_file(report, args.metrics_file)
    if args.json:
        _print_json(report.as_json())
    else:
        print(summary(report))
    return 0 if report.clean else EXIT_DISAGREEMENTS


def _print_retry(report: RetryReport, *, dry_run: bool) -> int:
    if dry_run:
        print(f"would retry {len(report.planned)} dataset(s)")
        for planned in report.planned:
            print(f"    {planned}")
    else:
        print(f"retried {len(report.retried)} dataset(s)")
        for label, request_id in report.retried:
            print(f"    {label}: request {request_id}")
    if report.refused:
        print(f"not retried {len(report.refused)} dataset(s):")
        for label, why in report.refused:
            print(f"    {label}: {why}")
    if report.missing:
        print(f"not found {len(report.missing)} dataset(s):")
        for label, why in report.missing:
            print(f"    {label}: {why}")
    return 0


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
