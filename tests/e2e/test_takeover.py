"""Taking over from the original Datastore API on a live ICAT: a dataset it archived, its
files on tape, restores through our stack and shows FINISHED (README, "Taking over from the
original Datastore API").

ICAT holds what the original leaves (tests/support/original_api.py): python-icat as its
functional account (the same account as ours), its entities, "Archival state" on
ParameterTypes of units "" (SUBMITTED, then FINISHED from its poller) and the dataset's
"Archival ids", deleted once its jobs were done. The tape holds the files where it put them
(``{tape_archive}{location}``, here under the stack's ``tape_root_dir``), migrated to tape
and evicted from the disk buffer, so the restore recalls them. Our stack runs with
``icat.archival_parameter_units: ""``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import httpx
import icat
import pytest

from tests.e2e.api_client import dataset_folder, wait_for, write_idc_files, xrootd_adler32
from tests.support.original_api import ORIGINAL_UNITS, new_dataset, new_investigation, poll
from tests.support.stack_fixtures import DatastoreStack, StackFactory
from tests.support.workdirs import remove_after_session
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(datastore_stack_factory: StackFactory) -> DatastoreStack:
    """Our stack configured to take over: the original's ParameterTypes, the same account."""
    return datastore_stack_factory(icat={"archival_parameter_units": ORIGINAL_UNITS})


@pytest.fixture
def original(stack: DatastoreStack) -> Iterator[Any]:
    """python-icat logged in as the original's functional account, which is ours."""
    icat_settings = stack.settings.icat
    client = icat.Client(stack.icat_url, checkCert=False)
    client.login(
        icat_settings.auth,
        {
            "username": icat_settings.username,
            "password": icat_settings.password.get_secret_value(),
        },
    )
    yield client
    client.cleanup()


def login(stack: DatastoreStack) -> dict[str, str]:
    answer = httpx.post(
        f"{stack.gateway_url}/login",
        json={"auth": "simple", "username": "root", "password": "pw"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['sessionId']}"}


def archived_by_the_original(
    stack: DatastoreStack, client: Any, xrootd_stack: XRootDStack, files: int = 3
) -> tuple[str, dict[str, str], int]:
    """A dataset the original archived: (investigation name, file name -> adler32, dataset
    id), its files on tape only."""
    settings = stack.settings
    facility = settings.icat.facility
    name = f"ORG{uuid.uuid4().hex[:8].upper()}"
    folder = dataset_folder(name)
    names = [f"file_{i:04d}.nxs" for i in range(files)]
    # Its FTS jobs put each file at {tape_archive}{location}.
    sums = write_idc_files(settings.tape_archive, f"{settings.tape_root_dir}{folder}", names)
    remove_after_session(str(PurePosixPath(folder).parents[1]))  # the restored copies

    investigation_id = new_investigation(client, facility, name, "1")
    dataset_id = new_dataset(
        client,
        facility,
        investigation_id,
        "scan_0000",
        {n: (f"{folder}/{n}", 64 * 1024, f"adler32:{sums[n]}") for n in names},
        [str(uuid.uuid4())],
    )
    datafile_ids = [
        int(i)
        for i in client.search(f"SELECT o.id FROM Datafile o WHERE o.dataset.id = {dataset_id}")
    ]
    poll(client, dataset_id, dict.fromkeys(datafile_ids, "ACTIVE"), "ACTIVE", done=False)
    poll(client, dataset_id, dict.fromkeys(datafile_ids, "FINISHED"), "FINISHED", done=True)

    # On tape, out of the disk buffer: a restore must recall them.
    delays = xrootd_stack.tape_delays
    time.sleep(delays.migration + delays.eviction + 1)
    return name, sums, dataset_id


@pytest.mark.timeout(600)
def test_a_dataset_the_original_archived_shows_finished_and_restores(
    stack: DatastoreStack, original: Any, xrootd_stack: XRootDStack
) -> None:
    name, sums, dataset_id = archived_by_the_original(stack, original, xrootd_stack)
    settings = stack.settings
    folder = dataset_folder(name)
    headers = login(stack)

    # Its ICAT records, as our routes show them.
    status = httpx.get(f"{stack.gateway_url}/datasets/{dataset_id}/status", headers=headers)
    assert status.status_code == 200, status.text
    body = status.json()
    assert (body["state"], body["complete"], body["failure"]) == ("FINISHED", True, None)
    assert body["file_states"] == {f"{folder}/{n}": "FINISHED" for n in sums}
    found = httpx.get(
        f"{stack.gateway_url}/datasets",
        params={"investigation": f"{name}-1", "name": "scan_0000"},
        headers=headers,
    )
    assert found.status_code == 200, found.text
    assert [(d["id"], d["state"]) for d in found.json()["items"]] == [(dataset_id, "FINISHED")]

    # Restored from tape to the user data cache, as ours would be.
    answer = httpx.post(
        f"{stack.gateway_url}/restore",
        json={"dataset_ids": [dataset_id]},
        headers=headers,
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["request_id"]

    def ended() -> dict[str, Any] | None:
        request = httpx.get(f"{stack.gateway_url}/requests/{request_id}", headers=headers)
        assert request.status_code == 200, request.text
        state = request.json()["state"]
        return request.json() if state in {"FINISHED", "FINISHEDDIRTY", "FAILED"} else None

    final = wait_for(ended, 300, f"restore {request_id} to end", interval=0.5)
    stack.assert_running()
    assert final["state"] == "FINISHED", final
    for file_name, adler in sums.items():
        assert xrootd_adler32(settings.user_data_cache, f"/{folder}/{file_name}") == adler

    # A restore writes nothing in ICAT: the original's records stay as it left them.
    states = original.search(
        "SELECT p.stringValue FROM DatafileParameter p JOIN p.datafile df JOIN df.dataset ds "
        f"JOIN p.type t WHERE ds.id = {dataset_id} AND t.units = '{ORIGINAL_UNITS}'"
    )
    assert sorted(states) == ["FINISHED"] * len(sums)
