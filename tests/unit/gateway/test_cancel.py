"""DELETE /requests/{id} and DELETE /job/{id}: a restore is cancelled in FTS by its owner or an
admin; an archive only by an admin forcing it; others hear 404; an ended request 409."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from datastore_common.messages import FileState, TransferStatus, wrap
from datastore_gateway.ledger_feed import follow
from tests.support.factories import seed_body
from tests.unit.gateway.conftest import Gateway, build_gateway
from tests.unit.gateway.test_jobs import ALICE, alices_restore, on_fts, roots_archive

BOB = {"username": "bob", "password": "bob-pw", "auth": "db"}  # neither owner nor admin


def request_of(gateway: Gateway, job_id: str) -> str:
    [published] = [p for p in gateway.publisher.published if job_id in str(p.data)]
    request_id: str = published.data.request_id  # type: ignore[attr-defined]
    return request_id


def delete(gateway: Gateway, path: str, who: dict[str, str] | None = None) -> tuple[int, Any]:
    gateway.sessions.users["db/bob"] = "bob-pw"
    answer = gateway.client.delete(path, headers=gateway.bearer(**(who or {})))
    return answer.status_code, answer.json()


def test_the_owner_cancels_a_restore_and_fts_cancels_its_files(gateway: Gateway) -> None:
    job_id = alices_restore(gateway)
    gateway.transfers.set_state(job_id, "ACTIVE", ["FINISHED", "ACTIVE"])
    request_id = request_of(gateway, job_id)
    code, body = delete(gateway, f"/requests/{request_id}", ALICE)
    assert code == 202, body
    assert body == {"request_id": request_id, "canceled_job_ids": [job_id], "pending_job_ids": []}
    job = gateway.transfers.states[job_id]
    assert job.state == "CANCELED"
    assert [f.state for f in job.files] == ["FINISHED", "CANCELED"]  # done files stay done


def test_another_user_hears_404_and_nothing_is_cancelled(gateway: Gateway) -> None:
    job_id = alices_restore(gateway)
    request_id = request_of(gateway, job_id)
    code, body = delete(gateway, f"/requests/{request_id}", BOB)
    nowhere_code, _ = delete(gateway, f"/requests/{uuid.uuid4()}", BOB)
    assert (code, nowhere_code) == (404, 404)
    assert body["detail"].replace(request_id, "<id>") == "no request <id> of yours in the ledger"
    assert gateway.transfers.states[job_id].state == "SUBMITTED"
    code, body = delete(gateway, f"/job/{job_id}", BOB)
    assert code == 404 and gateway.transfers.states[job_id].state == "SUBMITTED"


def test_an_admin_cancels_a_users_restore(gateway: Gateway) -> None:
    job_id = alices_restore(gateway)
    code, _ = delete(gateway, f"/requests/{request_of(gateway, job_id)}")  # root: an admin
    assert code == 202 and gateway.transfers.states[job_id].state == "CANCELED"


def test_an_ended_request_is_409_with_its_state_and_twice_is_harmless(gateway: Gateway) -> None:
    job_id = alices_restore(gateway)
    request_id = request_of(gateway, job_id)
    assert delete(gateway, f"/requests/{request_id}", ALICE)[0] == 202
    # The poller has not reported yet: the ledger still shows it running; FTS answers the
    # ended job unchanged.
    assert delete(gateway, f"/requests/{request_id}", ALICE)[0] == 202
    gateway.transfers.set_state(job_id, "FINISHED")
    code, body = delete(gateway, f"/job/{job_id}", ALICE)
    assert code == 409 and "has ended FINISHED" in body["detail"]


def test_a_restore_job_is_cancelled_by_its_owner(gateway: Gateway) -> None:
    job_id = alices_restore(gateway)
    code, body = delete(gateway, f"/job/{job_id}", ALICE)
    assert code == 202 and body["canceled_job_ids"] == [job_id]
    assert gateway.transfers.states[job_id].state == "CANCELED"


def test_an_archive_is_refused_409_unless_an_admin_forces_it(tmp_path: Path) -> None:
    gateway = build_gateway(tmp_path, archivers=("simple/root", "db/alice"))
    with gateway.client:
        answer = gateway.client.post("/archive", json=seed_body(), headers=gateway.bearer(**ALICE))
        assert answer.status_code == 202, answer.text
        [job_id] = on_fts(gateway)
        request_id = request_of(gateway, job_id)
        # Its owner, not an admin: force counts for nothing.
        code, body = delete(gateway, f"/requests/{request_id}?force=true", ALICE)
        assert code == 409 and "only an admin may force it" in body["detail"]
        code, body = delete(gateway, f"/job/{job_id}?force=true", ALICE)
        assert code == 409 and gateway.transfers.states[job_id].state == "SUBMITTED"


def test_an_admin_cancels_an_archive_only_with_force(gateway: Gateway) -> None:
    job_id = roots_archive(gateway)
    request_id = request_of(gateway, job_id)
    code, body = delete(gateway, f"/requests/{request_id}")
    assert code == 409 and "force=true" in body["detail"]
    code, body = delete(gateway, f"/job/{job_id}")
    assert code == 409 and "archive job cannot be cancelled" in body["detail"]
    assert gateway.transfers.states[job_id].state == "SUBMITTED"
    code, body = delete(gateway, f"/requests/{request_id}?force=true")
    assert code == 202 and body["canceled_job_ids"] == [job_id]
    assert gateway.transfers.states[job_id].state == "CANCELED"


def test_a_job_fts_does_not_hold_yet_is_named_pending(gateway: Gateway) -> None:
    gateway.selections.add_dataset(
        3, 30, ["instrument/20XX/ABC123-1/scan/scan_0000/f.nxs"], first_datafile_id=300,
        readers={"db/alice"},
    )  # fmt: skip
    answer = gateway.client.post(
        "/restore", json={"dataset_ids": [30]}, headers=gateway.bearer(**ALICE)
    )
    accepted = answer.json()
    code, body = delete(gateway, f"/requests/{accepted['request_id']}", ALICE)
    assert code == 202
    assert body["canceled_job_ids"] == [] and body["pending_job_ids"] == accepted["job_ids"]


def test_cancel_needs_a_session(gateway: Gateway) -> None:
    assert gateway.client.delete(f"/requests/{uuid.uuid4()}").status_code == 401
    assert gateway.client.delete(f"/job/{uuid.uuid4()}").status_code == 401


async def _report(gateway: Gateway, request_id: str, job_id: str) -> None:
    """What the status-poller publishes once FTS says the job is CANCELED."""
    job = gateway.transfers.states[job_id]
    status = TransferStatus(
        request_id=request_id,
        kind="restore",
        job_id=job_id,
        fts_endpoint=gateway.transfers.endpoint,
        job_state=job.state,
        reason=job.reason,
        files=[
            FileState(source=f.source, destination=f.destination, state=f.state, reason=f.reason)
            for f in job.files
        ],
    )
    ledger = gateway.app.state.gateway.ledger
    await follow(wrap(status, source="status-poller", correlation_id=request_id), ledger=ledger)


def test_the_request_ends_canceled_in_the_ledger_once_reported(gateway: Gateway) -> None:
    job_id = alices_restore(gateway)
    gateway.transfers.set_state(job_id, "ACTIVE", ["FINISHED", "ACTIVE"])
    request_id = request_of(gateway, job_id)
    assert delete(gateway, f"/requests/{request_id}", ALICE)[0] == 202
    asyncio.run(_report(gateway, request_id, job_id))
    shown = gateway.client.get(f"/requests/{request_id}", headers=gateway.bearer(**ALICE)).json()
    assert shown["state"] == "CANCELED"
    assert shown["jobs"][0]["files_done"] == 1 and shown["jobs"][0]["files_failed"] == 1
    code, body = delete(gateway, f"/requests/{request_id}", ALICE)
    assert code == 409 and "has ended CANCELED" in body["detail"]
