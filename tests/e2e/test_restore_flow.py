"""The seed's restore half through the four services: archive, then restore to the user cache."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import icat
import pytest

from tests.e2e.api_client import (
    ARCHIVAL_STATE,
    archival_parameters,
    dataset_folder,
    icat_root,
    login,
    wait_for,
    write_idc_files,
    xrootd_adler32,
)
from tests.support.factories import seed_body
from tests.support.stack_fixtures import DatastoreStack

pytestmark = pytest.mark.e2e

FINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}


@pytest.fixture
def icat_client(datastore_stack: DatastoreStack) -> Iterator[Any]:
    """Root's python-icat client, logged out while the emulator still runs."""
    client = icat_root(datastore_stack.icat_url)
    yield client
    client.cleanup()


def archived_dataset(
    stack: DatastoreStack, client: Any, files: int = 3
) -> tuple[str, dict[str, str], int]:
    """Archive a fresh seed investigation and wait for FINISHED: (name, sums, dataset id)."""
    settings = stack.settings
    name = f"RST{uuid.uuid4().hex[:8].upper()}"
    names = [f"file_{i:04d}.nxs" for i in range(files)]
    sums = write_idc_files(settings.instrument_data_cache, dataset_folder(name), names)
    answer = httpx.post(
        f"{stack.gateway_url}/archive",
        json=seed_body(name, files=files),
        headers=login(stack),
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    wait_for(
        lambda: (
            archival_parameters(client, name).get("Dataset:scan_0000", {}).get(ARCHIVAL_STATE)
            in FINAL
        ),
        180,
        "the archive to end",
    )
    params = archival_parameters(client, name)
    assert params["Dataset:scan_0000"][ARCHIVAL_STATE] == "FINISHED", params
    [dataset_id] = client.search(
        f"SELECT d.id FROM Dataset d JOIN d.investigation i WHERE i.name = '{name}'"
    )
    return name, sums, int(dataset_id)


@pytest.mark.timeout(600)
def test_seed_restore_brings_archived_files_to_the_user_data_cache(
    datastore_stack: DatastoreStack, icat_client: Any
) -> None:
    stack = datastore_stack
    settings = stack.settings
    client = icat_client
    name, sums, dataset_id = archived_dataset(stack, client)
    before = archival_parameters(client, name)

    headers = login(stack)
    answer = httpx.post(
        f"{stack.gateway_url}/restore",
        json={"investigation_ids": [], "dataset_ids": [dataset_id], "datafile_ids": []},
        headers=headers,
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    [job_id] = answer.json()["job_ids"]

    states: list[str] = []

    def job_state() -> str | None:
        status = httpx.get(f"{stack.gateway_url}/job/{job_id}/status", headers=headers, timeout=30)
        if status.status_code == 404:  # not submitted to FTS yet
            return None
        assert status.status_code == 200, status.text
        state: str = status.json()["status"]
        if not states or states[-1] != state:
            states.append(state)
        return state if status.json()["complete"] else None

    final = wait_for(job_state, 300, f"restore job {job_id} to end", interval=0.5)
    stack.assert_running()
    assert final == "FINISHED", (
        states,
        httpx.get(f"{stack.gateway_url}/job/{job_id}", headers=headers).text,
    )
    percentage = httpx.get(
        f"{stack.gateway_url}/job/{job_id}/percentage", headers=headers, timeout=30
    )
    assert percentage.json()["percentage_complete"] == 100.0
    job = httpx.get(f"{stack.gateway_url}/job/{job_id}", headers=headers, timeout=30).json()
    assert {f["state"] for f in job["files"]} == {"FINISHED"}
    assert len(job["files"]) == len(sums)

    # Same relative path on the user data cache, same bytes.
    folder = dataset_folder(name)
    for file_name, adler in sums.items():
        assert xrootd_adler32(settings.user_data_cache, f"/{folder}/{file_name}") == adler
    # A restore changes nothing in ICAT.
    assert archival_parameters(client, name) == before


def unreadable_dataset(client: Any) -> int:
    """A new dataset, in a new investigation with no members: only root and the functional
    account may read it; db/alice may not."""
    facility = client.assertedSearch("SELECT o FROM Facility o WHERE o.name = 'facility'")[0]
    kind = client.assertedSearch("SELECT o FROM InvestigationType o WHERE o.name = 'type'")[0]
    scan = client.assertedSearch("SELECT o FROM DatasetType o WHERE o.name = 'scan'")[0]
    name = f"PRV{uuid.uuid4().hex[:8].upper()}"
    investigation = client.new(
        "Investigation", name=name, visitId="1", title=name, facility=facility, type=kind
    )
    investigation.create()
    dataset = client.new(
        "Dataset", name="scan_0000", complete=True, investigation=investigation, type=scan
    )
    dataset.create()
    return int(dataset.id)


def test_a_user_cannot_restore_what_icat_does_not_let_them_read(
    datastore_stack: DatastoreStack, icat_client: Any
) -> None:
    stack = datastore_stack
    dataset_id = unreadable_dataset(icat_client)
    alice = icat.Client(stack.icat_url, checkCert=False)
    alice.login("db", {"username": "alice", "password": "alice-pw"})
    try:
        assert alice.search(f"SELECT d.id FROM Dataset d WHERE d.id = {dataset_id}") == []
    finally:
        alice.cleanup()

    answer = httpx.post(
        f"{stack.gateway_url}/restore",
        json={"dataset_ids": [dataset_id]},
        headers=login(stack, "db", "alice", "alice-pw"),
        timeout=60,
    )
    assert answer.status_code == 404, answer.text
    assert f"Dataset {dataset_id}" in answer.json()["detail"]
