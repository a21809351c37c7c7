"""domain.following: a dataset's and an investigation's archival from ICAT's records."""

from __future__ import annotations

import pytest

from datastore_common.domain.archival import (
    ARCHIVAL_FAILURE,
    ARCHIVAL_STATE,
    CatalogueDatafile,
    parse_failure,
)
from datastore_common.domain.following import (
    ArchivalStatus,
    combined_status,
    dataset_status,
    file_states,
    split_investigation,
    state_of,
)
from datastore_common.errors import InvalidRequestError


def files(*states: str | None, failure: str | None = None) -> list[CatalogueDatafile]:
    """Datafiles f0, f1, ... of dataset 1 at a/f<n>, in these states (FAILED ones with
    ``failure`` or their own "user error: ... f<n>")."""
    made = []
    for n, state in enumerate(states):
        archival = {} if state is None else {ARCHIVAL_STATE: state}
        if state == "FAILED":
            archival[ARCHIVAL_FAILURE] = failure or f"user error: source not found: f{n}"
        made.append(CatalogueDatafile(n, 1, f"f{n}", f"a/f{n}", None, None, archival))
    return made


@pytest.mark.parametrize(
    ("states", "state", "ended", "percentage", "waiting_on"),
    [
        pytest.param(["FINISHED"] * 3, "FINISHED", 3, 100.0, None, id="all-on-tape"),
        pytest.param(
            ["FINISHED", "ACTIVE", "SUBMITTED"],
            "SUBMITTED",
            1,
            33.33,
            "a transfer slot in the FTS queue",
            id="the-earliest-active-state",
        ),
        pytest.param(
            ["FINISHED", "ARCHIVING"], "ARCHIVING", 1, 50.0, "migration to tape", id="archiving"
        ),
        pytest.param(["FINISHED", "FAILED"], "FINISHEDDIRTY", 2, 100.0, None, id="some-failed"),
        pytest.param([None, None], None, 0, 0.0, None, id="never-archived"),
        pytest.param(["FINISHED", None], "FINISHED", 1, 50.0, None, id="a-file-never-archived"),
        pytest.param([], None, 0, 100.0, None, id="no-datafiles"),
    ],
)
def test_dataset_status(
    states: list[str | None],
    state: str | None,
    ended: int,
    percentage: float,
    waiting_on: str | None,
) -> None:
    status = dataset_status(files(*states))
    assert status.state == state
    assert (status.files_total, status.files_ended) == (len(states), ended)
    assert status.percentage == percentage
    assert status.complete is (percentage == 100.0)
    assert status.waiting_on == waiting_on


def test_failed_files_name_their_first_reasons_and_the_class() -> None:
    status = dataset_status(files("FAILED", "FINISHED", "FAILED", "FAILED", "FAILED", "CANCELED"))
    assert (status.files_failed, status.files_ended) == (5, 6)
    failure_class, reason = status.failure or ("", "")
    assert failure_class == "user"  # fix the request and archive again
    assert reason == (
        "5 of 6 datafiles failed or were canceled: source not found: f0; "
        "source not found: f2; source not found: f3; ..."
    )
    system = dataset_status(files("FAILED", "FAILED", failure="system error: tape full"))
    assert system.failure == ("system", "2 of 2 datafiles failed or were canceled: tape full")
    assert dataset_status(files("FINISHED")).failure is None


def test_an_investigation_combines_its_datasets() -> None:
    parts = [
        dataset_status(files("FINISHED", "FINISHED")),
        dataset_status(files("ACTIVE", "FAILED", failure="system error: timeout")),
        dataset_status(files(None)),  # a dataset never archived
    ]
    status = combined_status(parts)
    assert status.state == "ACTIVE"
    assert (status.files_total, status.files_ended, status.files_failed) == (5, 3, 1)
    assert status.percentage == 60.0 and not status.complete
    assert status.waiting_on == "the copy"
    assert status.failure == ("system", "1 of 5 datafiles failed or were canceled: timeout")
    assert combined_status([]) == ArchivalStatus(state=None)
    assert combined_status([]).percentage == 100.0


def test_file_states_by_location_or_name() -> None:
    made = files("finished", None)
    made.append(CatalogueDatafile(9, 1, "no-place", None, None, None, {ARCHIVAL_STATE: "ACTIVE"}))
    assert file_states(made) == {"a/f0": "FINISHED", "a/f1": None, "no-place": "ACTIVE"}


def test_state_of_what_records_one() -> None:
    assert state_of(["FINISHED", None, "FAILED"]) == "FINISHEDDIRTY"
    assert state_of([None]) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ABC123-1", ("ABC123", "1")),
        ("RB-2024-0001-7", ("RB-2024-0001", "7")),  # the last '-' splits
    ],
)
def test_split_investigation(text: str, expected: tuple[str, str]) -> None:
    assert split_investigation(text) == expected


@pytest.mark.parametrize("text", ["ABC123", "-1", "ABC123-", ""])
def test_an_investigation_without_name_or_visit_is_refused(text: str) -> None:
    with pytest.raises(InvalidRequestError, match="<name>-<visitId>"):
        split_investigation(text)


def test_parse_failure() -> None:
    assert parse_failure("user error: no such file") == ("user", "no such file")
    assert parse_failure("system error: down") == ("system", "down")
    assert parse_failure("written by hand") == ("system", "written by hand")
