"""The ``Catalogue`` contract: ``FakeCatalogue`` and ``IcatCatalogue`` (ICAT emulator) alike.

What the icat-writer and the status-poller rely on: get-or-create by ICAT's uniqueness keys
(twice gives the same ids and no duplicates), the dataset claim (the first request wins, the
others learn who holds it), archival parameters (created, updated, deleted; unchanged values
cost nothing), and the reads (by keys, by dataset, by id, the jobs still in flight).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from datastore_common.domain.archival import (
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_FAILURE,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
)
from datastore_common.domain.paths import archive_location
from datastore_common.errors import InvalidRequestError, NotFoundError
from datastore_common.messages import DatafileKey, DatafileSpec, InvestigationSpec
from datastore_common.messages.metadata import DatafileFormatRef
from datastore_common.ports import Catalogue, NewDatafile
from tests.support.factories import seed_investigation

#: An id no entity of the emulator (nor of a fake) has.
UNKNOWN_ID = 987_654_321


def new_files(
    spec: InvestigationSpec,
    dataset_index: int = 0,
    *,
    size: int | None = 10,
    checksum: str | None = "adler32:0000000a",
) -> list[NewDatafile]:
    dataset = spec.datasets[dataset_index]
    return [
        NewDatafile(
            spec=f,
            location=archive_location(spec, dataset, f),
            file_size=None if size is None else size + i,
            checksum=checksum,
        )
        for i, f in enumerate(dataset.datafiles)
    ]


@dataclass(frozen=True)
class Registered:
    investigation_id: int
    datasets: dict[str, int]  # name -> id
    datafiles: dict[str, dict[str, int]]  # dataset name -> {datafile name: id}

    def file_ids(self, dataset: str = "scan_0000") -> list[int]:
        return list(self.datafiles[dataset].values())


async def register(catalogue: Catalogue, spec: InvestigationSpec) -> Registered:
    """What the icat-writer does with one investigation of an archive request."""
    investigation_id = await catalogue.ensure_investigation(spec)
    datasets = await catalogue.ensure_datasets(investigation_id, spec.datasets)
    files: dict[str, dict[str, int]] = {}
    for index, dataset in enumerate(spec.datasets):
        made = await catalogue.ensure_datafiles(
            datasets[dataset.name].dataset_id, new_files(spec, index)
        )
        files[dataset.name] = {name: record.datafile_id for name, record in made.items()}
    return Registered(investigation_id, {name: d.dataset_id for name, d in datasets.items()}, files)


def in_format(spec: DatafileSpec, name: str, version: str, location: str = "x") -> NewDatafile:
    """A datafile to register, in the DatafileFormat (name, version)."""
    form = DatafileFormatRef.model_validate({"name": name, "version": version})
    return NewDatafile(spec.model_copy(update={"datafileFormat": form}), location, 1, None)


def changed(spec: InvestigationSpec, **fields: object) -> InvestigationSpec:
    return InvestigationSpec.model_validate(spec.model_dump() | fields)


class TestGetOrCreate:
    async def test_registering_twice_gives_the_same_ids_and_no_duplicates(
        self, catalogue: Catalogue
    ) -> None:
        spec = seed_investigation(datasets=2, files=3)
        first = await register(catalogue, spec)
        second = await register(catalogue, spec)
        assert first == second
        records = await catalogue.datafiles_of(list(first.datasets.values()))
        assert len(records) == 6
        assert sorted(r.datafile_id for r in records) == sorted(
            i for files in first.datafiles.values() for i in files.values()
        )

    async def test_what_ensure_answers_is_what_was_registered(self, catalogue: Catalogue) -> None:
        spec = seed_investigation(files=2)
        investigation_id = await catalogue.ensure_investigation(spec)
        [dataset] = (await catalogue.ensure_datasets(investigation_id, spec.datasets)).values()
        assert (dataset.investigation_id, dataset.name, dict(dataset.archival)) == (
            investigation_id,
            "scan_0000",
            {},
        )
        made = await catalogue.ensure_datafiles(dataset.dataset_id, new_files(spec))
        assert {
            name: (r.dataset_id, r.name, r.location, r.file_size, r.checksum, dict(r.archival))
            for name, r in made.items()
        } == {
            f.spec.name: (dataset.dataset_id, f.spec.name, f.location, f.file_size, f.checksum, {})
            for f in new_files(spec)
        }

    async def test_another_visit_is_another_investigation(self, catalogue: Catalogue) -> None:
        spec = seed_investigation()
        first = await catalogue.ensure_investigation(spec)
        other = await catalogue.ensure_investigation(changed(spec, visitId="2"))
        assert other != first
        assert await catalogue.ensure_investigation(spec) == first

    @pytest.mark.parametrize(
        ("field", "bean"),
        [
            ("investigationType", "InvestigationType"),
            ("instrument", "Instrument"),
            ("facilityCycle", "FacilityCycle"),
        ],
    )
    async def test_an_unknown_reference_is_not_found(
        self, catalogue: Catalogue, field: str, bean: str
    ) -> None:
        spec = changed(seed_investigation(), **{field: {"name": "no-such"}})
        with pytest.raises(NotFoundError, match=bean):
            await catalogue.ensure_investigation(spec)

    async def test_another_facility_is_refused(self, catalogue: Catalogue) -> None:
        spec = changed(seed_investigation(), facility={"name": "elsewhere"})
        with pytest.raises(InvalidRequestError, match="elsewhere"):
            await catalogue.ensure_investigation(spec)

    async def test_an_unknown_dataset_type_is_not_found_for_a_new_dataset_only(
        self, catalogue: Catalogue
    ) -> None:
        spec = seed_investigation(datasets=2)
        investigation_id = await catalogue.ensure_investigation(spec)
        [existing, new] = spec.datasets
        first = await catalogue.ensure_datasets(investigation_id, [existing])
        untyped = [
            d.model_copy(update={"datasetType": d.datasetType.model_copy(update={"name": "no"})})
            for d in (existing, new)
        ]
        with pytest.raises(NotFoundError, match="DatasetType"):
            await catalogue.ensure_datasets(investigation_id, untyped)
        # An existing dataset is found by name, not modified: its type is not even looked up.
        again = await catalogue.ensure_datasets(investigation_id, untyped[:1])
        assert again[existing.name].dataset_id == first[existing.name].dataset_id

    async def test_an_unknown_datafile_format_is_not_found_for_a_new_datafile_only(
        self, catalogue: Catalogue
    ) -> None:
        spec = seed_investigation(files=2)
        ids = await register(catalogue, spec)
        dataset_id = ids.datasets["scan_0000"]

        # Existing datafiles are found by name: their format is not even looked up.
        unknown_format = [in_format(f.spec, "nexus", "4", f.location) for f in new_files(spec)]
        again = await catalogue.ensure_datafiles(dataset_id, unknown_format)
        assert {name: r.datafile_id for name, r in again.items()} == ids.datafiles["scan_0000"]

        # A new datafile in an unknown format: nothing the call names is written.
        known, unknown = (
            in_format(DatafileSpec.model_validate({"name": name}), "nexus", version)
            for name, version in (("known.nxs", "3"), ("unknown.nxs", "4"))
        )
        [first] = await catalogue.datafiles_by_id(ids.file_ids()[:1])
        resized = NewDatafile(spec.datasets[0].datafiles[0], "moved", 999, "adler32:00000999")
        with pytest.raises(NotFoundError, match="DatafileFormat"):
            await catalogue.ensure_datafiles(dataset_id, [resized, known, unknown])
        key = DatafileKey(
            investigation=spec.name, visit_id="1", dataset="scan_0000", datafile="known.nxs"
        )
        assert await catalogue.find_datafiles([key]) == {}
        assert await catalogue.datafiles_by_id(ids.file_ids()[:1]) == [first]
        made = await catalogue.ensure_datafiles(dataset_id, [known])
        assert await catalogue.find_datafiles([key]) == {key: made["known.nxs"].datafile_id}

    async def test_an_existing_datafile_gets_what_is_given_and_keeps_the_rest(
        self, catalogue: Catalogue
    ) -> None:
        spec = seed_investigation(files=1)
        ids = await register(catalogue, spec)
        dataset_id = ids.datasets["scan_0000"]
        [datafile_id] = ids.file_ids()
        [item] = new_files(spec)
        unknown_bytes = NewDatafile(item.spec, item.location, None, None)
        [record] = (await catalogue.ensure_datafiles(dataset_id, [unknown_bytes])).values()
        assert (record.datafile_id, record.file_size, record.checksum) == (
            datafile_id,
            item.file_size,
            item.checksum,
        )
        moved = NewDatafile(item.spec, "elsewhere/file_0000.nxs", 4242, "adler32:0badcafe")
        [record] = (await catalogue.ensure_datafiles(dataset_id, [moved])).values()
        [again] = await catalogue.datafiles_by_id([datafile_id])
        for read in (record, again):
            assert (read.datafile_id, read.location, read.file_size, read.checksum) == (
                datafile_id,
                "elsewhere/file_0000.nxs",
                4242,
                "adler32:0badcafe",
            )

    async def test_datasets_of_an_unknown_investigation_are_not_found(
        self, catalogue: Catalogue
    ) -> None:
        with pytest.raises(NotFoundError):
            await catalogue.ensure_datasets(UNKNOWN_ID, seed_investigation().datasets)

    async def test_datafiles_of_an_unknown_dataset_are_not_found(
        self, catalogue: Catalogue
    ) -> None:
        with pytest.raises(NotFoundError):
            await catalogue.ensure_datafiles(UNKNOWN_ID, new_files(seed_investigation()))


class TestClaims:
    async def test_the_first_claim_wins_and_later_ones_learn_the_holder(
        self, catalogue: Catalogue
    ) -> None:
        spec = seed_investigation(files=1)
        ids = await register(catalogue, spec)
        dataset_id = ids.datasets["scan_0000"]
        assert await catalogue.claim_dataset(dataset_id, "job-a,job-b") is None
        assert await catalogue.claim_dataset(dataset_id, "job-c") == "job-a,job-b"
        assert await catalogue.claim_dataset(dataset_id, "job-a,job-b") == "job-a,job-b"
        [dataset] = await catalogue.datasets_by_id([dataset_id])
        assert dict(dataset.archival) == {ARCHIVAL_IDS: "job-a,job-b"}
        again = await catalogue.ensure_datasets(ids.investigation_id, spec.datasets)
        assert dict(again["scan_0000"].archival) == {ARCHIVAL_IDS: "job-a,job-b"}

    async def test_a_released_claim_can_be_taken_again(self, catalogue: Catalogue) -> None:
        ids = await register(catalogue, seed_investigation(files=1))
        dataset_id = ids.datasets["scan_0000"]
        assert await catalogue.claim_dataset(dataset_id, "job-a") is None
        assert await catalogue.set_archival("Dataset", {dataset_id: {ARCHIVAL_IDS: None}}) == 1
        assert await catalogue.claim_dataset(dataset_id, "job-b") is None
        assert await catalogue.claim_dataset(dataset_id, "job-a") == "job-b"

    async def test_an_unknown_dataset_cannot_be_claimed(self, catalogue: Catalogue) -> None:
        with pytest.raises(NotFoundError):
            await catalogue.claim_dataset(UNKNOWN_ID, "job-a")


class TestArchivalParameters:
    async def test_creates_updates_and_deletes_count_only_what_changed(
        self, catalogue: Catalogue
    ) -> None:
        ids = await register(catalogue, seed_investigation(files=2))
        f0, f1 = ids.file_ids()
        created = {
            f0: {ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_IDS: "job-a"},
            f1: {ARCHIVAL_STATE: "FAILED", ARCHIVAL_FAILURE: "user error: gone"},
        }
        assert await catalogue.set_archival("Datafile", created) == 4
        assert await catalogue.set_archival("Datafile", created) == 0
        assert (
            await catalogue.set_archival(
                "Datafile",
                {
                    f0: {ARCHIVAL_STATE: "FINISHED", ARCHIVAL_IDS: "job-a"},  # one update
                    f1: {ARCHIVAL_FAILURE: None, ARCHIVAL_ENDPOINT: None},  # one delete
                },
            )
            == 2
        )
        assert await catalogue.set_archival("Datafile", {f1: {ARCHIVAL_FAILURE: None}}) == 0
        assert await catalogue.set_archival("Datafile", {f0: {}}) == 0
        by_id = {d.datafile_id: dict(d.archival) for d in await catalogue.datafiles_by_id([f0, f1])}
        assert by_id == {
            f0: {ARCHIVAL_STATE: "FINISHED", ARCHIVAL_IDS: "job-a"},
            f1: {ARCHIVAL_STATE: "FAILED"},
        }
        of_dataset = await catalogue.datafiles_of([ids.datasets["scan_0000"]])
        assert {d.datafile_id: dict(d.archival) for d in of_dataset} == by_id

    async def test_dataset_parameters_read_back_with_the_dataset(
        self, catalogue: Catalogue
    ) -> None:
        spec = seed_investigation(files=1)
        ids = await register(catalogue, spec)
        dataset_id = ids.datasets["scan_0000"]
        values = {ARCHIVAL_STATE: "ACTIVE", ARCHIVAL_ENDPOINT: "https://fts"}
        assert await catalogue.set_archival("Dataset", {dataset_id: values}) == 2
        [dataset] = await catalogue.datasets_by_id([dataset_id])
        assert (dataset.investigation_id, dataset.name, dict(dataset.archival)) == (
            ids.investigation_id,
            "scan_0000",
            values,
        )
        [datafile] = await catalogue.datafiles_of([dataset_id])
        assert dict(datafile.archival) == {}  # the dataset's, not its datafiles'

    async def test_other_parameter_names_are_refused(self, catalogue: Catalogue) -> None:
        ids = await register(catalogue, seed_investigation(files=1))
        with pytest.raises(ValueError, match="not archival parameters"):
            await catalogue.set_archival("Datafile", {ids.file_ids()[0]: {"Colour": "blue"}})

    async def test_parameters_of_an_unknown_entity_are_not_found_and_nothing_is_written(
        self, catalogue: Catalogue
    ) -> None:
        ids = await register(catalogue, seed_investigation(files=1))
        [known] = ids.file_ids()
        with pytest.raises(NotFoundError):
            await catalogue.set_archival("Datafile", {UNKNOWN_ID: {ARCHIVAL_STATE: "ACTIVE"}})
        with pytest.raises(NotFoundError):
            await catalogue.set_archival(
                "Datafile",
                {known: {ARCHIVAL_STATE: "ACTIVE"}, UNKNOWN_ID: {ARCHIVAL_STATE: "ACTIVE"}},
            )
        [record] = await catalogue.datafiles_by_id([known])
        assert dict(record.archival) == {}


class TestReads:
    async def test_datafiles_are_found_by_their_keys_and_missing_ones_left_out(
        self, catalogue: Catalogue
    ) -> None:
        spec = seed_investigation(datasets=2, files=2)
        ids = await register(catalogue, spec)

        def key(dataset: str, datafile: str, **other: str) -> DatafileKey:
            fields = {"investigation": spec.name, "visit_id": spec.visitId} | other
            return DatafileKey(dataset=dataset, datafile=datafile, **fields)

        present = [key(d, f) for d, files in ids.datafiles.items() for f in files]
        absent = [
            key("scan_0000", "never-registered.nxs"),
            key("scan_0009", "file_0000.nxs"),
            key("scan_0000", "file_0000.nxs", visit_id="2"),
            key("scan_0000", "file_0000.nxs", investigation=f"NOPE-{uuid.uuid4().hex[:8]}"),
        ]
        found = await catalogue.find_datafiles([*present, *absent])
        assert found == {k: ids.datafiles[k.dataset][k.datafile] for k in present}
        assert await catalogue.find_datafiles([]) == {}

    async def test_datafiles_of_lists_every_datafile_of_the_datasets_named(
        self, catalogue: Catalogue
    ) -> None:
        ids = await register(catalogue, seed_investigation(datasets=3, files=2))
        wanted = [ids.datasets["scan_0000"], ids.datasets["scan_0002"], UNKNOWN_ID]
        records = await catalogue.datafiles_of(wanted)
        assert sorted((r.dataset_id, r.name, r.datafile_id) for r in records) == sorted(
            (ids.datasets[d], name, i)
            for d in ("scan_0000", "scan_0002")
            for name, i in ids.datafiles[d].items()
        )
        assert await catalogue.datafiles_of([UNKNOWN_ID]) == []

    async def test_reads_by_id_leave_unknown_ids_out(self, catalogue: Catalogue) -> None:
        ids = await register(catalogue, seed_investigation(files=2))
        dataset_id = ids.datasets["scan_0000"]
        f0, f1 = ids.file_ids()
        records = await catalogue.datafiles_by_id([f1, UNKNOWN_ID, f0])
        assert sorted(r.datafile_id for r in records) == sorted([f0, f1])
        assert [d.dataset_id for d in await catalogue.datasets_by_id([UNKNOWN_ID, dataset_id])] == [
            dataset_id
        ]

    async def test_active_jobs_are_those_of_datafiles_not_yet_terminal(
        self, catalogue: Catalogue
    ) -> None:
        spec = seed_investigation(files=4)
        ids = await register(catalogue, spec)
        files = ids.file_ids()
        job_a, job_b, job_c = (f"job-{x}-{spec.name}" for x in "abc")
        await catalogue.set_archival(
            "Datafile",
            {
                files[0]: {ARCHIVAL_STATE: "ACTIVE", ARCHIVAL_IDS: job_a, ARCHIVAL_ENDPOINT: "e1"},
                files[1]: {ARCHIVAL_STATE: "FINISHED", ARCHIVAL_IDS: job_a},
                files[2]: {ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_IDS: f"{job_b},{job_a}"},
                files[3]: {ARCHIVAL_STATE: "FAILED", ARCHIVAL_IDS: job_c},
            },
        )
        jobs = {
            j.job_id: j
            for j in await catalogue.active_archival_jobs()
            if j.job_id in {job_a, job_b, job_c}  # the emulator holds other cases' jobs too
        }
        assert {
            job_id: sorted(d.datafile_id for d in j.datafiles) for job_id, j in jobs.items()
        } == {
            job_a: [files[0], files[2]],
            job_b: [files[2]],
        }
        assert jobs[job_a].endpoint == "e1"
        assert jobs[job_b].endpoint is None
        [record] = jobs[job_b].datafiles
        assert (record.name, record.location) == (
            "file_0002.nxs",
            f"instrument/20XX/{spec.name}-1/scan/scan_0000/file_0002.nxs",
        )

    async def test_datafiles_without_ids_of_their_own_are_in_their_datasets_jobs(
        self, catalogue: Catalogue
    ) -> None:
        """The original Datastore API recorded "Archival ids" on the Dataset only (its FTS
        job ids, comma-joined): resync adopts the datasets it left in flight."""
        spec = seed_investigation(files=3)
        ids = await register(catalogue, spec)
        dataset_id = ids.datasets["scan_0000"]
        files = ids.file_ids()
        job_a, job_b = (f"job-{x}-{spec.name}" for x in "ab")
        await catalogue.set_archival(
            "Datafile",
            {
                files[0]: {ARCHIVAL_STATE: "ARCHIVING"},
                files[1]: {ARCHIVAL_STATE: "READY"},
                files[2]: {ARCHIVAL_STATE: "FINISHED"},
            },
        )
        await catalogue.set_archival(
            "Dataset", {dataset_id: {ARCHIVAL_STATE: "READY", ARCHIVAL_IDS: f"{job_a},{job_b}"}}
        )
        jobs = {
            j.job_id: sorted(d.datafile_id for d in j.datafiles)
            for j in await catalogue.active_archival_jobs()
            if j.job_id in {job_a, job_b}
        }
        assert jobs == {job_a: files[:2], job_b: files[:2]}


class TestArchived:
    """What the audit reads: the datafiles the functional account recorded FINISHED."""

    async def test_only_finished_datafiles_in_the_folder_by_id_page_after_page(
        self, catalogue: Catalogue
    ) -> None:
        spec = seed_investigation(datasets=2, files=3)
        ids = await register(catalogue, spec)
        other = await register(catalogue, seed_investigation(files=2))
        finished = [*ids.file_ids("scan_0000"), ids.file_ids("scan_0001")[0]]
        states = {i: {ARCHIVAL_STATE: "FINISHED"} for i in [*finished, *other.file_ids()]}
        states[ids.file_ids("scan_0001")[1]] = {ARCHIVAL_STATE: "FAILED"}
        states[ids.file_ids("scan_0001")[2]] = {ARCHIVAL_STATE: "ACTIVE"}
        await catalogue.set_archival("Datafile", states)
        folder = f"instrument/20XX/{spec.name}-1"

        whole = await catalogue.archived_datafiles(under=folder)
        assert [r.datafile_id for r in whole] == sorted(finished)
        assert all(r.location and r.location.startswith(folder + "/") for r in whole)
        assert all(r.archival[ARCHIVAL_STATE] == "FINISHED" for r in whole)
        assert whole[0].checksum == "adler32:0000000a" and whole[0].file_size is not None

        paged: list[int] = []
        after = 0
        while page := await catalogue.archived_datafiles(under=folder, after=after, limit=2):
            assert len(page) <= 2
            paged += [r.datafile_id for r in page]
            after = page[-1].datafile_id
        assert paged == sorted(finished)

        everything = {r.datafile_id for r in await catalogue.archived_datafiles(limit=100_000)}
        assert set(finished) | set(other.file_ids()) <= everything
        assert await catalogue.archived_datafiles(under=f"{folder}x") == []
