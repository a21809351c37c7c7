"""POST /archive takes the original API's rich metadata (parameters, sample, techniques,
instruments of a dataset; parameters of a datafile) and refuses what ICAT does not know."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datastore_common.messages import ArchiveRequested, DatasetSpec
from datastore_common.testing.fake_vocabulary import SEED_VOCABULARY
from tests.support.factories import (
    RICH_PARAMETER_TYPES,
    RICH_SAMPLE_TYPES,
    RICH_TECHNIQUES,
    seed_body,
    with_rich_metadata,
)
from tests.unit.gateway.conftest import Gateway, build_gateway


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    harness = build_gateway(tmp_path)
    harness.vocabulary.known.update(
        parameterType=set(RICH_PARAMETER_TYPES),
        sampleType=set(RICH_SAMPLE_TYPES),
        technique=set(RICH_TECHNIQUES),
    )
    return harness


def archive(gateway: Gateway, body: Any) -> Any:
    return gateway.client.post("/archive", json=body, headers=gateway.bearer())


def first_dataset(body: dict[str, Any]) -> dict[str, Any]:
    dataset: dict[str, Any] = body["investigations"][0]["datasets"][0]
    return dataset


def test_rich_metadata_is_accepted_and_published_as_sent(gateway: Gateway) -> None:
    answer = archive(gateway, with_rich_metadata(seed_body()))
    assert answer.status_code == 202, answer.text
    [message] = [m for m in gateway.publisher.published if isinstance(m.data, ArchiveRequested)]
    dataset = message.data.investigations[0].datasets[0]
    assert [p.type_key for p in dataset.parameters] == [("temperature", "K"), ("start_time", "N/A")]
    assert dataset.parameters[0].numericValue == 4.2
    assert dataset.sample is not None and dataset.sample.sample_type.molecularFormula == "NaCl"
    assert [t.name for t in dataset.datasetTechniques] == ["diffraction"]
    assert [i.name for i in dataset.datasetInstruments] == ["instrument"]
    assert dataset.datafiles[0].parameters[0].stringValue == "r-0001"


def test_the_rich_names_are_asked_of_icat(gateway: Gateway) -> None:
    archive(gateway, with_rich_metadata(seed_body()))
    asked = gateway.vocabulary.calls[-1]
    assert asked["parameterType"] == RICH_PARAMETER_TYPES
    assert asked["sampleType"] == RICH_SAMPLE_TYPES
    assert asked["technique"] == RICH_TECHNIQUES


Change = Callable[[dict[str, Any]], None]

UNKNOWN: dict[str, tuple[Change, str]] = {
    "parameterType": (
        lambda b: first_dataset(b)["parameters"][0]["parameter_type"].update(units="C"),
        "unknown parameterType 'temperature' units 'C' in facility 'facility'",
    ),
    "datafile parameterType": (
        lambda b: first_dataset(b)["datafiles"][0]["parameters"][0]["parameter_type"].update(
            name="run"
        ),
        "unknown parameterType 'run' units 'N/A' in facility 'facility'",
    ),
    "sampleType": (
        lambda b: first_dataset(b)["sample"]["sample_type"].update(molecularFormula="KCl"),
        "unknown sampleType 'crystal' molecularFormula 'KCl' in facility 'facility'",
    ),
    "sample parameterType": (
        lambda b: first_dataset(b)["sample"]["parameters"][0]["parameter_type"].update(
            name="pressure"
        ),
        "unknown parameterType 'pressure' units 'K' in facility 'facility'",
    ),
    "technique": (
        lambda b: first_dataset(b)["datasetTechniques"].append({"name": "SANS"}),
        "unknown technique 'SANS'",
    ),
    "datasetInstrument": (
        lambda b: first_dataset(b)["datasetInstruments"].append({"name": "LET"}),
        "unknown instrument 'LET' in facility 'facility'",
    ),
}


@pytest.mark.parametrize(("change", "message"), list(UNKNOWN.values()), ids=list(UNKNOWN))
def test_an_unknown_reference_is_422_naming_it_and_nothing_is_published(
    gateway: Gateway, change: Change, message: str
) -> None:
    body = with_rich_metadata(seed_body())
    change(body)
    answer = archive(gateway, body)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["detail"]
    assert gateway.publisher.published == []


def dataset_with(**changes: Any) -> dict[str, Any]:
    dataset = copy.deepcopy(first_dataset(with_rich_metadata(seed_body())))
    dataset.update(changes)
    return dataset


TEMPERATURE = {"name": "temperature", "units": "K"}

INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "no value": (
        dataset_with(parameters=[{"parameter_type": TEMPERATURE}]),
        "needs exactly one of stringValue, numericValue, dateTimeValue",
    ),
    "two values": (
        dataset_with(
            parameters=[{"parameter_type": TEMPERATURE, "numericValue": 1, "stringValue": "1"}]
        ),
        "needs exactly one of",
    ),
    "error without numericValue": (
        dataset_with(parameters=[{"parameter_type": TEMPERATURE, "stringValue": "x", "error": 1}]),
        "error only go with numericValue",
    ),
    "same type twice": (
        dataset_with(
            parameters=[
                {"parameter_type": TEMPERATURE, "numericValue": 1},
                {"parameter_type": TEMPERATURE, "numericValue": 2},
            ]
        ),
        "duplicate parameter type of dataset 'scan_0000': 'temperature (K)'",
    ),
    "our own parameter": (
        dataset_with(
            parameters=[
                {"parameter_type": {"name": "Archival state", "units": "N/A"}, "stringValue": "X"}
            ]
        ),
        "is Datastore's own",
    ),
    "technique twice": (
        dataset_with(datasetTechniques=[{"name": "diffraction"}, {"name": "diffraction"}]),
        "duplicate technique of dataset 'scan_0000'",
    ),
    "sample without type": (dataset_with(sample={"name": "s"}), "sample_type"),
    "sample parameter type twice": (
        dataset_with(
            sample={
                "name": "s",
                "sample_type": {"name": "crystal", "molecularFormula": "NaCl"},
                "parameters": [
                    {"parameter_type": TEMPERATURE, "numericValue": 1},
                    {"parameter_type": TEMPERATURE, "numericValue": 2},
                ],
            }
        ),
        "duplicate parameter type of sample 's'",
    ),
}


@pytest.mark.parametrize(("dataset", "reason"), list(INVALID.values()), ids=list(INVALID))
def test_invalid_rich_metadata_is_422_with_the_reason(
    gateway: Gateway, dataset: dict[str, Any], reason: str
) -> None:
    body = seed_body()
    body["investigations"][0]["datasets"][0] = dataset
    answer = archive(gateway, body)
    assert answer.status_code == 422
    assert reason in answer.json()["reason"]
    assert gateway.publisher.published == []


def test_a_nan_numeric_value_is_refused() -> None:
    dataset = dataset_with(parameters=[{"parameter_type": TEMPERATURE, "numericValue": "NaN"}])
    with pytest.raises(ValueError, match="finite"):
        DatasetSpec.model_validate(dataset)


def test_the_seed_body_needs_none_of_it(gateway: Gateway) -> None:
    assert "parameterType" not in SEED_VOCABULARY
    assert archive(gateway, seed_body()).status_code == 202
