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
    VISIT_ID_PATTERN,
    InvestigationSpec,
    check_safe_name,
    check_visit_id,
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
    if what == "visitId":
        assert VISIT_ID_PATTERN in error["msg"]
        assert "'.', '_', '+' (" in error["msg"]
    else:
        assert SAFE_NAME_PATTERN in error["msg"]
        assert "'.', '_', '+', '-'" in error["msg"]


@pytest.mark.parametrize(
    "value", ["ABC123", "1", "scan_0000", "file_0000.nxs", "20XX", "a+b-c.d_e", ".hidden", "-x"]
)
def test_safe_names_pass_unchanged(value: str) -> None:
    assert check_safe_name(value) == value
    inv = seed_body()["investigations"][0]
    for what, _, put in PATH_FIELDS:
        if what != "visitId" or "-" not in value:
            put(inv, value)
    spec = InvestigationSpec.model_validate(inv)
    assert spec.datasets[0].datafiles[0].name == value


@pytest.mark.parametrize("value", ["1", "20XX", "a+b.c_d", ".hidden", "1_2"])
def test_visit_ids_without_a_dash_pass_unchanged(value: str) -> None:
    assert check_visit_id(value) == value
    inv = seed_body()["investigations"][0]
    _visit_id(inv, value)
    assert InvestigationSpec.model_validate(inv).visitId == value


@pytest.mark.parametrize("value", ["1-2", "-1", "1-", "a+b-c.d_e"])
def test_a_visit_id_with_a_dash_is_refused_naming_the_value_and_the_rule(value: str) -> None:
    # ('ABC', '1-2') and ('ABC-1', '2') would both be the folder ABC-1-2.
    inv = seed_body()["investigations"][0]
    _visit_id(inv, value)
    error = _refusal(inv)
    assert error["loc"] == ("visitId",)
    assert f"visitId {value!r} is not a safe name without '-'" in error["msg"]
    assert "'{name}-{visitId}'" in error["msg"]
    assert "('ABC', '1-2') and ('ABC-1', '2')" in error["msg"]


def test_an_investigation_name_may_still_hold_dashes() -> None:
    inv = seed_body()["investigations"][0]
    _investigation_name(inv, "ABC-1")
    _visit_id(inv, "2")
    assert InvestigationSpec.model_validate(inv).name == "ABC-1"


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
    assert schema["properties"]["name"]["pattern"] == SAFE_NAME_PATTERN
    visit_id = schema["properties"]["visitId"]
    assert visit_id["pattern"] == VISIT_ID_PATTERN
    assert "without '-'" in visit_id["description"]
    assert "'{name}-{visitId}'" in visit_id["description"]
    assert schema["$defs"]["PathRef"]["properties"]["name"]["pattern"] == SAFE_NAME_PATTERN
    assert "pattern" not in schema["$defs"]["NamedRef"]["properties"]["name"]
