"""A fair restore queue, through the four services: a user past
``restore.max_user_files_in_flight`` is accepted QUEUED (with a place in
``GET /restore-queue``), and the restore starts by itself once the first has ended; the dry
run beforehand tells the numbers the real run then has."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.api_client import icat_root
from tests.e2e.test_restore_repeatable import (
    archive_and_wait,
    datafile_ids,
    ended,
    login,
    request_of,
    restore,
)
from tests.support.stack_fixtures import StackFactory

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)
def test_a_user_over_their_share_waits_queued_and_starts_when_the_first_ends(
    datastore_stack_factory: StackFactory,
) -> None:
    stack = datastore_stack_factory(
        restore={"max_user_files_in_flight": 3, "queue_poll_seconds": 1}
    )
    client = icat_root(stack.icat_url)
    try:
        datasets = []
        for prefix in ("QA", "QB"):
            name = f"{prefix}{uuid.uuid4().hex[:8].upper()}"
            _, dataset_id = archive_and_wait(stack, client, name, files=3)
            datasets.append((dataset_id, datafile_ids(client, dataset_id)))
    finally:
        client.cleanup()
    headers = login(stack)
    (first_id, _), (second_id, second_files) = datasets

    preview = httpx.post(
        f"{stack.gateway_url}/restore?dry_run=true",
        json={"dataset_ids": [first_id]},
        headers=headers,
        timeout=60,
    )
    assert preview.status_code == 200, preview.text
    assert (preview.json()["files"], preview.json()["from_tape"]) == (3, 3)

    first = restore(stack, headers, {"dataset_ids": [first_id]})
    assert first.status_code == 202, first.text
    assert first.json()["state"] == "SUBMITTED"
    assert len(first.json()["job_ids"]) == 1

    answer = restore(stack, headers, {"dataset_ids": [second_id]})
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert (queued["state"], queued["queue_position"], queued["job_ids"]) == ("QUEUED", 1, [])
    assert "restore.max_user_files_in_flight" in queued["waiting_on"]
    listing = httpx.get(f"{stack.gateway_url}/restore-queue", headers=headers, timeout=30)
    assert listing.status_code == 200, listing.text
    assert [e["request_id"] for e in listing.json()["items"]] == [queued["request_id"]]
    assert request_of(stack, headers, queued["request_id"])["state"] == "QUEUED"

    done = ended(stack, headers, first.json()["request_id"])
    assert done["state"] == "FINISHED", done
    # Its turn has come: it starts by itself and restores all three files.
    second = ended(stack, headers, queued["request_id"])
    assert second["state"] == "FINISHED", second
    assert sum(job["files_total"] for job in second["jobs"]) == len(second_files)
    assert (
        httpx.get(f"{stack.gateway_url}/restore-queue", headers=headers, timeout=30).json()["items"]
        == []
    )
