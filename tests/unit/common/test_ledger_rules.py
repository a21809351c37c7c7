"""domain.ledger: a request's state from its jobs, and what it waits for, in words."""

from __future__ import annotations

import pytest

from datastore_common.domain.ledger import (
    Waiting,
    investigations_of,
    listed_owner,
    new_request,
    next_request_state,
    request_state,
    summarise_counts,
    summarise_job,
    waiting_on,
)
from datastore_common.domain.plan import RestoreItem, plan_restore
from datastore_common.messages import DatafileKey, RestoreRequested
from datastore_common.testing.fake_selections import place_of


@pytest.mark.parametrize(
    ("jobs", "failed", "expected"),
    [
        ([], False, "SUBMITTED"),
        (["PLANNED", "ACTIVE"], False, "SUBMITTED"),
        (["STAGING", "ACTIVE"], False, "STAGING"),
        (["ACTIVE", "FINISHED"], False, "ACTIVE"),
        (["FINISHED", "FINISHED"], False, "FINISHED"),
        (["FINISHED", "FAILED"], False, "FINISHEDDIRTY"),
        (["FAILED", "FAILED"], False, "FAILED"),
        (["ACTIVE"], True, "FAILED"),
    ],
)
def test_request_state(jobs: list[str], failed: bool, expected: str) -> None:
    assert request_state(jobs, failed=failed) == expected


@pytest.mark.parametrize(
    ("stored", "computed", "failed", "expected"),
    [
        ("SUBMITTED", "STAGING", False, "STAGING"),  # accepted comes before staging
        ("ACTIVE", "SUBMITTED", False, "ACTIVE"),  # never back
        ("FINISHED", "ACTIVE", False, "FINISHED"),  # terminal is final
        ("ACTIVE", "FINISHED", False, "FINISHED"),
        ("FINISHED", "FINISHED", True, "FAILED"),  # given up wins
    ],
)
def test_next_request_state(stored: str, computed: str, failed: bool, expected: str) -> None:
    assert next_request_state(stored, computed, failed=failed) == expected


@pytest.mark.parametrize(
    ("state", "jobs", "waiting", "expected"),
    [
        ("SUBMITTED", ["PLANNED"], Waiting("archive"), "registration in ICAT"),
        ("SUBMITTED", ["PLANNED"], Waiting("archive", registered=True), "submission to FTS"),
        ("SUBMITTED", ["PLANNED"], Waiting("restore"), "submission to FTS"),
        ("STAGING", ["STAGING", "ACTIVE"], Waiting("restore"), "staging from tape"),
        ("SUBMITTED", ["SUBMITTED"], Waiting("archive"), "a transfer slot in the FTS queue"),
        ("ACTIVE", ["ACTIVE"], Waiting("archive"), "the copy"),
        ("ARCHIVING", ["ARCHIVING"], Waiting("archive"), "migration to tape"),
        ("FINISHED", ["FINISHED"], Waiting("archive"), None),
        ("ACTIVE", ["ACTIVE"], Waiting("archive", retry="a retry at 12:00 (ICAT down)"), "a retry"),
    ],
)
def test_waiting_on(state: str, jobs: list[str], waiting: Waiting, expected: str | None) -> None:
    said = waiting_on(state, jobs, waiting)
    assert said == expected if expected is None else (said or "").startswith(expected)


def test_job_summary_counts_terminal_failures_and_bytes_done() -> None:
    files = [("FINISHED", 10), ("FAILED", 20), ("CANCELED", 5), ("ACTIVE", None)]
    summary = summarise_job("j", "ACTIVE", files)
    assert (summary.state, summary.files_done, summary.files_failed) == ("ACTIVE", 1, 2)
    assert (summary.files_total, summary.bytes_done, summary.bytes_total) == (4, 10, 35)
    assert summarise_job("j", None, files).state == "PLANNED"
    # FTS's job state lags its files' at times: all files ended means the job ended.
    ended = summarise_job("j", "ACTIVE", [("FINISHED", 1), ("FAILED", 1)])
    assert ended.state == "FINISHEDDIRTY"


def test_a_store_counting_files_by_state_summarises_as_listing_them_does() -> None:
    files = [("FINISHED", 10), ("FINISHED", None), ("FAILED", 20), ("ACTIVE", 5)]
    counts = {"FINISHED": (2, 10), "FAILED": (1, 20), "ACTIVE": (1, 5)}
    assert summarise_counts("j", "ACTIVE", counts) == summarise_job("j", "ACTIVE", files)
    assert summarise_counts("j", "SUBMITTED", {}).state == "SUBMITTED"  # no files yet


@pytest.mark.parametrize(
    ("user", "mine", "expected"),
    [
        ("simple/root", True, "simple/root"),  # an admin's own
        ("simple/root", False, None),  # an admin asking for everyone's
        ("db/alice", True, "db/alice"),
        ("db/alice", False, "db/alice"),  # anyone else asking for all: still their own
    ],
)
def test_listed_owner(user: str, mine: bool, expected: str | None) -> None:
    assert listed_owner(user, ("simple/root",), mine=mine) == expected


def test_investigations_of_a_requests_datasets() -> None:
    datasets = [
        {"investigation": "ABC124", "visit_id": "1", "dataset": "a"},
        {"investigation": "ABC123", "visit_id": "2", "dataset": "b"},
        {"investigation": "ABC123", "visit_id": "1", "dataset": "c"},
        {"dataset_id": 7},  # a restore's dataset ICAT did not name
    ]
    assert investigations_of(datasets) == ("ABC123", "ABC124")


def test_a_restore_shows_its_datasets_as_icat_named_them() -> None:
    def item(datafile_id: int, dataset_id: int, location: str) -> RestoreItem:
        return RestoreItem(datafile_id, dataset_id, location, place=place_of(location))

    items = [
        item(1, 20, "x/2024/ABC123-1/scan/scan_1/a"),
        item(2, 10, "x/2024/ABC123-1/scan/scan_0/a"),
        item(3, 10, "x/2024/ABC123-1/scan/scan_0/b"),
        item(4, 30, "x/2024/ABC123-1/scan/scan_2/c"),
    ]
    planned = plan_restore(
        "r",
        items,
        tape_archive="root://tape//",
        tape_root_dir="archive/",
        user_data_cache="root://udc//",
        vo="vo",
        max_files_per_job=2,
    )
    # A restore accepted before restored files travelled with their names: dataset 30's has none.
    jobs = [
        job.model_copy(
            update={
                "transfers": [
                    t.model_copy(update={"datafile": None}) if t.dataset_id == 30 else t
                    for t in job.transfers
                ]
            }
        )
        for job in planned
    ]
    assert [t.datafile for j in planned for t in j.transfers if t.dataset_id == 30] == [
        DatafileKey(investigation="ABC123", visit_id="1", dataset="scan_2", datafile="c")
    ]
    request = new_request(RestoreRequested(request_id="r", jobs=jobs), owner="u", source="http")
    assert request.datasets == (
        {
            "dataset_id": 10,
            "investigation": "ABC123",
            "visit_id": "1",
            "dataset": "scan_0",
            "datafiles": 2,
        },
        {
            "dataset_id": 20,
            "investigation": "ABC123",
            "visit_id": "1",
            "dataset": "scan_1",
            "datafiles": 1,
        },
        {"dataset_id": 30, "datafiles": 1},
    )
    assert investigations_of(request.datasets) == ("ABC123",)
