"""GET /datasets/{id}/status|complete|percentage and GET /datasets (by name): ICAT's archival
records, read with the caller's own session (FakeSelections keeps ICAT's rules); FTS is never
asked."""

from __future__ import annotations

from typing import Any

import pytest

from datastore_common.errors import (
    AuthenticationError,
    PeerUnavailableError,
    SessionRefusedError,
)
from tests.unit.gateway.conftest import Gateway

FOLDER = "instrument/20XX/ABC123-1/scan/scan_0000"
LOCATIONS = [f"{FOLDER}/file_000{i}.nxs" for i in range(4)]
IN_FLIGHT = ["FINISHED", "FAILED", "ACTIVE", "SUBMITTED"]
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
def in_flight(gateway: Gateway) -> list[int]:
    """Dataset 10 (scan_0000 of ABC123-1, root's only) being archived: one file on tape, one
    failed (its source was missing), one being copied, one waiting for FTS."""
    ids = gateway.selections.add_dataset(
        1,
        10,
        LOCATIONS,
        first_datafile_id=100,
        readers={"simple/root"},
        investigation="ABC123",
        name="scan_0000",
    )
    for datafile_id, state in zip(ids, IN_FLIGHT, strict=True):
        gateway.selections.datafiles[datafile_id].state = state
    gateway.selections.datafiles[
        ids[1]
    ].failure = f"user error: source not found: root://idc//{LOCATIONS[1]}"
    gateway.transfers.down = True  # never asked: ICAT's records answer
    return ids


class TestStatus:
    def test_state_each_files_state_failure_and_what_it_waits_for(
        self, gateway: Gateway, in_flight: list[int]
    ) -> None:
        code, body = get(gateway, "/datasets/10/status")
        assert code == 200, body
        assert body == {
            "dataset_id": 10,
            "name": "scan_0000",
            "investigation_id": 1,
            "state": "SUBMITTED",
            "files_total": 4,
            "files_ended": 2,
            "files_failed": 1,
            "percentage_complete": 50.0,
            "complete": False,
            "failure": {
                "class": "user",
                "reason": "1 of 4 datafiles failed or were canceled: source not found: "
                f"root://idc//{LOCATIONS[1]}",
            },
            "waiting_on": "a transfer slot in the FTS queue",
            "file_states": dict(zip(LOCATIONS, IN_FLIGHT, strict=True)),
        }
        assert gateway.transfers.status_calls == 0

    def test_list_files_false_is_the_summary_only(
        self, gateway: Gateway, in_flight: list[int]
    ) -> None:
        code, body = get(gateway, "/datasets/10/status?list_files=false")
        assert code == 200
        assert body["file_states"] is None
        assert (body["state"], body["files_total"]) == ("SUBMITTED", 4)

    def test_complete_and_percentage_follow_the_files_to_the_end(
        self, gateway: Gateway, in_flight: list[int]
    ) -> None:
        assert get(gateway, "/datasets/10/complete") == (
            200,
            {"dataset_id": 10, "complete": False},
        )
        assert get(gateway, "/datasets/10/percentage") == (
            200,
            {"dataset_id": 10, "percentage_complete": 50.0},
        )
        for datafile_id in in_flight[2:]:
            gateway.selections.datafiles[datafile_id].state = "FINISHED"
        # One file failed: the dataset ended FINISHEDDIRTY, and is complete at 100 %.
        assert get(gateway, "/datasets/10/complete")[1]["complete"] is True
        assert get(gateway, "/datasets/10/percentage")[1]["percentage_complete"] == 100.0
        body = get(gateway, "/datasets/10/status")[1]
        assert (body["state"], body["waiting_on"]) == ("FINISHEDDIRTY", None)

    def test_a_dataset_without_datafiles_is_complete_and_never_archived(
        self, gateway: Gateway
    ) -> None:
        gateway.selections.add_dataset(2, 20, [], first_datafile_id=200)
        body = get(gateway, "/datasets/20/status")[1]
        assert (body["state"], body["complete"], body["percentage_complete"]) == (
            None,
            True,
            100.0,
        )
        assert body["file_states"] == {}
        assert get(gateway, "/datasets/20/percentage")[1]["percentage_complete"] == 100.0

    def test_a_dataset_never_archived_has_no_state(self, gateway: Gateway) -> None:
        gateway.selections.add_dataset(3, 30, LOCATIONS[:2], first_datafile_id=300, state=None)
        body = get(gateway, "/datasets/30/status")[1]
        assert (body["state"], body["complete"], body["waiting_on"]) == (None, False, None)
        assert body["file_states"] == {LOCATIONS[0]: None, LOCATIONS[1]: None}


class TestRefused:
    @pytest.mark.parametrize("suffix", ["status", "complete", "percentage"])
    def test_a_dataset_icat_does_not_let_you_read_is_404_as_an_unknown_one(
        self, gateway: Gateway, in_flight: list[int], suffix: str
    ) -> None:
        code, body = get(gateway, f"/datasets/10/{suffix}", ALICE)
        assert code == 404
        assert body["detail"] == "not found, or not readable with your ICAT session: Dataset 10"
        assert get(gateway, f"/datasets/99/{suffix}")[0] == 404

    @pytest.mark.parametrize("suffix", ["status", "complete", "percentage"])
    def test_no_session_is_401_and_icat_is_not_asked(
        self, gateway: Gateway, in_flight: list[int], suffix: str
    ) -> None:
        assert gateway.client.get(f"/datasets/10/{suffix}").status_code == 401
        assert gateway.client.get("/datasets?investigation=ABC123-1").status_code == 401
        assert gateway.selections.calls == 0

    def test_not_an_id_is_422(self, gateway: Gateway) -> None:
        code, body = get(gateway, "/datasets/scan_0000/status")
        assert code == 422 and "dataset_id" in body["reason"]

    @pytest.mark.parametrize(
        "path",
        [
            "/datasets/10/status",
            "/investigations/1/percentage",
            "/datasets?investigation=ABC123-1",
            "/investigations?name=ABC123",
        ],
    )
    def test_icat_refusing_your_session_is_401_refusing_ours_503(
        self, gateway: Gateway, in_flight: list[int], path: str
    ) -> None:
        """A session that expired between the gateway's check and the read is the caller's
        (SessionRefusedError: 401); any other refused credential is not (503)."""
        gateway.selections.fail_with = SessionRefusedError("session expired or unknown")
        assert get(gateway, path)[0] == 401
        gateway.selections.fail_with = AuthenticationError("the functional account refused")
        answer = gateway.client.get(path, headers=gateway.bearer())
        assert answer.status_code == 503 and answer.headers["Retry-After"]

    def test_icat_down_is_503(self, gateway: Gateway, in_flight: list[int]) -> None:
        gateway.selections.fail_with = PeerUnavailableError("icat search: connection refused")
        answer = gateway.client.get("/datasets/10/status", headers=gateway.bearer())
        assert answer.status_code == 503 and answer.headers["Retry-After"]


class TestFindByName:
    def test_a_dataset_by_investigation_and_name_then_restored_by_its_id(
        self, gateway: Gateway, in_flight: list[int]
    ) -> None:
        gateway.selections.add_dataset(
            1, 11, [f"{FOLDER[:-1]}1/a.nxs"], first_datafile_id=110, name="scan_0001"
        )
        code, found = look_up(gateway, "/datasets?investigation=ABC123-1&name=scan_0001")
        assert code == 200
        assert found == [
            {
                "id": 11,
                "name": "scan_0001",
                "investigation_id": 1,
                "investigation": "ABC123",
                "visit_id": "1",
                "state": "FINISHED",
            }
        ]
        restored = gateway.client.post(
            "/restore", json={"dataset_ids": [found[0]["id"]]}, headers=gateway.bearer()
        )
        assert restored.status_code == 202, restored.text

    def test_every_dataset_of_the_investigation_without_a_name(
        self, gateway: Gateway, in_flight: list[int]
    ) -> None:
        gateway.selections.add_dataset(1, 11, [], first_datafile_id=110, name="scan_0001")
        found = look_up(gateway, "/datasets?investigation=ABC123-1")[1]
        assert [(d["id"], d["name"], d["state"]) for d in found] == [
            (10, "scan_0000", "SUBMITTED"),
            (11, "scan_0001", None),
        ]

    def test_the_name_is_split_at_the_last_dash(self, gateway: Gateway) -> None:
        gateway.selections.add_dataset(
            5, 50, [], first_datafile_id=500, investigation="RB-2024", visit_id="7"
        )
        found = look_up(gateway, "/datasets?investigation=RB-2024-7")[1]
        assert [(d["id"], d["investigation"], d["visit_id"]) for d in found] == [
            (50, "RB-2024", "7")
        ]

    def test_what_icat_does_not_let_you_read_is_not_found(
        self, gateway: Gateway, in_flight: list[int]
    ) -> None:
        assert look_up(gateway, "/datasets?investigation=ABC123-1", ALICE) == (200, [])
        assert look_up(gateway, "/datasets?investigation=ABC123-2") == (200, [])

    @pytest.mark.parametrize("query", ["", "?investigation=ABC123", "?investigation=ABC123-"])
    def test_an_investigation_not_given_as_name_dash_visit_is_422(
        self, gateway: Gateway, query: str
    ) -> None:
        code, body = get(gateway, f"/datasets{query}")
        assert code == 422
        assert "investigation" in str(body.get("reason", body["detail"]))


class TestOnlyWhatDatastoreWrote:
    """A state anyone but the functional account wrote (ICAT's modId) counts as none."""

    def test_a_forged_file_state_is_none_in_the_status_and_not_ended(
        self, gateway: Gateway, in_flight: list[int]
    ) -> None:
        on_tape = in_flight[0]
        gateway.selections.datafiles[on_tape].state_by = "simple/root"
        code, body = get(gateway, "/datasets/10/status")
        assert code == 200
        assert body["file_states"][LOCATIONS[0]] is None
        assert (body["files_ended"], body["percentage_complete"]) == (1, 25.0)

    def test_a_dataset_finished_by_someone_else_is_not_archived_in_status_or_look_up(
        self, gateway: Gateway
    ) -> None:
        [forged] = gateway.selections.add_dataset(
            2, 20, ["x/0"], first_datafile_id=200, investigation="XYZ", name="scan_0000"
        )
        gateway.selections.datafiles[forged].state_by = "db/alice"
        code, body = get(gateway, "/datasets/20/status")
        assert code == 200
        assert (body["state"], body["complete"], body["file_states"]) == (
            None,
            False,
            {"x/0": None},
        )
        assert look_up(gateway, "/datasets?investigation=XYZ-1")[1][0]["state"] is None

    def test_a_dataset_state_set_by_hand_by_someone_else_is_none(self, gateway: Gateway) -> None:
        gateway.selections.add_dataset(
            2, 20, ["x/0"], first_datafile_id=200, investigation="XYZ", state="ACTIVE"
        )
        dataset = gateway.selections.datasets[20]
        dataset.state, dataset.state_by = "FINISHED", "simple/root"
        assert look_up(gateway, "/datasets?investigation=XYZ-1")[1][0]["state"] is None


class TestPaged:
    @pytest.fixture
    def five(self, gateway: Gateway) -> list[int]:
        for dataset_id in range(30, 35):
            gateway.selections.add_dataset(
                3, dataset_id, [], first_datafile_id=dataset_id * 10, investigation="PAGED"
            )
        return list(range(30, 35))

    def test_pages_by_id_follow_the_cursor_to_the_last(
        self, gateway: Gateway, five: list[int]
    ) -> None:
        seen: list[int] = []
        path = "/datasets?investigation=PAGED-1&limit=2"
        pages = 0
        cursor = None
        while True:
            code, body = get(gateway, path + (f"&cursor={cursor}" if cursor else ""))
            assert code == 200, body
            assert len(body["items"]) <= 2
            seen += [d["id"] for d in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert (seen, pages) == (five, 3)

    def test_fifty_by_default(self, gateway: Gateway) -> None:
        for dataset_id in range(100, 151):
            gateway.selections.add_dataset(
                4, dataset_id, [], first_datafile_id=dataset_id * 10, investigation="MANY"
            )
        code, body = get(gateway, "/datasets?investigation=MANY-1")
        assert (code, len(body["items"])) == (200, 50)
        assert body["next_cursor"]

    @pytest.mark.parametrize("query", ["limit=0", "limit=501", "cursor=not-ours", "cursor=WzFd"])
    def test_a_limit_out_of_range_or_a_cursor_not_ours_is_422(
        self, gateway: Gateway, five: list[int], query: str
    ) -> None:
        code, body = get(gateway, f"/datasets?investigation=PAGED-1&{query}")
        assert code == 422, body

    def test_an_investigations_cursor_is_not_a_datasets_cursor(
        self, gateway: Gateway, five: list[int]
    ) -> None:
        from datastore_gateway.following import encode_lookup_cursor

        cursor = encode_lookup_cursor("investigations", 30)
        code, body = get(gateway, f"/datasets?investigation=PAGED-1&cursor={cursor}")
        assert code == 422
        assert "next_cursor" in body["detail"]

    def test_only_the_facilitys_investigations_are_seen(
        self, gateway: Gateway, five: list[int]
    ) -> None:
        gateway.selections.investigations[3].facility = "another facility"
        assert look_up(gateway, "/datasets?investigation=PAGED-1") == (200, [])


@pytest.mark.parametrize("suffix", ["status", "complete", "percentage", "status?list_files=false"])
def test_the_original_apis_singular_paths_answer_the_same(
    gateway: Gateway, in_flight: list[int], suffix: str
) -> None:
    ours = get(gateway, f"/datasets/10/{suffix}")
    assert ours[0] == 200
    assert get(gateway, f"/dataset/10/{suffix}") == ours
    assert get(gateway, "/dataset/10/status", ALICE)[0] == 404  # the same rules, too
