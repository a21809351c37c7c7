"""Following a request to its end, without any terminal: what ended means, the exit code it
gives, and the polling loop (``fetch`` and ``sleep`` injected, so tests drive time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datastore_cli.gateway import GatewayError

#: The states a request ends in (GET /requests/{id} ``state``); it never moves on from them.
ENDED = frozenset({"FINISHED", "FINISHEDDIRTY", "FAILED", "CANCELED"})

#: Exit codes scripts can rely on.
EXIT_FINISHED = 0
EXIT_NOT_FINISHED = 1  # ended otherwise (FINISHEDDIRTY, FAILED, CANCELED), or an error
#: Answers worth waiting through while following: the gateway or a peer briefly away.
PASSING_TROUBLE = frozenset({0, 502, 503, 504})

Status = dict[str, Any]


def has_ended(status: Status) -> bool:
    return status.get("state") in ENDED


def exit_code(status: Status) -> int:
    """0 only for a request that ended FINISHED: every file where it was asked to go."""
    return EXIT_FINISHED if status.get("state") == "FINISHED" else EXIT_NOT_FINISHED


def follow(
    fetch: Callable[[], Status],
    *,
    on_update: Callable[[Status], None],
    on_trouble: Callable[[GatewayError], None],
    sleep: Callable[[float], None],
    interval: float,
) -> Status:
    """Fetch the request's status until it has ended, reporting each one; the last one.

    A gateway briefly unreachable or answering 502-504 is reported and asked again; any
    other refusal (the session expired, the request unknown) ends the following."""
    while True:
        try:
            status = fetch()
        except GatewayError as exc:
            if exc.status not in PASSING_TROUBLE:
                raise
            on_trouble(exc)
        else:
            on_update(status)
            if has_ended(status):
                return status
        sleep(interval)
