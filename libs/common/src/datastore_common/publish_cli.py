"""``datastore-publish``: an instrument publishes an archive request straight to the broker.

    datastore-publish archive request.json            # published (confirmed): its request id
    datastore-publish archive request.json --wait     # ... until it ends (request.completed)
    datastore-publish archive request.json --wait answer   # ... until accepted or rejected

``request.json`` is the POST /archive body (``investigations``, optional ``notify``), with an
optional ``request_id`` (else one derived from the body: publishing it again names the same
request). The broker URL (the instrument account's credentials) and the exchange come from
the configuration (``--config``, ``$DATASTORE_CONFIG``) or the environment
(``DATASTORE__BROKER__URL``, ``DATASTORE__BROKER__EXCHANGE``), as for every Datastore command.

Output: one line per event (``--json``: one JSON object at the end). Exit codes, as
``datastore-ops``: 0 published / accepted / FINISHED; 1 rejected, ended otherwise, timed out
or failed, with a one-line reason on stderr; 2 usage (a bad request file included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datastore_common.errors import ConfigurationError, DatastoreError
from datastore_common.instrument import (
    Outcome,
    RequestFileError,
    archive,
    broker_user,
)
from datastore_common.settings import command_line, settings_from

PROG = "datastore-publish"


def build_parser() -> argparse.ArgumentParser:
    parser = command_line(PROG, "Publish an instrument's archive request to the broker.")
    commands = parser.add_subparsers(dest="command", required=True)
    request = commands.add_parser("archive", help="publish archive.requested")
    request.add_argument("request", type=Path, help="the request body (JSON), '-' for stdin")
    request.add_argument(
        "--wait",
        nargs="?",
        const="end",
        choices=("answer", "end"),
        default="none",
        help="wait for the answer (accepted / rejected), or to the end (the default of --wait)",
    )
    request.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the answer (600)"
    )
    request.add_argument(
        "--end-timeout",
        type=float,
        default=7 * 24 * 3600.0,
        help="seconds to wait for the end (a week)",
    )
    request.add_argument("--json", action="store_true", help="print the outcome as JSON")
    return parser


def _read(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestFileError(f"{path}: not JSON: {exc}") from exc


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "request_id": outcome.request_id,
        "message_id": outcome.message_id,
        "accepted": outcome.accepted.model_dump(mode="json") if outcome.accepted else None,
        "rejected": outcome.rejected.model_dump(mode="json") if outcome.rejected else None,
        "completed": outcome.completed.model_dump(mode="json") if outcome.completed else None,
        "timed_out": outcome.timed_out,
    }


def exit_code_and_reason(outcome: Outcome, wait: str) -> tuple[int, str | None]:
    """0 or 1, and the one-line reason of a 1."""
    if outcome.rejected is not None:
        rejected = outcome.rejected
        return 1, f"rejected ({rejected.rejection}): {rejected.reason}"
    if outcome.timed_out is not None:
        return 1, f"no {outcome.timed_out} within the time-out; request {outcome.request_id}"
    if wait == "end" and outcome.completed is not None and outcome.completed.state != "FINISHED":
        completed = outcome.completed
        why = f": {completed.failure.reason}" if completed.failure else ""
        return 1, f"request {completed.request_id} ended {completed.state}{why}"
    return 0, None


def _print_lines(outcome: Outcome) -> None:
    print(f"published {outcome.request_id} (message {outcome.message_id})")
    if outcome.accepted is not None:
        accepted = outcome.accepted
        print(f"accepted: jobs {', '.join(accepted.job_ids)}; status {accepted.status_url}")
    if outcome.completed is not None:
        print(f"ended {outcome.completed.state}: {outcome.completed.files}")


async def run_cli(argv: Sequence[str] | None = None) -> int:
    """The whole command; returns the exit code and never raises (tests call this)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        body = _read(args.request)
        if not isinstance(body, dict):
            raise RequestFileError(f"{args.request}: not a JSON object")
        settings = settings_from(args)
        url = settings.broker.url.get_secret_value()
        accounts = {a.broker_user: a for a in settings.instruments}
        account = accounts.get(broker_user(url))
        outcome = await archive(
            url,
            body,
            exchange=settings.broker.exchange,
            icat_user=account.icat_user if account else None,
            wait=args.wait,
            answer_timeout=args.timeout,
            end_timeout=args.end_timeout,
            window=float(settings.gateway.idempotency_window_seconds),
        )
    except (RequestFileError, OSError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except (DatastoreError, ConfigurationError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(outcome_json(outcome), indent=2))
    else:
        _print_lines(outcome)
    code, reason = exit_code_and_reason(outcome, args.wait)
    if reason:
        print(f"{PROG}: {reason}", file=sys.stderr)
    return code


def main() -> None:
    sys.exit(asyncio.run(run_cli()))


if __name__ == "__main__":
    main()
