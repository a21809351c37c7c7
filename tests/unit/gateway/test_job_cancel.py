"""DELETE /job/{id}: the original API's cancel, for restore jobs of one's own requests."""

from __future__ import annotations

import uuid

from tests.unit.gateway.conftest import Gateway
from tests.unit.gateway.test_jobs import ALICE, alices_restore, roots_archive, submitted_job


def cancel(gateway: Gateway, job_id: str, **who: str) -> tuple[int, dict[str, object]]:
    answer = gateway.client.delete(f"/job/{job_id}", headers=gateway.bearer(**who))
    return answer.status_code, answer.json()


def test_the_owner_cancels_a_restore_job_and_fts_cancels_what_had_not_ended(
    gateway: Gateway,
) -> None:
    job_id = alices_restore(gateway)
    gateway.transfers.set_state(job_id, "ACTIVE", ["FINISHED", "ACTIVE"])
    code, body = cancel(gateway, job_id, **ALICE)
    assert (code, body) == (200, {"job_id": job_id, "state": "CANCELED"})
    progress = gateway.transfers.states[job_id]
    assert [f.state for f in progress.files] == ["FINISHED", "CANCELED"]


def test_an_admin_cancels_a_users_restore_job(gateway: Gateway) -> None:
    job_id = alices_restore(gateway)
    assert cancel(gateway, job_id)[0] == 200


def test_an_archive_job_is_refused_with_409_and_fts_is_not_asked(gateway: Gateway) -> None:
    job_id = roots_archive(gateway)
    gateway.transfers.set_state(job_id, "ACTIVE", ["ACTIVE"] * 4)
    code, body = cancel(gateway, job_id)
    assert code == 409
    assert "archive jobs cannot be cancelled" in str(body["detail"])
    assert gateway.transfers.states[job_id].state == "ACTIVE"


def test_another_users_job_is_404_before_its_kind_is_told(gateway: Gateway) -> None:
    job_id = roots_archive(gateway)
    code, body = cancel(gateway, job_id, **ALICE)
    assert (code, body) == (404, {"detail": f"no job {job_id} of yours"})


def test_a_job_the_ledger_does_not_know_is_404_even_to_admins(gateway: Gateway) -> None:
    job_id = submitted_job(gateway)  # straight to FTS: not a job of this Datastore
    assert cancel(gateway, job_id)[0] == 404
    assert cancel(gateway, str(uuid.uuid4()))[0] == 404
    assert cancel(gateway, "not-a-job")[0] == 404


def test_cancel_needs_a_session(gateway: Gateway) -> None:
    job_id = alices_restore(gateway)
    assert gateway.client.delete(f"/job/{job_id}").status_code == 401
