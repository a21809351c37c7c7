"""GET /job/{id}[/status|/complete|/percentage]: FTS's view of a job, through the
TransferService port."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from datastore_common.domain.plan import RestoreItem, plan_restore
from datastore_common.messages import PlannedJob
from tests.unit.gateway.conftest import TEST_VO, Gateway


def submitted_job(gateway: Gateway, files: int = 4) -> str:
    items = [RestoreItem(i, 1, f"a/b/f{i}.nxs") for i in range(files)]
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
    assert answer["files"][0]["source"] == "root://tape//archive/a/b/f0.nxs"
    assert answer["files"][0]["destination"] == "root://udc//a/b/f0.nxs"


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
