"""GET /investigations/{id}/status|complete|percentage and GET /investigations (by name):
an investigation's archival over its datasets, read with the caller's own session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.gateway.conftest import Gateway

ALICE = {"username": "alice", "password": "alice-pw", "auth": "db"}


def get(gateway: Gateway, path: str, who: dict[str, str] | None = None) -> tuple[int, Any]:
    answer = gateway.client.get(path, headers=gateway.bearer(**(who or {})))
    return answer.status_code, answer.json()


def look_up(gateway: Gateway, path: str, who: dict[str, str] | None = None) -> tuple[int, Any]:
    """A look-up's first page: (status, its items) when 200, and it is the last page."""
    code, body = get(gateway, path, who)
    if code != 200:
        return code, body
    assert body["next_cursor"] is None
    return code, body["items"]


@pytest.fixture
def investigation(gateway: Gateway) -> int:
    """Investigation 1 (ABC123, visit 1, root's only): scan_0000 on tape, scan_0001 being
    copied with a failure, scan_0002 never archived."""
    selections = gateway.selections
    root = {"simple/root"}
    selections.add_dataset(
        1, 10, ["a/0", "a/1"], first_datafile_id=100, readers=root, investigation="ABC123"
    )
    selections.add_dataset(1, 11, ["b/0", "b/1", "b/2"], first_datafile_id=110, state="ACTIVE")
    selections.datafiles[110].state = "FAILED"
    selections.datafiles[110].failure = "system error: TRANSFER timeout"
    selections.add_dataset(1, 12, ["c/0"], first_datafile_id=120, state=None)
    gateway.transfers.down = True  # never asked
    return 1


def test_status_over_all_datasets_and_dataset_by_dataset(
    gateway: Gateway, investigation: int
) -> None:
    code, body = get(gateway, f"/investigations/{investigation}/status")
    assert code == 200, body
    datasets = body.pop("datasets")
    assert body == {
        "investigation_id": 1,
        "name": "ABC123",
        "visit_id": "1",
        "state": "ACTIVE",
        "files_total": 6,
        "files_ended": 3,
        "files_failed": 1,
        "percentage_complete": 50.0,
        "complete": False,
        "failure": {
            "class": "system",
            "reason": "1 of 6 datafiles failed or were canceled: TRANSFER timeout",
        },
        "waiting_on": "the copy",
    }
    assert [(d["dataset_id"], d["state"], d["percentage_complete"]) for d in datasets] == [
        (10, "FINISHED", 100.0),
        (11, "ACTIVE", 33.33),
        (12, None, 0.0),
    ]
    assert {d["file_states"] for d in datasets} == {None}
    assert datasets[1] == get(gateway, "/datasets/11/status?list_files=false")[1]
    assert gateway.transfers.status_calls == 0


def test_complete_and_percentage(gateway: Gateway, investigation: int) -> None:
    assert get(gateway, "/investigations/1/complete") == (
        200,
        {"investigation_id": 1, "complete": False},
    )
    assert get(gateway, "/investigations/1/percentage") == (
        200,
        {"investigation_id": 1, "percentage_complete": 50.0},
    )
    for datafile in gateway.selections.datafiles.values():
        if datafile.state in ("ACTIVE", None):
            datafile.state = "FINISHED"
    assert get(gateway, "/investigations/1/complete")[1]["complete"] is True
    assert get(gateway, "/investigations/1/percentage")[1]["percentage_complete"] == 100.0
    assert get(gateway, "/investigations/1/status")[1]["state"] == "FINISHEDDIRTY"


def test_an_investigation_without_datasets_is_complete(gateway: Gateway) -> None:
    gateway.selections.add_dataset(2, 20, [], first_datafile_id=200)
    del gateway.selections.datasets[20]
    body = get(gateway, "/investigations/2/status")[1]
    assert (body["state"], body["complete"], body["percentage_complete"], body["datasets"]) == (
        None,
        True,
        100.0,
        [],
    )


@pytest.mark.parametrize("suffix", ["status", "complete", "percentage"])
def test_one_icat_does_not_let_you_read_is_404_as_an_unknown_one(
    gateway: Gateway, investigation: int, suffix: str
) -> None:
    code, body = get(gateway, f"/investigations/1/{suffix}", ALICE)
    assert code == 404
    assert body["detail"] == "not found, or not readable with your ICAT session: Investigation 1"
    assert get(gateway, f"/investigations/99/{suffix}")[0] == 404
    assert gateway.client.get(f"/investigations/1/{suffix}").status_code == 401


class TestFindByName:
    def test_by_name_and_visit_then_restored_by_its_id(
        self, gateway: Gateway, investigation: int
    ) -> None:
        # Where Datastore archived it: a restore refuses any other location (422).
        location = "instrument/20XX/ABC123-2/scan/scan_0000/d.nxs"
        gateway.selections.add_dataset(2, 20, [location], first_datafile_id=200)
        code, found = look_up(gateway, "/investigations?name=ABC123&visit_id=2")
        assert code == 200
        assert found == [
            {"id": 2, "name": "ABC123", "visit_id": "2", "title": "Title", "state": "FINISHED"}
        ]
        restored = gateway.client.post(
            "/restore", json={"investigation_ids": [found[0]["id"]]}, headers=gateway.bearer()
        )
        assert restored.status_code == 202, restored.text

    def test_every_visit_without_a_visit_id_with_its_datasets_states(
        self, gateway: Gateway, investigation: int
    ) -> None:
        gateway.selections.add_dataset(
            2, 20, ["d/0"], first_datafile_id=200, investigation="ABC123", visit_id="2"
        )
        found = look_up(gateway, "/investigations?name=ABC123")[1]
        # Investigation 1's datasets: FINISHED, ACTIVE (one file FAILED), none recorded.
        assert [(i["id"], i["visit_id"], i["state"]) for i in found] == [
            (1, "1", "ACTIVE"),
            (2, "2", "FINISHED"),
        ]

    def test_what_icat_does_not_let_you_read_is_not_found(
        self, gateway: Gateway, investigation: int
    ) -> None:
        assert look_up(gateway, "/investigations?name=ABC123", ALICE) == (200, [])
        assert look_up(gateway, "/investigations?name=ABC12") == (200, [])

    def test_a_name_is_needed(self, gateway: Gateway) -> None:
        code, body = get(gateway, "/investigations")
        assert code == 422 and "query.name" in body["reason"]


class TestOnlyWhatDatastoreWrote:
    def test_states_someone_else_wrote_count_as_none(
        self, gateway: Gateway, investigation: int
    ) -> None:
        # scan_0000's two files FINISHED, but by hand: scan_0001 alone is left (ACTIVE).
        for datafile_id in (100, 101):
            gateway.selections.datafiles[datafile_id].state_by = "simple/root"
        code, body = get(gateway, "/investigations/1/status")
        assert code == 200
        assert body["datasets"][0]["state"] is None
        assert body["files_ended"] == 1  # the FAILED one of scan_0001
        [found] = look_up(gateway, "/investigations?name=ABC123")[1]
        assert found["state"] == "ACTIVE"
        for datafile_id in (110, 111, 112):
            gateway.selections.datafiles[datafile_id].state_by = "db/alice"
        [found] = look_up(gateway, "/investigations?name=ABC123")[1]
        assert found["state"] is None


class TestPaged:
    def test_visits_a_page_at_a_time_of_the_facility_only(self, gateway: Gateway) -> None:
        for visit in range(1, 6):
            gateway.selections.add_dataset(
                visit,
                visit * 10,
                [],
                first_datafile_id=visit * 100,
                investigation="PAGED",
                visit_id=str(visit),
            )
        gateway.selections.investigations[5].facility = "another facility"
        code, first = get(gateway, "/investigations?name=PAGED&limit=3")
        assert code == 200
        assert [i["visit_id"] for i in first["items"]] == ["1", "2", "3"]
        code, rest = get(
            gateway, f"/investigations?name=PAGED&limit=3&cursor={first['next_cursor']}"
        )
        assert (code, [i["visit_id"] for i in rest["items"]], rest["next_cursor"]) == (
            200,
            ["4"],
            None,
        )

    @pytest.mark.parametrize("query", ["limit=0", "limit=501", "cursor=%%%"])
    def test_a_limit_out_of_range_or_a_cursor_not_ours_is_422(
        self, gateway: Gateway, query: str
    ) -> None:
        assert get(gateway, f"/investigations?name=PAGED&{query}")[0] == 422
