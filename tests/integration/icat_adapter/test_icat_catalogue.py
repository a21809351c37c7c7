"""IcatCatalogue against the ICAT emulator: get-or-create, archival parameters, totals, races."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import icat
import pytest

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool, raw_call
from datastore_common.domain.archival import (
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_FAILURE,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
)
from datastore_common.domain.paths import archive_location
from datastore_common.errors import InvalidRequestError, NotFoundError
from datastore_common.messages import InvestigationSpec
from datastore_common.ports import NewDatafile
from datastore_common.settings import IcatSettings
from tests.support.factories import seed_investigation
from tests.support.icat_fixtures import IcatEmulator


@pytest.fixture(scope="module")
def root(seeded_icat: IcatEmulator) -> Iterator[icat.Client]:
    client = icat.Client(seeded_icat.url)
    client.login("simple", {"username": "root", "password": "pw"})
    yield client
    client.cleanup()


def count(root: icat.Client, query: str) -> int:
    return int(root.search(query)[0])


def new_files(spec: InvestigationSpec, dataset_index: int = 0, size: int = 10) -> list[NewDatafile]:
    dataset = spec.datasets[dataset_index]
    return [
        NewDatafile(
            spec=f,
            location=archive_location(spec, dataset, f),
            file_size=size + i,
            checksum=f"adler32:{i:08x}",
        )
        for i, f in enumerate(dataset.datafiles)
    ]


async def register(catalogue: IcatCatalogue, spec: InvestigationSpec) -> dict[str, int]:
    investigation_id = await catalogue.ensure_investigation(spec)
    datasets = await catalogue.ensure_datasets(investigation_id, spec.datasets)
    ids = {"investigation": investigation_id}
    for index, dataset in enumerate(spec.datasets):
        dataset_id = datasets[dataset.name].dataset_id
        ids[dataset.name] = dataset_id
        files = await catalogue.ensure_datafiles(dataset_id, new_files(spec, index))
        ids.update({f"{dataset.name}/{name}": r.datafile_id for name, r in files.items()})
    return ids


class TestGetOrCreate:
    async def test_registers_the_seed_entities_once(
        self, catalogue: IcatCatalogue, root: icat.Client
    ) -> None:
        spec = seed_investigation()
        first = await register(catalogue, spec)
        second = await register(catalogue, spec)
        assert first == second
        inv = first["investigation"]
        assert (
            count(root, f"SELECT COUNT(o) FROM Investigation o WHERE o.name = '{spec.name}'") == 1
        )
        for link in ("InvestigationInstrument", "InvestigationFacilityCycle"):
            query = f"SELECT COUNT(o) FROM {link} o JOIN o.investigation i WHERE i.id = {inv}"
            assert count(root, query) == 1
        datafiles = root.search(
            "SELECT o FROM Datafile o JOIN o.dataset ds JOIN ds.investigation i "
            f"WHERE i.id = {inv} ORDER BY o.name"
        )
        assert [d.name for d in datafiles] == [f"file_{i:04d}.nxs" for i in range(4)]
        assert (
            datafiles[1].location == f"instrument/20XX/{spec.name}-1/scan/scan_0000/file_0001.nxs"
        )
        assert (datafiles[1].fileSize, datafiles[1].checksum) == (11, "adler32:00000001")
        investigation = root.get("Investigation INCLUDE 1", inv)
        assert (investigation.title, investigation.type.name) == ("Title", "type")

    async def test_an_existing_datafile_gets_real_size_and_checksum(
        self, catalogue: IcatCatalogue
    ) -> None:
        spec = seed_investigation(files=1)
        ids = await register(catalogue, spec)
        update = [
            NewDatafile(f.spec, f.location, 4242, "adler32:0badcafe") for f in new_files(spec)
        ]
        records = await catalogue.ensure_datafiles(ids["scan_0000"], update)
        record = records["file_0000.nxs"]
        assert record.datafile_id == ids["scan_0000/file_0000.nxs"]
        assert (record.file_size, record.checksum) == (4242, "adler32:0badcafe")
        [again] = await catalogue.datafiles_by_id([record.datafile_id])
        assert (again.file_size, again.checksum) == (4242, "adler32:0badcafe")

    async def test_unknown_reference_is_not_found_and_other_facility_is_refused(
        self, catalogue: IcatCatalogue
    ) -> None:
        spec = seed_investigation()
        bad_instrument = InvestigationSpec.model_validate(
            spec.model_dump() | {"instrument": {"name": "no-such"}}
        )
        with pytest.raises(NotFoundError, match="Instrument"):
            await catalogue.ensure_investigation(bad_instrument)
        other = InvestigationSpec.model_validate(
            spec.model_dump() | {"facility": {"name": "elsewhere"}}
        )
        with pytest.raises(InvalidRequestError, match="elsewhere"):
            await catalogue.ensure_investigation(other)

    async def test_two_replicas_racing_create_one_set_of_entities(
        self, icat_settings: IcatSettings, root: icat.Client
    ) -> None:
        replicas = [
            IcatCatalogue(icat_settings, pool=IcatClientPool(str(icat_settings.url), size=1))
            for _ in range(3)
        ]
        try:
            spec = seed_investigation(datasets=3, files=20)
            results = await asyncio.gather(*(register(r, spec) for r in replicas))
        finally:
            for replica in replicas:
                await replica.close()
        assert results[0] == results[1] == results[2]
        inv = results[0]["investigation"]
        query = (
            "SELECT COUNT(o) FROM Datafile o JOIN o.dataset ds JOIN ds.investigation i "
            f"WHERE i.id = {inv}"
        )
        assert count(root, query) == 60
        query = f"SELECT COUNT(o) FROM Dataset o JOIN o.investigation i WHERE i.id = {inv}"
        assert count(root, query) == 3


class TestArchivalParameters:
    async def test_set_read_change_and_remove(self, catalogue: IcatCatalogue) -> None:
        spec = seed_investigation(files=2)
        ids = await register(catalogue, spec)
        dataset_id = ids["scan_0000"]
        f0, f1 = ids["scan_0000/file_0000.nxs"], ids["scan_0000/file_0001.nxs"]
        written = await catalogue.set_archival(
            "Datafile",
            {
                f0: {ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_IDS: "job-a"},
                f1: {ARCHIVAL_STATE: "FAILED", ARCHIVAL_FAILURE: "user error: gone"},
            },
        )
        assert written == 4
        same = {f0: {ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_IDS: "job-a"}}
        assert await catalogue.set_archival("Datafile", same) == 0
        await catalogue.set_archival(
            "Datafile", {f0: {ARCHIVAL_STATE: "FINISHED"}, f1: {ARCHIVAL_FAILURE: None}}
        )
        await catalogue.set_archival("Dataset", {dataset_id: {ARCHIVAL_ENDPOINT: "https://fts"}})
        files = {d.datafile_id: d for d in await catalogue.datafiles_of([dataset_id])}
        assert files[f0].archival == {ARCHIVAL_STATE: "FINISHED", ARCHIVAL_IDS: "job-a"}
        assert files[f1].archival == {ARCHIVAL_STATE: "FAILED"}
        [dataset] = await catalogue.datasets_by_id([dataset_id])
        assert dataset.archival == {ARCHIVAL_ENDPOINT: "https://fts"}
        assert dataset.investigation_id == ids["investigation"]
        again = await catalogue.ensure_datasets(ids["investigation"], spec.datasets)
        assert again["scan_0000"].archival == {ARCHIVAL_ENDPOINT: "https://fts"}

    async def test_active_jobs_list_only_non_terminal_datafiles(
        self, catalogue: IcatCatalogue
    ) -> None:
        spec = seed_investigation(files=3)
        ids = await register(catalogue, spec)
        files = [ids[f"scan_0000/file_{i:04d}.nxs"] for i in range(3)]
        job_a, job_b = f"job-a-{spec.name}", f"job-b-{spec.name}"
        await catalogue.set_archival(
            "Datafile",
            {
                files[0]: {ARCHIVAL_STATE: "ACTIVE", ARCHIVAL_IDS: job_a, ARCHIVAL_ENDPOINT: "e1"},
                files[1]: {ARCHIVAL_STATE: "FINISHED", ARCHIVAL_IDS: job_a},
                files[2]: {ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_IDS: job_b},
            },
        )
        jobs = {j.job_id: j for j in await catalogue.active_archival_jobs()}
        assert [d.datafile_id for d in jobs[job_a].datafiles] == [files[0]]
        assert jobs[job_a].endpoint == "e1"
        assert [d.datafile_id for d in jobs[job_b].datafiles] == [files[2]]
        assert jobs[job_b].datafiles[0].location is not None


class TestTotalsAndSession:
    async def test_totals_are_sums_over_datafiles(
        self, catalogue: IcatCatalogue, root: icat.Client
    ) -> None:
        spec = seed_investigation(datasets=2, files=3)
        ids = await register(catalogue, spec)  # sizes 10, 11, 12 per dataset
        await catalogue.update_totals([ids["scan_0000"], ids["scan_0001"]])
        dataset = root.get("Dataset", ids["scan_0000"])
        assert (dataset.fileCount, dataset.fileSize) == (3, 33)
        investigation = root.get("Investigation", ids["investigation"])
        assert (investigation.fileCount, investigation.fileSize) == (6, 66)
        assert investigation.title == "Title"  # the update kept every other field

    async def test_a_lost_session_is_replaced_by_a_new_login(
        self, catalogue: IcatCatalogue
    ) -> None:
        spec = seed_investigation(files=1)
        await catalogue.ensure_investigation(spec)
        session = catalogue._session
        stale = session.session_id
        assert stale is not None
        await catalogue._pool.call("logout", lambda c: raw_call(c, "logout", stale))
        investigation_id = await catalogue.ensure_investigation(spec)
        assert investigation_id > 0
        assert session.session_id != stale
        assert session.logins == 2
