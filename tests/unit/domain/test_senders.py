"""Who may send what on the broker (domain.senders), as a table."""

from __future__ import annotations

import pytest

from datastore_common.domain.senders import (
    ANY_ROLE,
    InstrumentGrant,
    RefusedSenderError,
    SenderPolicy,
    authorise,
    original_sender,
    publishers_by_type,
)
from datastore_common.messages import (
    ArchiveRegistered,
    ArchiveRequested,
    Envelope,
    InvestigationSpec,
    Payload,
    RestoreRequested,
    TransferStatus,
    wrap,
)
from datastore_common.topology import PUBLISHERS
from tests.support.factories import seed_body

POLICY = SenderPolicy(
    users={
        "gw": "gateway",
        "writer": "icat-writer",
        "submitter": "fts-submitter",
        "poller": "status-poller",
        "ops": "operator",
        "guest": ANY_ROLE,
    },
    publishers=publishers_by_type(PUBLISHERS),
    instruments={"daq": InstrumentGrant("daq", "simple/daq", frozenset({"instrument"}))},
    own_user="writer",
)


def archive_request(instrument: str = "instrument", user: str | None = None) -> Envelope[Payload]:
    body = seed_body("ABC123", files=1)
    body["investigations"][0]["instrument"]["name"] = instrument
    request = ArchiveRequested(
        request_id="r",
        investigations=[InvestigationSpec.model_validate(i) for i in body["investigations"]],
    )
    return wrap(request, source="t", correlation_id="r", user=user)  # type: ignore[return-value]


def status() -> Envelope[Payload]:
    payload = TransferStatus(
        request_id="r", kind="archive", job_id="j", fts_endpoint="https://f", job_state="FAILED"
    )
    return wrap(payload, source="t", correlation_id="r")  # type: ignore[return-value]


def registered() -> Envelope[Payload]:
    return wrap(ArchiveRegistered(request_id="r", jobs=[]), source="t", correlation_id="r")  # type: ignore[return-value]


def restore() -> Envelope[Payload]:
    payload = RestoreRequested.model_construct(request_id="r", jobs=[])
    return wrap(payload, source="t", correlation_id="r")  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("envelope", "user_id", "vouched"),
    [
        (archive_request(user="simple/root"), "gw", None),
        (registered(), "writer", None),
        (status(), "poller", None),
        (status(), "submitter", None),
        (status(), "writer", None),
        (restore(), "gw", None),
        # A retry or delay copy: put back by this service (its own user) for the original.
        (status(), "writer", "poller"),
        # Replayed by an operator on behalf of the original sender.
        (registered(), "ops", "writer"),
        # The quick local default plays every role.
        (restore(), "guest", None),
    ],
)
def test_allowed(envelope: Envelope[Payload], user_id: str, vouched: str | None) -> None:
    assert authorise(POLICY, envelope, user_id, vouched) == envelope


@pytest.mark.parametrize(
    ("envelope", "user_id", "vouched", "kind", "words"),
    [
        (status(), None, None, "no_user_id", "no AMQP user_id"),
        (status(), "", None, "no_user_id", "no AMQP user_id"),
        (status(), "stranger", None, "unknown_user", "'stranger' has no role"),
        (status(), "gw", None, "role_not_allowed", "may not publish datastore.transfer.status"),
        (restore(), "daq", None, "role_not_allowed", "may not publish"),
        (registered(), "submitter", None, "role_not_allowed", "only icat-writer may"),
        (registered(), "ops", None, "role_not_allowed", "(operator) may not publish"),
        # Only the consuming service itself and operators may vouch for another sender.
        (status(), "gw", "poller", "false_vouch", "may not vouch for 'poller'"),
        (status(), "submitter", "poller", "false_vouch", "may not vouch"),
        # An operator replaying a refused forgery does not launder it.
        (status(), "ops", "daq", "role_not_allowed", "'daq' (instrument) may not publish"),
        (status(), "ops", "stranger", "unknown_user", "'stranger' has no role"),
        # An instrument: only its instruments, only as its ICAT identity.
        (archive_request("other"), "daq", None, "wrong_instrument", "only for instrument"),
        (
            archive_request(user="simple/root"),
            "daq",
            None,
            "wrong_identity",
            "archives as 'simple/daq', not as 'simple/root'",
        ),
    ],
)
def test_refused(
    envelope: Envelope[Payload], user_id: str | None, vouched: str | None, kind: str, words: str
) -> None:
    with pytest.raises(RefusedSenderError) as refused:
        authorise(POLICY, envelope, user_id, vouched)
    assert refused.value.kind == kind
    assert words in str(refused.value)


def test_an_instruments_request_carries_its_icat_identity() -> None:
    accepted = authorise(POLICY, archive_request(), "daq", None)
    assert accepted.user == "simple/daq"
    assert authorise(POLICY, archive_request(user="simple/daq"), "daq", None).user == "simple/daq"


def test_an_instruments_request_names_its_account_as_source_whatever_it_wrote() -> None:
    """The handlers answer, and the ledger records, the account RabbitMQ checked: a source
    "gateway" written by an instrument does not pass for the gateway's."""
    forged = archive_request().model_copy(update={"source": "gateway"})
    assert authorise(POLICY, forged, "daq", None).source == "daq"
    # A service's message keeps its source.
    assert authorise(POLICY, archive_request(), "gw", None).source == "t"


def test_every_message_type_has_publishers_and_no_instrument_publishes_more_than_archive() -> None:
    roles = publishers_by_type(PUBLISHERS)
    assert all(roles.values())
    assert {t for t, r in roles.items() if "instrument" in r} == {ArchiveRequested.TYPE}


@pytest.mark.parametrize(
    ("user_id", "vouched", "named"),
    [
        ("poller", None, "poller"),
        ("writer", "poller", "poller"),  # our own copy: its word stands
        ("ops", "writer", "writer"),  # an operator's replay
        ("gw", "poller", "gw"),  # a false vouch is named after its real publisher
        (None, "poller", None),
    ],
)
def test_the_sender_a_copy_names(
    user_id: str | None, vouched: str | None, named: str | None
) -> None:
    assert original_sender(POLICY, user_id, vouched) == named
