"""What rich metadata still has to be created (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from datastore_common.domain.metadata import (
    dataset_links,
    has_dataset_metadata,
    missing_links,
    parameter_values,
    samples_by_name,
    samples_to_set,
    wanted_parameters,
)
from datastore_common.messages import DatasetSpec, ParameterSpec
from tests.support.factories import seed_body, with_rich_metadata


def rich_dataset() -> DatasetSpec:
    return DatasetSpec.model_validate(
        with_rich_metadata(seed_body())["investigations"][0]["datasets"][0]
    )


def test_missing_links_are_those_not_there_each_once_in_order() -> None:
    wanted = [(1, "a"), (2, "a"), (1, "b"), (1, "a")]
    assert missing_links(wanted, []) == [(1, "a"), (2, "a"), (1, "b")]
    assert missing_links(wanted, [(1, "a"), (3, "b")]) == [(2, "a"), (1, "b")]
    assert missing_links(wanted, wanted) == []


def test_parameter_values_are_the_given_fields_only() -> None:
    number = ParameterSpec.model_validate(
        {"parameter_type": {"name": "t", "units": "K"}, "numericValue": 1.5, "rangeTop": 2.0}
    )
    when = ParameterSpec.model_validate(
        {"parameter_type": {"name": "d", "units": "N/A"}, "dateTimeValue": "2024-06-05T10:00:00Z"}
    )
    assert parameter_values(number) == {"numericValue": 1.5, "rangeTop": 2.0}
    assert parameter_values(when) == {"dateTimeValue": datetime(2024, 6, 5, 10, tzinfo=UTC)}


def test_wanted_parameters_and_links_by_owner() -> None:
    dataset = rich_dataset()
    assert sorted(wanted_parameters({7: dataset})) == [
        (7, ("start_time", "N/A")),
        (7, ("temperature", "K")),
    ]
    links = dataset_links({7: dataset})
    assert (links.techniques, links.instruments, links.samples) == (
        [(7, "diffraction")],
        [(7, "instrument")],
        {7: "sample_1"},
    )


def test_a_sample_already_set_is_left_alone() -> None:
    assert samples_to_set({1: "s", 2: "s", 3: "t"}, [2]) == {1: "s", 3: "t"}


def test_the_seed_dataset_has_no_rich_metadata() -> None:
    seed = DatasetSpec.model_validate(seed_body()["investigations"][0]["datasets"][0])
    assert not has_dataset_metadata(seed)
    assert has_dataset_metadata(rich_dataset())


def test_one_sample_per_name_described_by_the_first_dataset_naming_it() -> None:
    first, second = rich_dataset(), rich_dataset().model_copy(update={"name": "scan_0001"})
    other_type = second.sample.model_copy(update={"pid": "pid:2"}) if second.sample else None
    second = second.model_copy(update={"sample": other_type})
    found = samples_by_name({1: first, 2: second})
    assert list(found) == ["sample_1"]
    assert found["sample_1"].pid is None  # the first dataset's description
