import json
from collections.abc import Iterator

import pytest
import structlog

from datastore_common.logging import configure_logging, get_logger, redact


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
