"""GET /job/{id}[/status|/complete|/percentage]: FTS's view of a job, through the
TransferService port."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from datastore_common.domain.plan import RestoreItem, plan_restore
from datastore_common.messages import PlannedJob
from datastore_common.testing.fake_selections import place_of
from tests.support.factories import seed_body
from tests.unit.gateway.conftest import TEST_VO, Gateway

FOLDER = "instrument/20XX/ABC123-1/scan/scan_0000"


def submitted_job(gateway: Gateway, files: int = 4) -> str:
    locations = [f"{FOLDER}/f{i}.nxs" for i in range(files)]
    items = [RestoreItem(i, 1, loc, place=place_of(loc)) for i, loc in enumerate(locations)]
    [job] = plan_restore(
        str(uuid.uuid4()),
        items,
        tape_archive="root://tape//",
        tape_root_dir="archive/",
        user_data_cache="root://udc//",
        vo=TEST_VO,
        max_files_per_job=1000,
    )
    return submit(gateway, job)


def submit(gateway: Gateway, job: PlannedJob) -> str:
    return asyncio.run(gateway.transfers.submit(job))


def get(gateway: Gateway, path: str, *, auth: bool = True) -> dict:
    headers = gateway.bearer() if auth else {}
    answer = gateway.client.get(path, headers=headers)
    return {"http": answer.status_code, **answer.json()}


def test_job_shows_state_files_and_percentage(gateway: Gateway) -> None:
    job_id = submitted_job(gateway)
    gateway.transfers.set_state(job_id, "ACTIVE", ["FINISHED", "ACTIVE", "STAGING", "SUBMITTED"])
    answer = get(gateway, f"/job/{job_id}")
    assert answer["http"] == 200
    assert answer["job_id"] == job_id and answer["state"] == "ACTIVE"
    assert answer["percentage_complete"] == 25.0
    assert [f["state"] for f in answer["files"]] == ["FINISHED", "ACTIVE", "STAGING", "SUBMITTED"]
    assert answer["files"][0]["source"] == f"root://tape//archive/{FOLDER}/f0.nxs"
    assert answer["files"][0]["destination"] == f"root://udc//{FOLDER}/f0.nxs"


def test_status_follows_the_job_to_finished(gateway: Gateway) -> None:
    job_id = submitted_job(gateway)
    seen = []
    for state in ("STAGING", "SUBMITTED", "ACTIVE", "FINISHED"):
        gateway.transfers.set_state(job_id, state)
        seen.append(get(gateway, f"/job/{job_id}/status"))
    assert [(s["status"], s["complete"]) for s in seen] == [
        ("STAGING", False),
        ("SUBMITTED", False),
        ("ACTIVE", False),
        ("FINISHED", True),
    ]
    assert seen[-1]["job_id"] == job_id and seen[-1]["http"] == 200


@pytest.mark.parametrize(
    ("file_states", "expected"),
    [
        (["SUBMITTED"] * 4, 0.0),
        (["FINISHED", "STAGING", "ACTIVE", "ACTIVE"], 25.0),
        (["FINISHED", "FINISHED", "FAILED", "ACTIVE"], 75.0),  # a failure has ended too
        (["FINISHED", "FAILED", "CANCELED"], 100.0),  # every file ended, not all well
        (["FINISHED"] * 3, 100.0),
    ],
)
def test_percentage_is_ended_files_over_all_files(
    gateway: Gateway, file_states: list[str], expected: float
) -> None:
    job_id = submitted_job(gateway, files=len(file_states))
    gateway.transfers.set_state(job_id, "ACTIVE", file_states)
    answer = get(gateway, f"/job/{job_id}/percentage")
    assert answer == {"http": 200, "job_id": job_id, "percentage_complete": expected}
    assert get(gateway, f"/job/{job_id}")["percentage_complete"] == expected


def test_a_job_with_failures_reaches_100_and_is_complete(gateway: Gateway) -> None:
    job_id = submitted_job(gateway)
    gateway.transfers.set_state(
        job_id, "FINISHEDDIRTY", ["FINISHED", ("FAILED", "no such file"), "FINISHED", "FINISHED"]
    )
    assert get(gateway, f"/job/{job_id}/percentage")["percentage_complete"] == 100.0
    assert get(gateway, f"/job/{job_id}/complete") == {
        "http": 200,
        "job_id": job_id,
        "complete": True,
    }


def test_percentage_of_a_job_without_files_is_100(gateway: Gateway) -> None:
    job_id = submitted_job(gateway, files=1)
    progress = gateway.transfers.states[job_id]
    gateway.transfers.states[job_id] = type(progress)(job_id, "SUBMITTED", None, ())
    assert get(gateway, f"/job/{job_id}/percentage")["percentage_complete"] == 100.0
    assert get(gateway, f"/job/{job_id}")["percentage_complete"] == 100.0


@pytest.mark.parametrize(
    ("state", "complete"),
    [
        ("STAGING", False),
        ("SUBMITTED", False),
        ("ACTIVE", False),
        ("ARCHIVING", False),
        ("FINISHED", True),
        ("FINISHEDDIRTY", True),
        ("FAILED", True),
        ("CANCELED", True),
    ],
)
def test_complete_once_the_job_is_final(gateway: Gateway, state: str, complete: bool) -> None:
    job_id = submitted_job(gateway)
    gateway.transfers.set_state(job_id, state)
    answer = get(gateway, f"/job/{job_id}/complete")
    assert answer == {"http": 200, "job_id": job_id, "complete": complete}


def test_unknown_job_is_404_with_a_reason(gateway: Gateway) -> None:
    unknown = str(uuid.uuid4())
    for path in (
        f"/job/{unknown}",
        f"/job/{unknown}/status",
        f"/job/{unknown}/complete",
        f"/job/{unknown}/percentage",
    ):
        answer = get(gateway, path)
        assert answer["http"] == 404
        assert unknown in answer["detail"]


def test_something_that_is_not_a_job_id_is_404_and_fts_is_not_asked(gateway: Gateway) -> None:
    job_id = submitted_job(gateway)
    answer = get(gateway, f"/job/{job_id},{job_id}/status")
    assert answer["http"] == 404
    assert "not an FTS job id" in answer["detail"]
    assert gateway.transfers.status_calls == 0


def test_fts_down_is_503(gateway: Gateway) -> None:
    job_id = submitted_job(gateway)
    gateway.transfers.down = True
    answer = get(gateway, f"/job/{job_id}/status")
    assert answer["http"] == 503 and "fts is down" in answer["detail"]


def test_job_endpoints_need_a_session(gateway: Gateway) -> None:
    job_id = submitted_job(gateway)
    for suffix in ("", "/status", "/complete", "/percentage"):
        assert get(gateway, f"/job/{job_id}{suffix}", auth=False)["http"] == 401
    assert gateway.transfers.status_calls == 0


# ---------------------------------------------------------------- whose job it is

ALICE = {"username": "alice", "password": "alice-pw", "auth": "db"}  # not an admin
# Every job route: the owner check holds for each.
JOB_PATHS = ("/job/{}", "/job/{}/status", "/job/{}/percentage", "/job/{}/complete")


def on_fts(gateway: Gateway) -> list[str]:
    """Submit every job the gateway published to the fake FTS; their ids."""
    return [
        submit(gateway, job)
        for published in gateway.publisher.published
        for job in getattr(published.data, "jobs", [])
    ]


def roots_archive(gateway: Gateway) -> str:
    answer = gateway.client.post("/archive", json=seed_body(), headers=gateway.bearer())
    assert answer.status_code == 202, answer.text
    [job_id] = on_fts(gateway)
    return job_id


def alices_restore(gateway: Gateway) -> str:
    gateway.selections.add_dataset(
        3, 30, [f"{FOLDER}/f{i}.nxs" for i in range(2)], first_datafile_id=300,
        readers={"db/alice"},
    )  # fmt: skip
    answer = gateway.client.post(
        "/restore", json={"dataset_ids": [30]}, headers=gateway.bearer(**ALICE)
    )
    assert answer.status_code == 202, answer.text
    [job_id] = on_fts(gateway)
    return job_id


def answers(gateway: Gateway, job_id: str, **who: str) -> list[tuple[int, Any]]:
    headers = gateway.bearer(**who)
    return [
        (a.status_code, a.json())
        for a in (gateway.client.get(p.format(job_id), headers=headers) for p in JOB_PATHS)
    ]


def test_another_users_job_is_404_exactly_like_a_job_that_does_not_exist(
    gateway: Gateway,
) -> None:
    job_id = roots_archive(gateway)
    calls = gateway.transfers.status_calls
    nowhere = str(uuid.uuid4())
    refused = answers(gateway, job_id, **ALICE)
    unknown = answers(gateway, nowhere, **ALICE)
    assert [code for code, _ in refused] == [404] * len(JOB_PATHS)
    assert [body["detail"].replace(job_id, "<id>") for _, body in refused] == [
        body["detail"].replace(nowhere, "<id>") for _, body in unknown
    ]
    assert gateway.transfers.status_calls == calls  # FTS is not even asked
    assert [code for code, _ in answers(gateway, job_id)] == [200] * len(
        JOB_PATHS
    )  # root: the owner


def test_a_job_the_ledger_does_not_know_is_404_for_users_and_shown_to_admins(
    gateway: Gateway,
) -> None:
    job_id = submitted_job(gateway)  # straight to FTS: no request of anyone's in the ledger
    assert [code for code, _ in answers(gateway, job_id, **ALICE)] == [404] * len(JOB_PATHS)
    assert [code for code, _ in answers(gateway, job_id)] == [200] * len(
        JOB_PATHS
    )  # root: an admin


def test_the_owner_and_admins_see_a_users_job(gateway: Gateway) -> None:
    job_id = alices_restore(gateway)
    gateway.transfers.set_state(job_id, "ACTIVE", ["FINISHED", "ACTIVE"])
    mine = answers(gateway, job_id, **ALICE)
    assert [code for code, _ in mine] == [200] * len(JOB_PATHS)
    assert mine[2][1]["percentage_complete"] == 50.0
    assert gateway.settings.gateway.admins == ("simple/root",)
    assert [code for code, _ in answers(gateway, job_id)] == [200] * len(JOB_PATHS)


def test_the_ledger_unavailable_is_503_for_users(gateway: Gateway) -> None:
    job_id = roots_archive(gateway)
    gateway.app.state.gateway.ledger = None
    assert {code for code, _ in answers(gateway, job_id, **ALICE)} == {503}
