"""Safe names: every name that becomes a path component is ASCII letters, digits and ._+-,
for the HTTP body and for an instrument's archive.requested message alike."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from datastore_common.errors import InvalidMessageError
from datastore_common.messages import PAYLOAD_TYPES, parse_envelope
from datastore_common.messages.metadata import (
    SAFE_NAME_PATTERN,
    InvestigationSpec,
    check_safe_name,
)
from tests.support.factories import seed_body

Setter = Callable[[dict[str, Any], str], None]


def _investigation_name(inv: dict[str, Any], value: str) -> None:
    inv["name"] = value


def _visit_id(inv: dict[str, Any], value: str) -> None:
    inv["visitId"] = value


def _dataset_name(inv: dict[str, Any], value: str) -> None:
    inv["datasets"][0]["name"] = value


def _datafile_name(inv: dict[str, Any], value: str) -> None:
    inv["datasets"][0]["datafiles"][0]["name"] = value


def _ref(field: str) -> Setter:
    def set_name(inv: dict[str, Any], value: str) -> None:
        inv[field]["name"] = value

    return set_name


def _dataset_type(inv: dict[str, Any], value: str) -> None:
    inv["datasets"][0]["datasetType"]["name"] = value


#: (field as the error names it, where it sits in the body, how to set it)
PATH_FIELDS: list[tuple[str, tuple[Any, ...], Setter]] = [
    ("investigation name", ("name",), _investigation_name),
    ("visitId", ("visitId",), _visit_id),
    ("dataset name", ("datasets", 0, "name"), _dataset_name),
    ("datafile name", ("datasets", 0, "datafiles", 0, "name"), _datafile_name),
    ("name", ("instrument", "name"), _ref("instrument")),
    ("name", ("facilityCycle", "name"), _ref("facilityCycle")),
    ("name", ("datasets", 0, "datasetType", "name"), _dataset_type),
]

UNSAFE = {
    "question-mark": "scan?0",
    "hash": "scan#0",
    "percent": "scan%200",
    "space": "scan 0",
    "control-char": "scan\x070",
    "newline-at-end": "scan0\n",
    "zero-width-space": "scan\u200b0",
    "non-ascii-letter": "scän_0",
    "cyrillic-look-alike": "sc\u0430n",  # Cyrillic a
    "fullwidth-digit": "scan\uff10",
    "slash": "a/b",
    "backslash": "a\\b",
    "dot": ".",
    "dotdot": "..",
    "dotdot-inside": "a..b",
    "colon": "a:b",
    "star": "a*b",
}


def _refusal(inv: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        InvestigationSpec.model_validate(inv)
    [error] = caught.value.errors()
    return dict(error)


@pytest.mark.parametrize("value", list(UNSAFE.values()), ids=list(UNSAFE))
@pytest.mark.parametrize(
    ("what", "loc", "put"), PATH_FIELDS, ids=[str(loc) for _, loc, _ in PATH_FIELDS]
)
def test_an_unsafe_path_component_is_refused_naming_field_value_and_rule(
    what: str, loc: tuple[Any, ...], put: Setter, value: str
) -> None:
    inv = seed_body()["investigations"][0]
    put(inv, value)
    error = _refusal(inv)
    assert error["loc"] == loc
    assert f"{what} {value!r} is not a safe name" in error["msg"]
    assert SAFE_NAME_PATTERN in error["msg"]
    assert "'.', '_', '+', '-'" in error["msg"]


@pytest.mark.parametrize(
    "value", ["ABC123", "1", "scan_0000", "file_0000.nxs", "20XX", "a+b-c.d_e", ".hidden", "-x"]
)
def test_safe_names_pass_unchanged(value: str) -> None:
    assert check_safe_name(value) == value
    inv = seed_body()["investigations"][0]
    for _, _, put in PATH_FIELDS:
        put(inv, value)
    spec = InvestigationSpec.model_validate(inv)
    assert spec.datasets[0].datafiles[0].name == value


def test_the_seed_body_is_valid() -> None:
    spec = InvestigationSpec.model_validate(seed_body()["investigations"][0])
    assert (spec.name, spec.visitId, spec.datasets[0].name) == ("ABC123", "1", "scan_0000")


def test_names_longer_than_255_are_refused() -> None:
    inv = seed_body()["investigations"][0]
    _datafile_name(inv, "a" * 256)
    assert "at most 255" in _refusal(inv)["msg"]


@pytest.mark.parametrize("field", ["facility", "investigationType"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("type\u200b", "invisible character U+200B"),
        ("ty\x00pe", "control or invisible character U+0000"),
        ("type\u202e", "U+202E"),  # right-to-left override
        (" type", "white space"),
    ],
)
def test_reference_names_refuse_control_and_invisible_characters(
    field: str, value: str, reason: str
) -> None:
    inv = seed_body()["investigations"][0]
    inv[field]["name"] = value
    error = _refusal(inv)
    assert error["loc"] == (field, "name")
    assert repr(value) in error["msg"]
    assert reason in error["msg"]


def test_reference_names_that_are_no_path_component_may_hold_spaces() -> None:
    # Facility and investigation type never reach a path: ICAT decides whether they exist.
    inv = seed_body()["investigations"][0]
    inv["investigationType"]["name"] = "commissioning run"
    assert InvestigationSpec.model_validate(inv).investigationType.name == "commissioning run"


def test_datafile_format_version_refuses_invisible_characters() -> None:
    inv = seed_body()["investigations"][0]
    inv["datasets"][0]["datafiles"][0]["datafileFormat"] = {"name": "nexus", "version": "3\u200b"}
    error = _refusal(inv)
    assert error["loc"] == ("datasets", 0, "datafiles", 0, "datafileFormat", "version")
    assert "version '3\\u200b'" in error["msg"]


def test_the_rule_holds_for_messages_on_the_broker_too() -> None:
    inv = seed_body()["investigations"][0]
    _datafile_name(inv, "file?.nxs")
    body = json.dumps(
        {
            "type": "datastore.archive.requested.v1",
            "source": "instrument",
            "correlation_id": "r1",
            "data": {"request_id": "r1", "investigations": [inv]},
        }
    ).encode()
    with pytest.raises(InvalidMessageError, match=r"datafile name 'file\?\.nxs' is not a safe"):
        parse_envelope(body, PAYLOAD_TYPES)


def test_the_rule_is_in_the_json_schema() -> None:
    schema = InvestigationSpec.model_json_schema()
    datafile_name = schema["$defs"]["DatafileSpec"]["properties"]["name"]
    assert datafile_name["pattern"] == SAFE_NAME_PATTERN
    assert "not '.' or '..'" in datafile_name["description"]
    for field in ("name", "visitId"):
        assert schema["properties"][field]["pattern"] == SAFE_NAME_PATTERN
    assert schema["$defs"]["PathRef"]["properties"]["name"]["pattern"] == SAFE_NAME_PATTERN
    assert "pattern" not in schema["$defs"]["NamedRef"]["properties"]["name"]
