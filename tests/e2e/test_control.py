"""Controlling requests and datasets through the whole system: a running restore cancelled ends
CANCELED, an archive is not cancelled, a dataset retried after a failure ends FINISHED, an
admin's state set by hand reaches ICAT (owner / other user / admin on each)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.api_client import (
    ARCHIVAL_FAILURE,
    ARCHIVAL_IDS,
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
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.e2e
FINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}
ALICE = {"auth": "db", "user": "alice", "pw": "alice-pw"}  # neither an archiver nor an admin


@pytest.fixture
def icat_client(datastore_stack: DatastoreStack) -> Iterator[Any]:
    client = icat_root(datastore_stack.icat_url)
    yield client
    client.cleanup()


def dataset_state(client: Any, name: str) -> str | None:
    return archival_parameters(client, name).get("Dataset:scan_0000", {}).get(ARCHIVAL_STATE)


def dataset_id_of(client: Any, name: str) -> int:
    [dataset_id] = client.search(
        f"SELECT d.id FROM Dataset d JOIN d.investigation i WHERE i.name = '{name}'"
    )
    return int(dataset_id)


def archive(
    stack: DatastoreStack, name: str, files: int, *, written: int | None = None, size: int = 65536
) -> dict[str, Any]:
    """Archive a seed investigation of ``files`` files, of which only the first ``written``
    are on the instrument data cache; the 202's body."""
    names = [f"file_{i:04d}.nxs" for i in range(files)]
    write_idc_files(
        stack.settings.instrument_data_cache,
        dataset_folder(name),
        names[: files if written is None else written],
        size=size,
    )
    answer = httpx.post(
        f"{stack.gateway_url}/archive",
        json=seed_body(name, files=files),
        headers=login(stack),
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


def request_state(stack: DatastoreStack, request_id: str, headers: dict) -> dict[str, Any] | None:
    answer = httpx.get(f"{stack.gateway_url}/requests/{request_id}", headers=headers, timeout=30)
    if answer.status_code != 200:
        return None
    body: dict[str, Any] = answer.json()
    return body if body["state"] in FINAL else None


def exists(server: str, path: str) -> bool:
    stat = subprocess.run(
        ["xrdfs", server.rstrip("/"), "stat", path], capture_output=True, check=False
    )
    return stat.returncode == 0


@pytest.mark.timeout(600)
def test_a_running_restore_cancelled_ends_canceled(
    datastore_stack: DatastoreStack, icat_client: Any, xrootd_stack: XRootDStack
) -> None:
    stack = datastore_stack
    name = f"CNR{uuid.uuid4().hex[:8].upper()}"
    # Big enough for the copies to take a while (TPC above 16 MiB), more than run at once.
    archive(stack, name, files=8, size=24 << 20)
    wait_for(lambda: dataset_state(icat_client, name) in FINAL, 300, "the archive to end")
    assert dataset_state(icat_client, name) == "FINISHED"
    # Evicted from the tape's disk buffer: the restore must stage first (more time to cancel).
    time.sleep(xrootd_stack.tape_delays.eviction + 1)

    root = login(stack)
    answer = httpx.post(
        f"{stack.gateway_url}/restore",
        json={"dataset_ids": [dataset_id_of(icat_client, name)]},
        headers=root,
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["request_id"]
    [job_id] = answer.json()["job_ids"]

    # Another user hears 404, as for nothing, and nothing is cancelled.
    alice = login(stack, **ALICE)
    refused = httpx.delete(f"{stack.gateway_url}/requests/{request_id}", headers=alice, timeout=30)
    assert refused.status_code == 404, refused.text
    assert httpx.delete(f"{stack.gateway_url}/job/{job_id}", headers=alice).status_code == 404

    def cancel() -> dict[str, Any] | None:
        sent = httpx.delete(f"{stack.gateway_url}/requests/{request_id}", headers=root, timeout=30)
        assert sent.status_code == 202, sent.text  # a 409 here: it ended before we could cancel
        body: dict[str, Any] = sent.json()
        return body if body["canceled_job_ids"] else None  # FTS may not hold it yet

    canceled = wait_for(cancel, 30, "FTS to hold the restore's job", interval=0.1)
    assert canceled["canceled_job_ids"] == [job_id]

    ended = wait_for(lambda: request_state(stack, request_id, root), 120, "the request to end")
    assert ended["state"] == "CANCELED", ended
    job = httpx.get(f"{stack.gateway_url}/job/{job_id}", headers=root, timeout=30).json()
    assert job["state"] == "CANCELED"
    assert {f["state"] for f in job["files"]} <= {"CANCELED", "FINISHED"}
    assert "CANCELED" in {f["state"] for f in job["files"]}
    # No partial copy is left on the user data cache (FTS removes them).
    folder = dataset_folder(name)
    for file in job["files"]:
        if file["state"] == "CANCELED":
            path = f"/{folder}/{file['destination'].rsplit('/', 1)[-1]}"
            wait_for(
                lambda p=path: not exists(stack.settings.user_data_cache, p),
                15,
                f"{path} removed from the user data cache",
            )
    # Ended: a second cancel says so (409 with its state).
    again = httpx.delete(f"{stack.gateway_url}/requests/{request_id}", headers=root, timeout=30)
    assert again.status_code == 409 and "CANCELED" in again.json()["detail"]


@pytest.mark.timeout(300)
def test_an_archive_is_not_cancelled(datastore_stack: DatastoreStack, icat_client: Any) -> None:
    stack = datastore_stack
    name = f"CNA{uuid.uuid4().hex[:8].upper()}"
    accepted = archive(stack, name, files=3)
    request_id, [job_id] = accepted["request_id"], accepted["job_ids"]
    root = login(stack)  # its owner, and an admin who does not force it
    refused = httpx.delete(f"{stack.gateway_url}/requests/{request_id}", headers=root, timeout=30)
    assert refused.status_code == 409, refused.text
    assert "archive" in refused.json()["detail"] and "force=true" in refused.json()["detail"]
    # The job alone, once FTS holds it (404 until then), is refused the same way.
    job = wait_for(
        lambda: (
            (
                r := httpx.delete(f"{stack.gateway_url}/job/{job_id}", headers=root, timeout=30)
            ).status_code
            != 404
            and r
        ),
        60,
        "FTS to hold the archive's job",
        interval=0.2,
    )
    # (Small files: the job may already have ended, which is a 409 too, saying so.)
    assert job.status_code == 409, job.text
    assert any(why in job.json()["detail"] for why in ("force=true", "has ended FINISHED"))
    alice = login(stack, **ALICE)
    refused = httpx.delete(f"{stack.gateway_url}/requests/{request_id}", headers=alice, timeout=30)
    assert refused.status_code == 404
    wait_for(lambda: dataset_state(icat_client, name) in FINAL, 180, "the archive to end")
    assert dataset_state(icat_client, name) == "FINISHED"


@pytest.mark.timeout(600)
def test_retry_after_a_failure_ends_finished(
    datastore_stack: DatastoreStack, icat_client: Any
) -> None:
    stack = datastore_stack
    settings = stack.settings
    name = f"RTY{uuid.uuid4().hex[:8].upper()}"
    # The failure injected: the last file is not on the instrument data cache yet.
    archive(stack, name, files=3, written=2)
    wait_for(lambda: dataset_state(icat_client, name) in FINAL, 180, "the archive to end")
    params = archival_parameters(icat_client, name)
    assert params["Dataset:scan_0000"][ARCHIVAL_STATE] == "FINISHEDDIRTY", params
    assert params["Datafile:file_0002.nxs"][ARCHIVAL_STATE] == "FAILED"
    assert "source not found" in params["Datafile:file_0002.nxs"][ARCHIVAL_FAILURE]
    first_ids = params["Dataset:scan_0000"][ARCHIVAL_IDS]
    dataset_id = dataset_id_of(icat_client, name)
    url = f"{stack.gateway_url}/datasets/{dataset_id}/retry"

    root = login(stack)
    alice = login(stack, **ALICE)
    assert httpx.post(url, headers=alice, timeout=30).status_code == 403  # not an archiver

    # The file appears; the retry sends it alone.
    [file_name] = ["file_0002.nxs"]
    sums = write_idc_files(settings.instrument_data_cache, dataset_folder(name), [file_name])
    answer = httpx.post(url, headers=root, timeout=60)
    assert answer.status_code == 202, answer.text
    retry = answer.json()
    datafile_id = int(
        icat_client.search(
            "SELECT f.id FROM Datafile f JOIN f.dataset d "
            f"WHERE d.id = {dataset_id} AND f.name = '{file_name}'"
        )[0]
    )
    assert retry["datafile_ids"] == [datafile_id]

    ended = wait_for(
        lambda: request_state(stack, retry["request_id"], root), 180, "the retry to end"
    )
    assert ended["state"] == "FINISHED", ended
    assert [job["job_id"] for job in ended["jobs"]] == retry["job_ids"]
    wait_for(lambda: dataset_state(icat_client, name) == "FINISHED", 60, "the dataset FINISHED")
    params = archival_parameters(icat_client, name)
    assert {p[ARCHIVAL_STATE] for key, p in params.items() if key.startswith("Datafile:")} == {
        "FINISHED"
    }
    assert ARCHIVAL_FAILURE not in params[f"Datafile:{file_name}"]
    assert params["Dataset:scan_0000"][ARCHIVAL_IDS] == ",".join(retry["job_ids"]) != first_ids
    tape = f"/{settings.tape_root_dir}{dataset_folder(name)}/{file_name}"
    assert xrootd_adler32(settings.tape_archive, tape) == sums[file_name]

    # FINISHED now: nothing left to retry.
    again = httpx.post(url, headers=root, timeout=30)
    assert again.status_code == 409 and "FINISHED" in again.json()["detail"]


@pytest.mark.timeout(300)
def test_an_admin_sets_a_state_by_hand_and_others_hear_404(
    datastore_stack: DatastoreStack, icat_client: Any
) -> None:
    stack = datastore_stack
    name = f"SET{uuid.uuid4().hex[:8].upper()}"
    archive(stack, name, files=2)
    wait_for(lambda: dataset_state(icat_client, name) in FINAL, 180, "the archive to end")
    url = f"{stack.gateway_url}/datasets/{dataset_id_of(icat_client, name)}/status"
    body = {"state": "FAILED", "reason": "tape cartridge lost", "deletion_date": "2031-01-31"}

    alice = login(stack, **ALICE)
    assert httpx.put(url, json=body, headers=alice, timeout=30).status_code == 404
    answer = httpx.put(url, json=body, headers=login(stack), timeout=30)
    assert answer.status_code == 202, answer.text
    assert answer.json()["old_state"] == "FINISHED" and answer.json()["set_by"] == "simple/root"
    wait_for(lambda: dataset_state(icat_client, name) == "FAILED", 60, "ICAT to show it")
    params = archival_parameters(icat_client, name)
    assert params["Dataset:scan_0000"]["Deletion date"] == "2031-01-31"
    assert "tape cartridge lost" in params["Dataset:scan_0000"][ARCHIVAL_FAILURE]
    assert {p[ARCHIVAL_STATE] for key, p in params.items() if key.startswith("Datafile:")} == {
        "FAILED"
    }
    assert '"archival_state_set_by_hand"' in stack.logs("icat-writer")
