"""Following a request without a terminal: the loop, what it rides out, the exit codes; and
the live display's one bar per job."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from datastore_cli.follow import exit_code, follow
from datastore_cli.gateway import GatewayError
from datastore_cli.render import LiveRequest


def status(state: str, done: int = 0) -> dict[str, Any]:
    return {
        "request_id": "r1",
        "kind": "archive",
        "state": state,
        "waiting_on": None if state == "FINISHED" else "the copy",
        "failure": None,
        "jobs": [
            {
                "job_id": f"job-{n}",
                "state": state,
                "files_done": done,
                "files_failed": 0,
                "files_total": 4,
                "bytes_done": done * 250_000_000,
                "bytes_total": 1_000_000_000,
            }
            for n in (1, 2)
        ],
    }


def test_follows_until_it_ended_riding_out_a_gateway_briefly_away() -> None:
    answers: list[Any] = [
        status("ACTIVE", 1),
        GatewayError(503, "broker down"),
        GatewayError(0, "connection refused"),
        status("FINISHED", 4),
    ]
    seen: list[str] = []
    troubles: list[str] = []
    slept: list[float] = []

    def fetch() -> dict[str, Any]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    final = follow(
        fetch,
        on_update=lambda s: seen.append(s["state"]),
        on_trouble=lambda e: troubles.append(e.reason),
        sleep=slept.append,
        interval=2.0,
    )
    assert final["state"] == "FINISHED" and exit_code(final) == 0
    assert seen == ["ACTIVE", "FINISHED"] and troubles == ["broker down", "connection refused"]
    assert slept == [2.0, 2.0, 2.0]


def test_a_refusal_other_than_a_passing_one_ends_the_following() -> None:
    def fetch() -> dict[str, Any]:
        raise GatewayError(404, "no request r1")

    with pytest.raises(GatewayError, match="no request r1"):
        follow(fetch, on_update=print, on_trouble=print, sleep=lambda _: None, interval=0)


@pytest.mark.parametrize(
    ("state", "code"), [("FINISHED", 0), ("FINISHEDDIRTY", 1), ("FAILED", 1), ("CANCELED", 1)]
)
def test_only_finished_exits_0(state: str, code: int) -> None:
    assert exit_code({"state": state}) == code


def test_the_live_display_has_one_bar_per_job_with_files_bytes_and_state() -> None:
    display = LiveRequest()
    display.update(status("ACTIVE", 1))
    display.update(status("ACTIVE", 3))
    console = Console(record=True, width=160)
    console.print(display)
    text = console.export_text()
    assert "waiting on the copy" in text
    assert text.count("3/4") == 2 and "750.0 MB / 1.0 GB" in text
    assert [task.completed for task in display.progress.tasks] == [3, 3]
