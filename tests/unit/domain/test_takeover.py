"""Taking over from the original Datastore API (ral-facilities/datastore-api): the states it
recorded, its "Archival ids" (on the Dataset only, comma-joined, "" before it submitted),
and the in-flight jobs `resync` finds from them."""

from __future__ import annotations

import pytest

from datastore_common.domain.archival import (
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
    CatalogueDatafile,
    active_jobs_of,
    split_job_ids,
)
from datastore_common.domain.states import (
    aggregate_dataset_state,
    is_terminal,
    may_advance,
    normalise,
)
from datastore_common.ports import NewDatafile
from datastore_common.settings import load_settings
from datastore_common.testing.fake_catalogue import FakeCatalogue
from tests.support.factories import seed_investigation

JOB_A = "0c4dcd6c-0f7f-11ef-a4d3-fa163e4e4be0"  # FTS's own uuid1 ids, as the original got them
JOB_B = "1d5ede7d-0f7f-11ef-a4d3-fa163e4e4be0"


def datafile(datafile_id: int, state: str | None, **archival: str) -> CatalogueDatafile:
    values = {ARCHIVAL_STATE: state, **archival} if state is not None else dict(archival)
    return CatalogueDatafile(
        datafile_id, 7, f"f{datafile_id}", f"loc/f{datafile_id}", 1, None, values
    )


class TestTheOriginalsStates:
    """Its dataset states are ours (JobState); its file states are FTS's (TransferState),
    two of which we never record: NEW and DEFUNCT."""

    @pytest.mark.parametrize(
        "state",
        ["STAGING", "SUBMITTED", "READY", "ACTIVE", "ARCHIVING", "FINISHED", "FAILED", "CANCELED"],
    )
    def test_its_job_states_are_ours(self, state: str) -> None:
        assert normalise(state) == state

    def test_new_counts_as_submitted(self) -> None:
        assert normalise("NEW") == "SUBMITTED"
        assert not is_terminal("NEW")
        assert aggregate_dataset_state(["NEW", "FINISHED"]) == "SUBMITTED"
        assert may_advance("NEW", "ACTIVE")

    def test_defunct_counts_as_failed(self) -> None:
        assert normalise("defunct") == "FAILED"
        assert is_terminal("DEFUNCT")
        assert aggregate_dataset_state(["DEFUNCT", "FINISHED"]) == "FINISHEDDIRTY"
        assert aggregate_dataset_state(["DEFUNCT", "FAILED"]) == "FAILED"
        assert not may_advance("DEFUNCT", "FINISHED")  # terminal: final

    def test_an_unknown_state_it_wrote_can_still_move_forward(self) -> None:
        # Its StateCounter writes UNKNOWN for a job state it did not expect.
        assert aggregate_dataset_state(["UNKNOWN", "FINISHED"]) == "UNKNOWN"
        assert may_advance("UNKNOWN", "ACTIVE")


class TestItsArchivalIds:
    def test_comma_joined_as_ours(self) -> None:
        assert split_job_ids(f"{JOB_A},{JOB_B}") == [JOB_A, JOB_B]

    def test_empty_before_it_submitted(self) -> None:
        assert split_job_ids("") == []
        assert split_job_ids(",") == []

    def test_blanks_around_ids_are_dropped(self) -> None:
        assert split_job_ids(f" {JOB_A} , {JOB_B},") == [JOB_A, JOB_B]


class TestInFlightJobs:
    def test_datafiles_without_ids_take_their_datasets(self) -> None:
        files = [datafile(1, "ARCHIVING"), datafile(2, "READY"), datafile(3, "FINISHED")]
        datasets = {7: {ARCHIVAL_STATE: "READY", ARCHIVAL_IDS: f"{JOB_A},{JOB_B}"}}

        jobs = {job.job_id: job for job in active_jobs_of(files, datasets)}

        # Which file is in which job is not recorded: each job carries both non-terminal files.
        assert {j: [d.datafile_id for d in job.datafiles] for j, job in jobs.items()} == {
            JOB_A: [1, 2],
            JOB_B: [1, 2],
        }
        assert jobs[JOB_A].endpoint is None  # the settings' FTS

    def test_a_datafiles_own_ids_win_over_its_datasets(self) -> None:
        files = [
            datafile(1, "ACTIVE", **{ARCHIVAL_IDS: JOB_A, ARCHIVAL_ENDPOINT: "https://fts:8446"}),
            datafile(2, "ACTIVE"),
        ]
        datasets = {7: {ARCHIVAL_IDS: JOB_B, ARCHIVAL_ENDPOINT: "https://other:8446"}}

        jobs = {job.job_id: job for job in active_jobs_of(files, datasets)}

        assert {j: [d.datafile_id for d in job.datafiles] for j, job in jobs.items()} == {
            JOB_A: [1],
            JOB_B: [2],
        }
        assert jobs[JOB_A].endpoint == "https://fts:8446"
        assert jobs[JOB_B].endpoint == "https://other:8446"

    def test_a_dataset_not_yet_submitted_or_whose_ids_were_deleted_has_no_job(self) -> None:
        files = [datafile(1, "SUBMITTED"), datafile(2, "ARCHIVING")]
        assert active_jobs_of(files, {7: {ARCHIVAL_IDS: ""}}) == []
        assert active_jobs_of(files, {}) == []
        assert active_jobs_of(files) == []

    def test_terminal_and_stateless_datafiles_are_not_followed(self) -> None:
        files = [datafile(1, "FINISHED"), datafile(2, "DEFUNCT"), datafile(3, None)]
        assert active_jobs_of(files, {7: {ARCHIVAL_IDS: JOB_A}}) == []


class TestFakeCatalogue:
    async def test_finds_the_originals_in_flight_dataset(self) -> None:
        catalogue = FakeCatalogue()
        spec = seed_investigation("ORIG", files=3)
        investigation_id = await catalogue.ensure_investigation(spec)
        [dataset] = (await catalogue.ensure_datasets(investigation_id, spec.datasets)).values()
        made = await catalogue.ensure_datafiles(
            dataset.dataset_id,
            [NewDatafile(df, f"loc/{df.name}", 1, None) for df in spec.datasets[0].datafiles],
        )
        ids = [record.datafile_id for record in made.values()]
        await catalogue.set_archival(
            "Datafile",
            {
                i: {ARCHIVAL_STATE: s}
                for i, s in zip(ids, ("ARCHIVING", "READY", "FINISHED"), strict=True)
            },
        )
        await catalogue.set_archival(
            "Dataset", {dataset.dataset_id: {ARCHIVAL_STATE: "READY", ARCHIVAL_IDS: JOB_A}}
        )

        [job] = await catalogue.active_archival_jobs()

        assert job.job_id == JOB_A
        assert [d.datafile_id for d in job.datafiles] == ids[:2]


class TestSettings:
    def test_by_default_only_the_functional_account_counts_and_our_units(self) -> None:
        icat = load_settings().icat
        assert icat.archival_writers == (icat.functional_user,)
        assert icat.archival_parameter_units == "N/A"

    def test_the_originals_account_and_units_can_be_named(self) -> None:
        icat = load_settings(
            icat={"trusted_writers": ["simple/datastore-api"], "archival_parameter_units": ""}
        ).icat
        assert icat.archival_writers == ("simple/datastore", "simple/datastore-api")
        assert icat.archival_parameter_units == ""
