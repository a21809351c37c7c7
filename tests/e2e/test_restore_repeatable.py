"""A restore users can repeat, and restore in part, through the four services:

- a dataset restored twice: the second finds every file already online (the catalogue's size
  and adler32 on the user data cache), asks FTS for nothing and is FINISHED at once; a
  different file at a destination is replaced by the first, never a "destination exists";
- a dataset with a file that never reached tape: 409 naming it, and with ``?partial=true``
  the rest restored and the file listed as left out, with why.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
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


def archive_and_wait(
    stack: DatastoreStack, client: Any, name: str, files: int, *, written: int | None = None
) -> tuple[dict[str, str], int]:
    """Archive a seed investigation of ``files`` files, only the first ``written`` of them on
    the instrument data cache, and wait for it to end: (name -> adler32, dataset id)."""
    names = [f"file_{i:04d}.nxs" for i in range(files)]
    sums = write_idc_files(
        stack.settings.instrument_data_cache,
        dataset_folder(name),
        names[: files if written is None else written],
    )
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
    [dataset_id] = client.search(
        f"SELECT d.id FROM Dataset d JOIN d.investigation i WHERE i.name = '{name}'"
    )
    return sums, int(dataset_id)


def datafile_ids(client: Any, dataset_id: int) -> dict[str, int]:
    return {
        f.name: int(f.id)
        for f in client.search(
            f"SELECT f FROM Datafile f JOIN f.dataset d WHERE d.id = {dataset_id}"
        )
    }


def restore(
    stack: DatastoreStack, headers: dict[str, str], body: dict[str, Any], query: str = ""
) -> httpx.Response:
    # Each restore is its own request: a key of its own, never a replay of an earlier one.
    keyed = {**headers, "Idempotency-Key": f"restore-{uuid.uuid4()}"}
    return httpx.post(f"{stack.gateway_url}/restore{query}", json=body, headers=keyed, timeout=60)


def request_of(stack: DatastoreStack, headers: dict[str, str], request_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{stack.gateway_url}/requests/{request_id}", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def ended(stack: DatastoreStack, headers: dict[str, str], request_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = wait_for(
        lambda: (now := request_of(stack, headers, request_id))["state"] in FINAL and now,
        300,
        f"restore {request_id} to end",
    )
    return shown


def exists(server: str, path: str) -> bool:
    stat = subprocess.run(
        ["xrdfs", server.rstrip("/"), "stat", path], capture_output=True, check=False
    )
    return stat.returncode == 0


@pytest.mark.timeout(600)
def test_a_dataset_restored_twice_is_recalled_once(
    datastore_stack: DatastoreStack, icat_client: Any
) -> None:
    stack = datastore_stack
    udc = stack.settings.user_data_cache
    name = f"RPT{uuid.uuid4().hex[:8].upper()}"
    sums, dataset_id = archive_and_wait(stack, icat_client, name, files=3)
    ids = datafile_ids(icat_client, dataset_id)
    folder = dataset_folder(name)
    # Someone left another file where the first one is restored to: it is replaced.
    [stale] = write_idc_files(udc, folder, ["file_0000.nxs"], size=1000).values()
    assert stale != sums["file_0000.nxs"]
    headers = login(stack)

    first = restore(stack, headers, {"dataset_ids": [dataset_id]})
    assert first.status_code == 202, first.text
    accepted = first.json()
    assert accepted["already_online"] == []
    assert len(accepted["job_ids"]) == 1
    done = ended(stack, headers, accepted["request_id"])
    assert done["state"] == "FINISHED", done
    for file_name, adler in sums.items():
        assert xrootd_adler32(udc, f"/{folder}/{file_name}") == adler

    # Again (as another user would, or the same a week later): nothing is recalled.
    second = restore(stack, headers, {"dataset_ids": [dataset_id]})
    assert second.status_code == 202, second.text
    again = second.json()
    assert again["request_id"] != accepted["request_id"]
    assert again["job_ids"] == []  # no FTS job
    assert again["already_online"] == sorted(ids.values())
    shown = request_of(stack, headers, again["request_id"])  # at once, no waiting
    assert shown["state"] == "FINISHED", shown
    [online] = shown["jobs"]
    assert online["job_id"] == f"{again['request_id']}:already-online"
    assert (online["files_done"], online["files_total"]) == (3, 3)
    for file_name, adler in sums.items():
        assert xrootd_adler32(udc, f"/{folder}/{file_name}") == adler


@pytest.mark.timeout(600)
def test_a_partly_archived_dataset_restores_its_archived_part_when_asked(
    datastore_stack: DatastoreStack, icat_client: Any
) -> None:
    stack = datastore_stack
    udc = stack.settings.user_data_cache
    name = f"PRT{uuid.uuid4().hex[:8].upper()}"
    # The last file never reached the instrument data cache: FAILED, not on tape.
    sums, dataset_id = archive_and_wait(stack, icat_client, name, files=3, written=2)
    params = archival_parameters(icat_client, name)
    assert params["Dataset:scan_0000"][ARCHIVAL_STATE] == "FINISHEDDIRTY", params
    ids = datafile_ids(icat_client, dataset_id)
    missing = ids["file_0002.nxs"]
    headers = login(stack)

    refused = restore(stack, headers, {"dataset_ids": [dataset_id]})
    assert refused.status_code == 409, refused.text
    assert f"{missing} (FAILED)" in refused.json()["detail"]

    answer = restore(stack, headers, {"dataset_ids": [dataset_id]}, "?partial=true")
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    [left_out] = accepted["left_out"]
    assert left_out["datafile_id"] == missing
    assert "FAILED" in left_out["reason"]
    done = ended(stack, headers, accepted["request_id"])
    assert done["state"] == "FINISHED", done
    assert done["left_out"] == accepted["left_out"]
    assert sum(job["files_total"] for job in done["jobs"]) == 2

    folder = dataset_folder(name)
    for file_name, adler in sums.items():
        assert xrootd_adler32(udc, f"/{folder}/{file_name}") == adler
    assert not exists(udc, f"/{folder}/file_0002.nxs")
