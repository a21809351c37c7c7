"""The icat-writer writes an archive request's rich metadata (the original API's parameters,
sample, techniques and instruments) into ICAT once, however often the request is delivered."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datastore_common.domain.archival import ARCHIVAL_STATE
from datastore_common.errors import NotFoundError
from datastore_common.messages import InvestigationSpec
from datastore_common.testing.fake_catalogue import FakeCatalogue
from datastore_icat_writer.bootstrap import bootstrap
from tests.support.factories import (
    RICH_PARAMETER_TYPES,
    RICH_SAMPLE_TYPES,
    RICH_TECHNIQUES,
    seed_body,
    unique_investigation_name,
    with_rich_metadata,
)
from tests.unit.icat_writer.test_handlers import World


def rich_investigation(name: str = "ABC123") -> InvestigationSpec:
    body = with_rich_metadata(seed_body())
    body["investigations"][0]["name"] = name
    return InvestigationSpec.model_validate(body["investigations"][0])


def rich_catalogue(**overrides: object) -> FakeCatalogue:
    known: dict[str, object] = {
        "parameter_types": RICH_PARAMETER_TYPES,
        "sample_types": RICH_SAMPLE_TYPES,
        "techniques": RICH_TECHNIQUES,
        **overrides,
    }
    return FakeCatalogue(**known)  # type: ignore[arg-type]


@pytest.fixture
def world() -> World:
    harness = World()
    harness.catalogue = rich_catalogue()
    harness.writer = bootstrap(
        harness.settings,
        publisher=harness.publisher,
        catalogue=harness.catalogue,
        storage=harness.storage,
    )
    return harness


async def test_every_piece_of_rich_metadata_lands_on_its_entity(world: World) -> None:
    investigation = rich_investigation()
    world.put_sources(investigation)
    await world.register(world.request(investigation))

    catalogue = world.catalogue
    dataset_id = world.dataset(investigation)
    dataset = catalogue.datasets[dataset_id]
    parameters = catalogue.metadata[("Dataset", dataset_id)]
    assert sorted(parameters) == [("start_time", "N/A"), ("temperature", "K")]
    assert (
        parameters[("temperature", "K")].numericValue,
        parameters[("temperature", "K")].error,
    ) == (
        4.2,
        0.1,
    )
    assert parameters[("start_time", "N/A")].dateTimeValue == datetime(
        2024, 6, 5, 10, 53, 29, 501000, tzinfo=UTC
    )
    assert dataset.techniques == {"diffraction"}
    assert dataset.instruments == {"instrument"}
    assert dataset.sample_id is not None
    sample = catalogue.samples[dataset.sample_id]
    assert (sample.name, sample.sample_type) == ("sample_1", ("crystal", "NaCl"))
    assert sample.investigation_id == dataset.investigation_id
    sample_parameters = catalogue.metadata[("Sample", sample.id)]
    assert sample_parameters[("temperature", "K")].numericValue == 293.0

    files = catalogue.datafiles_in(dataset_id)
    first = catalogue.metadata[("Datafile", files["file_0000.nxs"].id)]
    assert first[("run_number", "N/A")].stringValue == "r-0001"
    assert ("Datafile", files["file_0001.nxs"].id) not in catalogue.metadata
    # The archival parameters are apart, and written as for any request.
    assert catalogue.archival("Datafile", files["file_0000.nxs"].id)[ARCHIVAL_STATE] == "SUBMITTED"


async def test_a_redelivered_request_creates_nothing_twice(world: World) -> None:
    investigation = rich_investigation()
    world.put_sources(investigation)
    envelope = world.request(investigation)
    await world.register(envelope)
    catalogue = world.catalogue
    snapshot = (
        {k: dict(v) for k, v in catalogue.metadata.items()},
        dict(catalogue.samples),
        {
            d.id: (d.sample_id, set(d.techniques), set(d.instruments))
            for d in catalogue.datasets.values()
        },
    )
    writes = catalogue.writes

    await world.register(envelope)

    assert catalogue.writes == writes
    assert (
        {k: dict(v) for k, v in catalogue.metadata.items()},
        dict(catalogue.samples),
        {
            d.id: (d.sample_id, set(d.techniques), set(d.instruments))
            for d in catalogue.datasets.values()
        },
    ) == snapshot


async def test_a_second_dataset_with_the_same_sample_shares_it(world: World) -> None:
    body = with_rich_metadata(seed_body())
    inv = body["investigations"][0]
    second = {**inv["datasets"][0], "name": "scan_0001"}
    inv["datasets"].append(second)
    investigation = InvestigationSpec.model_validate(inv)
    world.put_sources(investigation)
    await world.register(world.request(investigation))
    first_id, second_id = world.dataset(investigation), world.dataset(investigation, "scan_0001")
    assert len(world.catalogue.samples) == 1
    assert (
        world.catalogue.datasets[first_id].sample_id
        == world.catalogue.datasets[second_id].sample_id
    )


async def test_metadata_missing_from_an_existing_dataset_is_added_later(world: World) -> None:
    """A dataset first archived without metadata (say by the seed body) gets it when a later
    request names it: get-or-create fills gaps, it does not skip existing datasets."""
    name = unique_investigation_name()
    rich = rich_investigation(name)
    bare = InvestigationSpec.model_validate({**seed_body()["investigations"][0], "name": name})
    world.put_sources(bare)
    await world.register(world.request(bare))
    dataset_id = world.dataset(bare)
    assert ("Dataset", dataset_id) not in world.catalogue.metadata

    await world.catalogue.ensure_datasets(
        world.catalogue.datasets[dataset_id].investigation_id, rich.datasets
    )
    assert sorted(world.catalogue.metadata[("Dataset", dataset_id)]) == [
        ("start_time", "N/A"),
        ("temperature", "K"),
    ]
    assert world.catalogue.datasets[dataset_id].techniques == {"diffraction"}


def with_instrument_let(investigation: InvestigationSpec) -> InvestigationSpec:
    body = with_rich_metadata(seed_body())
    body["investigations"][0]["datasets"][0]["datasetInstruments"].append({"name": "LET"})
    return InvestigationSpec.model_validate(body["investigations"][0])


@pytest.mark.parametrize(
    ("known", "investigation", "message"),
    [
        (
            {"parameter_types": {("start_time", "N/A"), ("run_number", "N/A")}},
            rich_investigation(),
            "ParameterType with name='temperature', units='K' not found",
        ),
        ({"techniques": set()}, rich_investigation(), "Technique with name='diffraction'"),
        ({"sample_types": set()}, rich_investigation(), "SampleType with name='crystal'"),
        ({}, with_instrument_let(rich_investigation()), "Instrument with name='LET'"),
    ],
    ids=["parameterType", "technique", "sampleType", "instrument"],
)
async def test_an_unknown_reference_is_not_created_but_refused(
    known: dict[str, object], investigation: InvestigationSpec, message: str
) -> None:
    catalogue = rich_catalogue(**known)
    investigation_id = await catalogue.ensure_investigation(investigation)
    with pytest.raises(NotFoundError, match=message):
        await catalogue.ensure_datasets(investigation_id, investigation.datasets)
    assert catalogue.samples == {}
