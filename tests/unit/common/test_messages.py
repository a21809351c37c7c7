import json
import uuid

import pytest
from pydantic import ValidationError

from datastore_common.errors import InvalidMessageError
from datastore_common.messages import (
    PAYLOAD_TYPES,
    ArchiveRequested,
    Envelope,
    InvestigationSpec,
    TransferStatus,
    check_unique_investigations,
    parse_envelope,
    wrap,
)
from tests.support.factories import seed_body, seed_investigation


def test_archive_requested_round_trips_through_json() -> None:
    data = ArchiveRequested(request_id="r1", investigations=[seed_investigation()])
    envelope = wrap(data, source="gateway", correlation_id="r1", user="simple/root")
    parsed = parse_envelope(envelope.model_dump_json().encode(), PAYLOAD_TYPES)
    assert parsed == envelope
    assert isinstance(parsed.data, ArchiveRequested)
    assert parsed.data.investigations[0].datasets[0].datafiles[1].name == "file_0001.nxs"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "envelope"),
        (b'{"type": "datastore.nope.v1"}', "unknown message type"),
        (
            json.dumps(
                {
                    "type": "datastore.transfer.status.v1",
                    "source": "x",
                    "correlation_id": "c",
                    "data": {"request_id": "r"},
                }
            ).encode(),
            "data.kind",
        ),
    ],
)
def test_bad_bodies_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessageError, match=reason):
        parse_envelope(body, PAYLOAD_TYPES)


def test_envelope_type_must_match_its_payload() -> None:
    status = TransferStatus(
        request_id="r", kind="archive", job_id="j", fts_endpoint="f", job_state="ACTIVE"
    )
    with pytest.raises(ValidationError, match="does not match"):
        Envelope[TransferStatus](
            id=uuid.uuid4(),
            type="datastore.archive.requested.v1",
            source="s",
            correlation_id="c",
            data=status,
        )


@pytest.mark.parametrize("name", ["a/b", "..", "x..y", ".", "", " lead"])
def test_unsafe_datafile_names_are_refused(name: str) -> None:
    inv = seed_body()["investigations"][0]
    inv["datasets"][0]["datafiles"][0]["name"] = name
    with pytest.raises(ValidationError):
        InvestigationSpec.model_validate(inv)


def test_a_dataset_without_datafiles_is_refused() -> None:
    inv = seed_body()["investigations"][0]
    inv["datasets"][0]["datafiles"] = []
    with pytest.raises(ValidationError, match="datafiles"):
        InvestigationSpec.model_validate(inv)


def test_the_same_datafile_twice_is_refused() -> None:
    inv = seed_body()["investigations"][0]
    inv["datasets"][0]["datafiles"].append({"name": "file_0000.nxs"})
    with pytest.raises(ValidationError, match="duplicate datafile"):
        InvestigationSpec.model_validate(inv)


def test_the_same_dataset_twice_is_refused() -> None:
    inv = seed_body()["investigations"][0]
    inv["datasets"].append(inv["datasets"][0])
    with pytest.raises(ValidationError, match="duplicate dataset"):
        InvestigationSpec.model_validate(inv)


def test_the_same_investigation_twice_is_refused() -> None:
    inv = seed_investigation()
    with pytest.raises(ValueError, match="duplicate investigation"):
        check_unique_investigations([inv, inv])


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="colour"):
        InvestigationSpec.model_validate(seed_body(colour="blue")["investigations"][0])
