"""What is said when a request ends, and how it is delivered: the pure parts, by table."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from datastore_common.domain.completion import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    completion_message_id,
    email_text,
    failure_summary,
    host_allowed,
    request_completed,
    retry_delay,
    signature,
    signed_headers,
    status_url,
    verify_signature,
)
from datastore_common.messages import NotifyTargets, check_email, check_webhook

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "address",
    ["alice@example.org", "a.b+tag@sub.example.co.uk", "x_y-z@facility.ac.uk", "o'neil@ex.io"],
)
def test_email_addresses_a_mail_server_takes_pass(address: str) -> None:
    assert check_email(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "alice",
        "alice@",
        "@example.org",
        "alice@example",
        "alice@@example.org",
        "alice@exa mple.org",
        "alice.@example.org",
        ".alice@example.org",
        "al..ice@example.org",
        "alice@-example.org",
        "alice@example.org\nBcc: eve@example.org",
        "a" * 65 + "@example.org",
        "alice@" + "a" * 250 + ".org",
    ],
)
def test_email_addresses_that_are_not_are_refused(address: str) -> None:
    with pytest.raises(ValueError):
        check_email(address)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.org/datastore",
        "https://hooks.example.org:8443/a?b=c",
        "http://127.0.0.1:8123/hook",
        "http://localhost/hook",
        "http://[::1]:9000/hook",
    ],
)
def test_webhooks_https_anywhere_or_http_to_this_machine(url: str) -> None:
    assert check_webhook(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.org/x", "https"),
        ("http://10.0.0.1/x", "https"),
        ("ftp://hooks.example.org/x", "https"),
        ("https:///path-only", "host"),
        ("not a url", "host"),
        ("https://user:pw@hooks.example.org/x", "credentials"),
        ("https://hooks.example.org:port/x", "not a URL"),
        ("https://hooks.example.org/" + "a" * 2000, "at most"),
    ],
)
def test_other_webhooks_are_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_webhook(url)


def test_notify_targets_validate_both_and_forbid_other_keys() -> None:
    assert NotifyTargets(email="a@example.org").webhook is None
    with pytest.raises(ValidationError, match="e-mail address"):
        NotifyTargets(email="nobody")
    with pytest.raises(ValidationError, match="https"):
        NotifyTargets(webhook="http://example.org/x")
    with pytest.raises(ValidationError):
        NotifyTargets.model_validate({"sms": "+44"})


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("hooks.example.org", (), True),
        ("hooks.example.org", ("hooks.example.org",), True),
        ("HOOKS.example.org", ("hooks.example.org",), True),
        ("other.example.org", ("hooks.example.org",), False),
        ("a.b.example.org", (".example.org",), True),
        ("example.org", (".example.org",), True),
        ("evilexample.org", (".example.org",), False),
        ("example.org.evil.com", (".example.org",), False),
        ("127.0.0.1", ("hooks.example.org",), False),
    ],
)
def test_webhook_hosts_allowed(host: str, allowed: tuple[str, ...], expected: bool) -> None:
    assert host_allowed(host, allowed) is expected


@pytest.mark.parametrize(
    ("attempts", "max_attempts", "expected"),
    [
        (1, 5, 10.0),
        (2, 5, 60.0),
        (3, 5, 300.0),
        (4, 5, 300.0),  # the last step repeats
        (5, 5, None),  # given up
        (9, None, 300.0),  # never given up
        (0, None, 10.0),
    ],
)
def test_retry_delays_grow_then_repeat_until_given_up(
    attempts: int, max_attempts: int | None, expected: float | None
) -> None:
    assert retry_delay(attempts, (10.0, 60.0, 300.0), max_attempts) == expected


def test_the_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"request_id": "r"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(b"k", 1700000000, body) == f"sha256={expected}"
    headers = signed_headers(b"k", body, timestamp=1700000000, delivery_id=uuid.UUID(int=1))
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers[DELIVERY_HEADER] == str(uuid.UUID(int=1))


@pytest.mark.parametrize(
    ("secret", "body", "timestamp", "now", "expected"),
    [
        (b"k", b"{}", "1000", 1000.0, True),
        (b"k", b"{}", "1000", 1299.0, True),
        (b"k", b"{}", "1000", 1301.0, False),  # too old: a replay
        (b"other", b"{}", "1000", 1000.0, False),  # not our key
        (b"k", b'{"x": 1}', "1000", 1000.0, False),  # body changed
        (b"k", b"{}", "1001", 1000.0, False),  # timestamp changed
        (b"k", b"{}", "soon", 1000.0, False),
    ],
)
def test_a_receiver_verifies_key_body_and_freshness(
    secret: bytes, body: bytes, timestamp: str, now: float, expected: bool
) -> None:
    signed = signature(b"k", 1000, b"{}")
    assert verify_signature(secret, body, timestamp=timestamp, signed=signed, now=now) is expected


def test_the_message_id_is_one_per_request() -> None:
    assert completion_message_id("r1") == completion_message_id("r1")
    assert completion_message_id("r1") != completion_message_id("r2")
    assert status_url("https://ds.example.org/", "r1") == "https://ds.example.org/requests/r1"


@pytest.mark.parametrize(
    ("state", "failure", "failed", "reasons", "expected"),
    [
        ("FINISHED", None, 0, [], None),
        ("FAILED", ("user", "no such file"), 4, ["x"], ("user", "no such file")),
        ("FINISHEDDIRTY", None, 1, ["checksum mismatch"], (None, "1 of 4 files failed: checksum")),
        (
            "FINISHEDDIRTY",
            None,
            2,
            ["a", "a", "b", "c", "d"],
            (None, "2 of 4 files failed: a; b; c"),
        ),
        ("CANCELED", None, 4, [], (None, "4 of 4 files canceled")),
        ("FAILED", None, 4, [], (None, "4 of 4 files failed")),
    ],
)
def test_failure_summaries(
    state: str,
    failure: tuple[str, str] | None,
    failed: int,
    reasons: list[str],
    expected: tuple[str | None, str] | None,
) -> None:
    summary = failure_summary(state, failure, failed, 4, reasons)  # type: ignore[arg-type]
    if expected is None:
        assert summary is None
    else:
        assert summary is not None
        assert summary.failure_class == expected[0]
        assert summary.reason.startswith(expected[1])


def test_the_completion_counts_files_and_bytes_and_links_the_status() -> None:
    completed = request_completed(
        request_id="r1",
        kind="restore",
        owner="db/alice",
        state="FINISHEDDIRTY",
        file_counts={"FINISHED": (3, 300), "FAILED": (1, 50)},
        failure=None,
        reasons=["disk full"],
        public_url="https://ds.example.org",
        completed_at=WHEN,
    )
    assert completed.files == {"FAILED": 1, "FINISHED": 3}
    assert (completed.files_total, completed.bytes_total, completed.bytes_done) == (4, 350, 300)
    assert completed.failure is not None and "disk full" in completed.failure.reason
    assert completed.status_url == "https://ds.example.org/requests/r1"
    subject, body = email_text(completed)
    assert subject == "Datastore restore r1: FINISHEDDIRTY"
    assert "Files: 4 (1 FAILED, 3 FINISHED)" in body
    assert "Bytes: 300 B of 350 B done" in body
    assert "Failure: 1 of 4 files failed: disk full" in body
    assert "Status: https://ds.example.org/requests/r1" in body


def test_the_readme_example_verifies_our_signature_and_refuses_a_forgery() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert (
        "def is_from_datastore" in example
        and len([line for line in example.splitlines() if line.strip()]) <= 5
    )
    namespace: dict[str, Any] = {}
    exec(example, namespace)
    body = b'{"request_id": "r1", "state": "FINISHED"}'
    headers = signed_headers(b"k", body, timestamp=int(time.time()), delivery_id=uuid.UUID(int=1))
    assert namespace["is_from_datastore"](b"k", body, headers)
    assert not namespace["is_from_datastore"](b"other", body, headers)
    assert not namespace["is_from_datastore"](b"k", body + b" ", headers)
    stale = signed_headers(
        b"k", body, timestamp=int(time.time()) - 600, delivery_id=uuid.UUID(int=1)
    )
    assert not namespace["is_from_datastore"](b"k", body, stale)
