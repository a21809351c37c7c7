import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from datastore_common.logging import (
    REDACTED,
    RedactingFormatter,
    configure_logging,
    get_logger,
    redact,
    redact_secrets,
)


def test_redact_masks_credentials_and_url_passwords() -> None:
    value = {
        "password": "pw",
        "nested": {"sessionId": "abc", "user": "root"},
        "url": "amqp://guest:s3cret@host:5672/",
    }
    assert redact(value) == {
        "password": "***",
        "nested": {"sessionId": "***", "user": "root"},
        "url": "amqp://guest:***@host:5672/",
    }


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    yield
    # the configured logger writes to this test's captured stderr, which closes after it
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_structlog")
def test_log_lines_are_json_without_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-service", fmt="json")
    get_logger("t").info("login_done", password="pw", token="t0k", user="simple/root")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "login_done"
    assert line["service"] == "test-service"
    assert line["password"] == "***" and line["token"] == "***"
    assert line["user"] == "simple/root"


# --- redact_secrets: the processor, pure ------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "icat_password",
        "sessionId",
        "session_id",
        "session",
        "token",
        "fts_token",
        "Authorization",
        "authorisation",
        "api_key",
        "private_key",
        "secret",
        "cookie",
        "credentials",
    ],
)
def test_values_under_credential_keys_are_masked(key: str) -> None:
    event = {"event": "something", key: "hunter2", "user": "simple/root"}
    assert redact_secrets(None, "info", event) == {
        "event": "something",
        key: REDACTED,
        "user": "simple/root",
    }


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("amqp://datastore:S3cr3t@rabbit:5672/", "amqp://datastore:***@rabbit:5672/"),
        ("amqp://:S3cr3t@rabbit/", "amqp://:***@rabbit/"),
        (
            "cannot connect to postgresql://gw:pg-pw@db/ledger",
            "cannot connect to postgresql://gw:***@db/ledger",
        ),
        ("headers: Authorization: Bearer 0f1e2d3c-aa.bb", "headers: Authorization: Bearer ***"),
        ("bearer abc/def+ghi=", "bearer ***"),
        ("Basic ZGF0YXN0b3JlOnB3", "Basic ***"),
        ("GET /icat/session?sessionId=0f1e2d3c&x=1", "GET /icat/session?sessionId=***&x=1"),
        ("login failed: password=hunter2 user=root", "login failed: password=*** user=root"),
        ('{"token": "t0k", "user": "root"}', '{"token": "***", "user": "root"}'),
    ],
)
def test_secrets_inside_text_are_masked(text: str, masked: str) -> None:
    assert redact_secrets(None, "info", {"event": "x", "error": text})["error"] == masked


def test_innocent_values_are_left_alone() -> None:
    event = {
        "event": "archive_accepted",
        "routing_key": "datastore.archive.requested.v1",
        "idempotency_key": "my-first-archive",
        "url": "root://127.0.0.1:11094//instrument/20XX/ABC123-1/file.nxs",
        "error": "session expired: log in again",
        "files": 4,
    }
    assert redact_secrets(None, "info", event) == event


def test_nested_values_and_exceptions_are_masked() -> None:
    event = {
        "event": "x",
        "config": {"broker": {"url": "amqp://u:pw@h/"}, "icat": {"password": "pw"}},
        "attempts": ["Bearer abc", ("sessionId=s1",)],
        "error": RuntimeError("refused password=pw"),
    }
    assert redact_secrets(None, "info", event) == {
        "event": "x",
        "config": {"broker": {"url": "amqp://u:***@h/"}, "icat": {"password": REDACTED}},
        "attempts": ["Bearer ***", ("sessionId=***",)],
        "error": "refused password=***",
    }


def test_the_processor_does_not_change_its_input() -> None:
    event = {"event": "x", "password": "pw"}
    redact_secrets(None, "info", event)
    assert event == {"event": "x", "password": "pw"}


@pytest.mark.usefixtures("restore_structlog")
def test_a_traceback_is_masked_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-service", fmt="json")
    try:
        raise ConnectionError("amqp://datastore:S3cr3t-broker@rabbit:5672/ refused")
    except ConnectionError:
        get_logger("t").exception("connect_failed")
    err = capsys.readouterr().err
    assert "S3cr3t-broker" not in err
    assert "amqp://datastore:***@rabbit" in json.loads(err.strip().splitlines()[-1])["exception"]


def test_stdlib_records_are_masked() -> None:
    formatter = RedactingFormatter("%(name)s %(message)s")
    record = logging.LogRecord(
        "aio_pika", logging.WARNING, __file__, 1, "lost %s", ("amqp://u:S3cr3t@h/",), None
    )
    assert formatter.format(record) == "aio_pika lost amqp://u:***@h/"
