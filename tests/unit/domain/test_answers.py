"""What an instrument is answered (domain.answers), as pure functions."""

from __future__ import annotations

import pytest

from datastore_common.domain.answers import (
    TooLargeError,
    answer_id,
    check_size,
    instrument_of,
    rejection_of,
    request_id_in,
)
from datastore_common.domain.senders import RefusedSenderError
from datastore_common.errors import InvalidMessageError, PermanentError
from tests.support.factories import seed_investigation


@pytest.mark.parametrize(
    ("body", "request_id"),
    [
        (b'{"type": "t", "data": {"request_id": "r-1", "investigations": []}}', "r-1"),
        (b'{"data": {"request_id": 7}}', None),
        (b'{"data": {"request_id": ""}}', None),
        (b'{"data": {"request_id": "' + b"x" * 201 + b'"}}', None),
        (b'{"data": []}', None),
        (b"[1, 2]", None),
        (b"not json at all", None),
    ],
)
def test_the_request_id_a_refused_body_names(body: bytes, request_id: str | None) -> None:
    assert request_id_in(body) == request_id


def test_refusals_are_classed_for_the_instrument() -> None:
    assert rejection_of(RefusedSenderError("wrong_identity", "x")) == "not_allowed"
    assert rejection_of(InvalidMessageError("x")) == "schema"
    assert rejection_of(PermanentError("x")) == "given_up"


def test_answers_are_named_by_what_they_answer() -> None:
    assert answer_id("r", "accepted") == answer_id("r", "accepted")
    assert answer_id("r", "accepted") != answer_id("r", "rejected")
    assert answer_id("r", "accepted") != answer_id("s", "accepted")


def test_only_instrument_accounts_are_answered() -> None:
    assert instrument_of("daq", ["daq", "other"]) == "daq"
    assert instrument_of("datastore-gateway", ["daq"]) is None
    assert instrument_of(None, ["daq"]) is None


def test_size_limits() -> None:
    investigation = seed_investigation(files=4, file_size=10)
    check_size([investigation], max_datafiles=4, max_bytes=40)
    with pytest.raises(TooLargeError, match="4 datafiles in one request; the limit is 3"):
        check_size([investigation], max_datafiles=3, max_bytes=40)
    with pytest.raises(TooLargeError, match=r"40 bytes .* limit is 39"):
        check_size([investigation], max_datafiles=4, max_bytes=39)
