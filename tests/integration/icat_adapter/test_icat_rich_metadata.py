"""IcatCatalogue and IcatVocabulary on the ICAT emulator with the original API's rich metadata:
parameters of each value kind, a sample, techniques and instruments, written once however often
a request is registered; unknown reference entities refused, never created; the embargo."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import icat
import icat.exception as icat_errors
import pytest

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.icat.vocabulary import IcatVocabulary
from datastore_common.errors import NotFoundError
from datastore_common.messages import InvestigationSpec
from datastore_common.settings import IcatSettings
from tests.integration.icat_adapter.test_icat_catalogue import count, register
from tests.support.factories import (
    seed_body,
    unique_investigation_name,
    with_rich_metadata,
)
from tests.support.icat_fixtures import IcatEmulator

pytestmark = pytest.mark.integration

PARAMETER_TYPES = (
    ("temperature", "K", "NUMERIC"),
    ("run_number", "N/A", "STRING"),
    ("start_time", "N/A", "DATE_AND_TIME"),
)


@pytest.fixture(scope="module")
def root(seeded_icat: IcatEmulator) -> Iterator[icat.Client]:
    """Root on the seeded emulator, with the reference entities the rich metadata names."""
    client = icat.Client(seeded_icat.url)
    client.login("simple", {"username": "root", "password": "pw"})
    [facility] = client.search("SELECT o FROM Facility o WHERE o.name = 'facility'")
    beans = [
        client.new(
            "ParameterType",
            name=name,
            units=units,
            valueType=kind,
            applicableToDataset=True,
            applicableToDatafile=True,
            applicableToSample=True,
            facility=facility,
        )
        for name, units, kind in PARAMETER_TYPES
    ]
    beans.append(
        client.new("SampleType", name="crystal", molecularFormula="NaCl", facility=facility)
    )
    beans.append(client.new("Technique", name="diffraction"))
    for bean in beans:
        with contextlib.suppress(icat_errors.ICATObjectExistsError):
            client.create(bean)
    yield client
    client.cleanup()


def rich(name: str) -> InvestigationSpec:
    body = with_rich_metadata(seed_body())
    investigation = body["investigations"][0]
    investigation.update(name=name, releaseDate=None, endDate=None)
    return InvestigationSpec.model_validate(investigation)


async def test_rich_metadata_is_written_once(root: icat.Client, catalogue: IcatCatalogue) -> None:
    name = unique_investigation_name()
    spec = rich(name)
    ids = await register(catalogue, spec)
    again = await register(catalogue, spec)
    assert again == ids

    dataset_id = ids["scan_0000"]
    rows = root.search(
        "SELECT t.name, o.numericValue, o.error, o.stringValue FROM DatasetParameter o "
        f"JOIN o.dataset ds JOIN o.type t WHERE ds.id = {dataset_id} "
        "AND t.name IN ('temperature', 'start_time')"
    )
    assert sorted(str(r[0]) for r in rows) == ["start_time", "temperature"]
    [temperature] = [r for r in rows if r[0] == "temperature"]
    assert (float(temperature[1]), float(temperature[2])) == (4.2, 0.1)
    assert (
        count(
            root,
            f"SELECT COUNT(o) FROM DatasetTechnique o JOIN o.dataset ds WHERE ds.id = {dataset_id}",
        )
        == 1
    )
    assert (
        count(
            root,
            "SELECT COUNT(o) FROM DatasetInstrument o JOIN o.dataset ds "
            f"WHERE ds.id = {dataset_id}",
        )
        == 1
    )
    samples = root.search(f"SELECT s.name FROM Dataset o JOIN o.sample s WHERE o.id = {dataset_id}")
    assert [str(s) for s in samples] == ["sample_1"]
    assert (
        count(
            root,
            "SELECT COUNT(o) FROM Sample o JOIN o.investigation i "
            f"WHERE i.id = {ids['investigation']}",
        )
        == 1
    )
    sample_values = root.search(
        "SELECT o.numericValue FROM SampleParameter o JOIN o.sample s JOIN s.investigation i "
        f"WHERE i.id = {ids['investigation']}"
    )
    assert [float(v) for v in sample_values] == [293.0]
    datafile_id = ids["scan_0000/file_0000.nxs"]
    values = root.search(
        "SELECT o.stringValue FROM DatafileParameter o JOIN o.datafile df JOIN o.type t "
        f"WHERE df.id = {datafile_id} AND t.name = 'run_number'"
    )
    assert [str(v) for v in values] == ["r-0001"]


async def test_an_unknown_parameter_type_is_refused_not_created(
    root: icat.Client, catalogue: IcatCatalogue
) -> None:
    body = with_rich_metadata(seed_body())
    investigation = body["investigations"][0]
    investigation["name"] = unique_investigation_name()
    investigation["datasets"][0]["parameters"][0]["parameter_type"]["units"] = "mK"
    spec = InvestigationSpec.model_validate(investigation)
    investigation_id = await catalogue.ensure_investigation(spec)
    with pytest.raises(NotFoundError, match="ParameterType"):
        await catalogue.ensure_datasets(investigation_id, spec.datasets)
    assert count(root, "SELECT COUNT(o) FROM ParameterType o WHERE o.units = 'mK'") == 0


async def test_a_new_investigation_without_release_date_is_embargoed(
    root: icat.Client, seeded_icat: IcatEmulator
) -> None:
    settings = IcatSettings(url=seeded_icat.url, embargo_period_years=3)  # type: ignore[arg-type]
    catalogue = IcatCatalogue(settings, pool=IcatClientPool(seeded_icat.url, size=1))
    try:
        spec = rich(unique_investigation_name()).model_copy(
            update={"startDate": datetime(2024, 6, 5, 10, 0, tzinfo=UTC)}
        )
        investigation_id = await catalogue.ensure_investigation(spec)
    finally:
        await catalogue.close()
    [released] = root.search(
        f"SELECT o.releaseDate FROM Investigation o WHERE o.id = {investigation_id}"
    )
    assert released.year == 2027 and (released.month, released.day) == (6, 5)


async def test_the_vocabulary_knows_the_rich_kinds(
    root: icat.Client, seeded_icat: IcatEmulator
) -> None:
    vocabulary = IcatVocabulary(
        IcatSettings(url=seeded_icat.url),  # type: ignore[arg-type]
        pool=IcatClientPool(seeded_icat.url, size=1),
    )
    try:
        unknown = await vocabulary.unknown(
            {
                "parameterType": {("temperature", "K"), ("temperature", "C")},
                "sampleType": {("crystal", "NaCl"), ("crystal", "KCl")},
                "technique": {"diffraction", "SANS"},
            }
        )
    finally:
        await vocabulary.close()
    assert unknown == {
        "parameterType": {("temperature", "C")},
        "sampleType": {("crystal", "KCl")},
        "technique": {"SANS"},
    }
