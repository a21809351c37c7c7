"""The instrument helper (datastore_common.instrument, datastore-publish) without a broker:
what it publishes, how it names a request, how it reports the outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from datastore_common import instrument, publish_cli
from datastore_common.domain.answers import request_id_for
from datastore_common.instrument import (
    InstrumentLink,
    Outcome,
    RequestFileError,
    build_request,
    request_message_id,
)
from datastore_common.messages import (
    PAYLOAD_TYPES,
    ArchiveAccepted,
    ArchiveRejected,
    ArchiveRequested,
    RequestCompleted,
    parse_envelope,
)
from tests.support.factories import seed_body

URL = "amqp://daq-abc:secret@rabbit:5672/"
DAY = 24 * 3600.0


def test_the_same_body_names_the_same_request_within_the_window() -> None:
    body = seed_body()
    first = build_request(body, instrument="daq-abc", now=1000.0, window=DAY)
    again = build_request(body, instrument="daq-abc", now=2000.0, window=DAY)
    assert first.request_id == again.request_id
    assert request_message_id("daq-abc", first.request_id) == request_message_id(
        "daq-abc", again.request_id
    )
    assert build_request(body, instrument="daq-abc", now=DAY + 1, window=DAY).request_id != (
        first.request_id
    )  # the next window: a new request
    assert build_request(body, instrument="other", now=1000.0, window=DAY).request_id != (
        first.request_id
    )
    changed = seed_body(files=3)
    assert build_request(changed, instrument="daq-abc", now=1000.0, window=DAY).request_id != (
        first.request_id
    )
    assert first.jobs == []  # the icat-writer plans


def test_a_request_id_given_is_kept_and_a_bad_body_is_refused_before_publishing() -> None:
    body = {**seed_body(), "request_id": "run-42"}
    assert build_request(body, instrument="daq", window=DAY).request_id == "run-42"
    with pytest.raises(RequestFileError, match="unknown field"):
        build_request({**seed_body(), "jobs": []}, instrument="daq", window=DAY)
    with pytest.raises(RequestFileError, match="non-empty"):
        build_request({"investigations": []}, instrument="daq", window=DAY)
    bad = seed_body()
    bad["investigations"][0]["visitId"] = "1-2"
    with pytest.raises(RequestFileError, match="visitId"):
        build_request(bad, instrument="daq", window=DAY)


class RecordingExchange:
    def __init__(self) -> None:
        self.published: list[tuple[Any, str, bool]] = []

    async def publish(self, message: Any, *, routing_key: str, mandatory: bool) -> None:
        self.published.append((message, routing_key, mandatory))


async def test_a_request_is_published_as_the_account_with_ids_derived_from_the_request() -> None:
    link = InstrumentLink(URL, exchange="datastore", icat_user="simple/abc")
    exchange = RecordingExchange()
    link._exchange = exchange  # type: ignore[assignment]
    request = build_request(seed_body(), instrument="daq-abc", window=DAY)
    message_id = await link.publish(request)
    [(message, routing_key, mandatory)] = exchange.published
    assert routing_key == ArchiveRequested.TYPE and mandatory
    assert message.user_id == "daq-abc"  # RabbitMQ checks it; consumers refuse without
    assert (
        message.message_id == message_id == str(request_message_id("daq-abc", request.request_id))
    )
    assert message.correlation_id == request.request_id
    envelope = parse_envelope(message.body, PAYLOAD_TYPES)
    assert str(envelope.id) == message_id
    assert (envelope.source, envelope.user) == ("daq-abc", "simple/abc")
    assert envelope.data == request
    assert message.delivery_mode.value == 2  # persistent


def accepted(request_id: str = "r") -> ArchiveAccepted:
    return ArchiveAccepted(
        request_id=request_id, instrument="daq", owner="simple/abc", job_ids=["j"], status_url="u"
    )


def completed(state: str) -> RequestCompleted:
    return RequestCompleted.model_validate(
        {
            "request_id": "r",
            "kind": "archive",
            "owner": "simple/abc",
            "state": state,
            "files": {state: 1},
            "files_total": 1,
            "bytes_total": 1,
            "bytes_done": 1,
            "status_url": "u",
            "completed_at": "2026-01-01T00:00:00Z",
            "failure": None if state == "FINISHED" else {"failure_class": None, "reason": "x"},
        }
    )


@pytest.mark.parametrize(
    ("outcome", "wait", "code", "said"),
    [
        (Outcome("r", "m"), "none", 0, None),
        (Outcome("r", "m", accepted=accepted()), "answer", 0, None),
        (
            Outcome(
                "r",
                "m",
                rejected=ArchiveRejected(
                    request_id="r", instrument="d", rejection="unknown_names", reason="unknown x"
                ),
            ),
            "answer",
            1,
            "rejected (unknown_names): unknown x",
        ),
        (Outcome("r", "m", timed_out="answer"), "answer", 1, "no answer within"),
        (Outcome("r", "m", accepted=accepted(), completed=completed("FINISHED")), "end", 0, None),
        (
            Outcome("r", "m", accepted=accepted(), completed=completed("FINISHEDDIRTY")),
            "end",
            1,
            "ended FINISHEDDIRTY: x",
        ),
    ],
)
def test_exit_codes(outcome: Outcome, wait: str, code: int, said: str | None) -> None:
    got, reason = publish_cli.exit_code_and_reason(outcome, wait)
    assert got == code
    assert (reason is None) if said is None else (reason is not None and said in reason)


async def test_the_command_publishes_with_the_configured_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "broker:\n  url: amqp://daq-abc:pw@127.0.0.1:5672/\n  exchange: ex\n"
        "instruments:\n  - {broker_user: daq-abc, icat_user: simple/abc, instruments: [I]}\n"
    )
    request = tmp_path / "request.json"
    request.write_text(json.dumps(seed_body()))
    calls: list[dict[str, Any]] = []

    async def fake_archive(url: str, body: Any, **options: Any) -> Outcome:
        calls.append({"url": url, **options})
        return Outcome("r", "m", accepted=accepted(), completed=completed("FINISHED"))

    monkeypatch.setattr(publish_cli, "archive", fake_archive)
    monkeypatch.delenv("DATASTORE__BROKER__URL", raising=False)
    monkeypatch.setenv("DATASTORE_CONFIG", str(config))  # --config sets it: restored after
    code = await publish_cli.run_cli(
        ["--config", str(config), "archive", str(request), "--wait", "--json"]
    )
    assert code == 0
    [call] = calls
    assert call["url"] == "amqp://daq-abc:pw@127.0.0.1:5672/"
    assert (call["exchange"], call["icat_user"], call["wait"]) == ("ex", "simple/abc", "end")
    shown = json.loads(capsys.readouterr().out)
    assert shown["accepted"]["job_ids"] == ["j"] and shown["completed"]["state"] == "FINISHED"


async def test_a_bad_request_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "request.json"
    request.write_text("[1, 2]")
    assert await publish_cli.run_cli(["archive", str(request)]) == 2
    assert "not a JSON object" in capsys.readouterr().err
    assert await publish_cli.run_cli(["archive", str(tmp_path / "missing.json")]) == 2


def test_the_helper_and_the_icat_writer_agree_on_request_ids() -> None:
    body = seed_body()
    assert build_request(body, instrument="d", now=5.0, window=DAY).request_id == request_id_for(
        "d", body["investigations"], now=5.0, window=DAY
    )
    assert instrument.DEFAULT_WINDOW_SECONDS == DAY
