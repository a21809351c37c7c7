"""Data the original Datastore API archived, as our routes show and restore it: its states
count when ICAT says our functional account wrote them (the same account), or one listed in
``icat.trusted_writers``; anyone else's never do."""

from __future__ import annotations

from typing import Any

import pytest

from datastore_common.messages import RestoreRequested
from tests.unit.gateway.conftest import Gateway

FOLDER = "instrument/20XX/ABC123-1/scan/scan_0000"
LOCATIONS = [f"{FOLDER}/file_000{i}.nxs" for i in range(3)]
#: The original's functional account when it was another than ours.
ORIGINAL = "simple/datastore-api"


def archived_by_the_original(gateway: Gateway, writer: str, states: list[str]) -> list[int]:
    """Dataset 10 of ABC123-1 as the original left it: its own "Archival state" (the
    aggregate its StateCounter wrote) and each file's FTS state, "Archival ids" deleted."""
    ids = gateway.selections.add_dataset(
        1, 10, LOCATIONS, first_datafile_id=100, investigation="ABC123", name="scan_0000"
    )
    for datafile_id, state in zip(ids, states, strict=True):
        gateway.selections.datafiles[datafile_id].state = state
        gateway.selections.datafiles[datafile_id].state_by = writer
    dataset = gateway.selections.datasets[10]
    dataset.state = "FINISHED" if set(states) == {"FINISHED"} else "READY"
    dataset.state_by = writer
    return ids


def get(gateway: Gateway, path: str) -> tuple[int, Any]:
    answer = gateway.client.get(path, headers=gateway.bearer())
    return answer.status_code, answer.json()


def restore(gateway: Gateway) -> tuple[int, Any]:
    answer = gateway.client.post("/restore", json={"dataset_ids": [10]}, headers=gateway.bearer())
    return answer.status_code, answer.json()


@pytest.fixture
def trusting(gateway: Gateway) -> Gateway:
    """The gateway of a facility whose original API wrote as another ICAT account."""
    gateway.selections.trusted_writers = (ORIGINAL,)
    return gateway


class TestTheSameAccount:
    def test_finished_shows_finished_and_restores(self, gateway: Gateway) -> None:
        archived_by_the_original(gateway, gateway.selections.archival_writer, ["FINISHED"] * 3)

        code, status = get(gateway, "/datasets/10/status")
        assert code == 200, status
        assert (status["state"], status["complete"], status["failure"]) == (
            "FINISHED",
            True,
            None,
        )
        assert status["file_states"] == dict.fromkeys(LOCATIONS, "FINISHED")
        code, found = get(gateway, "/datasets?investigation=ABC123-1&name=scan_0000")
        assert code == 200 and [d["state"] for d in found["items"]] == ["FINISHED"]

        code, accepted = restore(gateway)
        assert code == 202, accepted
        [published] = gateway.publisher.published
        assert isinstance(published.data, RestoreRequested)
        assert sorted(t.datafile_id for j in published.data.jobs for t in j.transfers) == [
            100,
            101,
            102,
        ]

    def test_its_states_in_flight_show_as_ours(self, gateway: Gateway) -> None:
        archived_by_the_original(
            gateway, gateway.selections.archival_writer, ["FINISHED", "ARCHIVING", "READY"]
        )
        code, status = get(gateway, "/datasets/10/status")
        assert code == 200, status
        assert (status["state"], status["files_ended"], status["complete"]) == ("READY", 1, False)
        code, refused = restore(gateway)
        assert code == 409
        assert "101 (ARCHIVING)" in refused["detail"] and "102 (READY)" in refused["detail"]

    def test_its_new_and_defunct_files_count_as_submitted_and_failed(
        self, gateway: Gateway
    ) -> None:
        archived_by_the_original(
            gateway, gateway.selections.archival_writer, ["FINISHED", "DEFUNCT", "NEW"]
        )
        code, status = get(gateway, "/datasets/10/status")
        assert code == 200, status
        assert (status["state"], status["files_ended"], status["files_failed"]) == (
            "SUBMITTED",
            2,
            1,
        )


class TestAnotherAccount:
    def test_not_trusted_it_is_never_archived_and_not_restored(self, gateway: Gateway) -> None:
        archived_by_the_original(gateway, ORIGINAL, ["FINISHED"] * 3)

        code, status = get(gateway, "/datasets/10/status")
        assert code == 200 and status["state"] is None
        code, found = get(gateway, "/datasets?investigation=ABC123-1&name=scan_0000")
        assert [d["state"] for d in found["items"]] == [None]
        code, refused = restore(gateway)
        assert code == 409
        assert f"written by {ORIGINAL!r}" in refused["detail"]
        assert gateway.publisher.published == []

    def test_listed_in_trusted_writers_it_restores(self, trusting: Gateway) -> None:
        archived_by_the_original(trusting, ORIGINAL, ["FINISHED"] * 3)

        code, status = get(trusting, "/datasets/10/status")
        assert code == 200 and status["state"] == "FINISHED"
        code, accepted = restore(trusting)
        assert code == 202, accepted

    def test_a_users_state_is_still_not_counted(self, trusting: Gateway) -> None:
        archived_by_the_original(trusting, "db/alice", ["FINISHED"] * 3)
        code, refused = restore(trusting)
        assert code == 409 and "'db/alice'" in refused["detail"]
