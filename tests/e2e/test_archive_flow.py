"""The seed's archive workflow through the four services, as real processes."""

from __future__ import annotations

import uuid

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

pytestmark = pytest.mark.e2e


def unique_investigation() -> str:
    return f"E2E{uuid.uuid4().hex[:8].upper()}"


def test_seed_archive_reaches_finished_in_icat_with_files_on_tape(
    datastore_stack: DatastoreStack, xrootd_stack: object
) -> None:
    stack = datastore_stack
    settings = stack.settings
    name = unique_investigation()
    folder = dataset_folder(name)
    sums = write_idc_files(
        settings.instrument_data_cache, folder, [f"file_{i:04d}.nxs" for i in range(4)]
    )

    answer = httpx.post(
        f"{stack.gateway_url}/archive", json=seed_body(name), headers=login(stack), timeout=60
    )
    assert answer.status_code == 202, answer.text
    job_ids = answer.json()["job_ids"]
    assert len(job_ids) == 1

    client = icat_root(stack.icat_url)
    # Straight away ICAT shows the request, with the job id as provenance...
    params = wait_for(
        lambda: (p := archival_parameters(client, name)).get("Dataset:scan_0000") and p,
        30,
        "the dataset's archival parameters",
    )
    assert params["Dataset:scan_0000"][ARCHIVAL_IDS] == job_ids[0]
    # ... and then FINISHED on the dataset and on every datafile.
    final = wait_for(
        lambda: (
            (p := archival_parameters(client, name))["Dataset:scan_0000"][ARCHIVAL_STATE]
            in {"FINISHED", "FAILED", "FINISHEDDIRTY"}
            and p
        ),
        180,
        "a final dataset state",
    )
    stack.assert_running()
    assert final["Dataset:scan_0000"][ARCHIVAL_STATE] == "FINISHED", final
    for i in range(4):
        datafile = final[f"Datafile:file_{i:04d}.nxs"]
        assert datafile[ARCHIVAL_STATE] == "FINISHED"
        assert datafile[ARCHIVAL_IDS] == job_ids[0]
        assert not datafile.get(ARCHIVAL_FAILURE)

    # The files are on tape under the planned paths with the same adler32 ...
    for file_name, adler in sums.items():
        tape_path = f"/{settings.tape_root_dir}{folder}/{file_name}"
        assert xrootd_adler32(settings.tape_archive, tape_path) == adler
    # ... and ICAT's Datafiles hold the real size and checksum, not the seed's placeholders.
    datafiles = client.search(
        "SELECT f FROM Datafile f JOIN f.dataset d JOIN d.investigation i "
        f"WHERE i.name = '{name}' ORDER BY f.name"
    )
    assert [(f.name, f.fileSize, f.checksum) for f in datafiles] == [
        (n, 64 * 1024, f"adler32:{sums[n]}") for n in sorted(sums)
    ]
    assert datafiles[0].location == f"{folder}/file_0000.nxs"

    # The request ledger tells the same story: one job, every file and byte done.
    request = wait_for(
        lambda: (
            (
                r := httpx.get(
                    f"{stack.gateway_url}/requests/{answer.json()['request_id']}",
                    headers=login(stack),
                    timeout=30,
                ).json()
            )["state"]
            == "FINISHED"
            and r
        ),
        60,
        "the ledger to show FINISHED",
    )
    assert (request["owner"], request["source"], request["waiting_on"]) == (
        "simple/root",
        "http",
        None,
    )
    [job] = request["jobs"]
    assert (job["job_id"], job["files_done"], job["files_total"]) == (job_ids[0], 4, 4)
    assert job["bytes_done"] == job["bytes_total"] == 4 * 64 * 1024


def test_missing_source_fails_that_file_and_the_dataset_is_finished_dirty(
    datastore_stack: DatastoreStack,
) -> None:
    stack = datastore_stack
    settings = stack.settings
    name = unique_investigation()
    folder = dataset_folder(name)
    write_idc_files(settings.instrument_data_cache, folder, ["file_0000.nxs", "file_0001.nxs"])
    # file_0002.nxs is named in the request but was never written

    answer = httpx.post(
        f"{stack.gateway_url}/archive",
        json=seed_body(name, files=3),
        headers=login(stack),
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    client = icat_root(stack.icat_url)
    final = wait_for(
        lambda: (
            (p := archival_parameters(client, name))
            .get("Dataset:scan_0000", {})
            .get(ARCHIVAL_STATE)
            in {"FINISHED", "FAILED", "FINISHEDDIRTY"}
            and p
        ),
        180,
        "a final dataset state",
    )
    assert final["Dataset:scan_0000"][ARCHIVAL_STATE] == "FINISHEDDIRTY", final
    missing = final["Datafile:file_0002.nxs"]
    assert missing[ARCHIVAL_STATE] == "FAILED"
    assert missing[ARCHIVAL_FAILURE].startswith("user error:")
    assert final["Datafile:file_0000.nxs"][ARCHIVAL_STATE] == "FINISHED"


def test_the_same_request_twice_with_one_idempotency_key_archives_once(
    datastore_stack: DatastoreStack,
) -> None:
    stack = datastore_stack
    settings = stack.settings
    name = unique_investigation()
    write_idc_files(settings.instrument_data_cache, dataset_folder(name), ["file_0000.nxs"])
    headers = {**login(stack), "Idempotency-Key": f"key-{name}"}
    first = httpx.post(
        f"{stack.gateway_url}/archive", json=seed_body(name, files=1), headers=headers, timeout=60
    )
    second = httpx.post(
        f"{stack.gateway_url}/archive", json=seed_body(name, files=1), headers=headers, timeout=60
    )
    assert first.status_code == 202, first.text
    assert second.json() == first.json()
    client = icat_root(stack.icat_url)
    wait_for(
        lambda: (
            archival_parameters(client, name).get("Dataset:scan_0000", {}).get(ARCHIVAL_STATE)
            == "FINISHED"
        ),
        180,
        "FINISHED",
    )
    datasets = client.search(
        f"SELECT d FROM Dataset d JOIN d.investigation i WHERE i.name = '{name}'"
    )
    datafiles = client.search(
        f"SELECT f FROM Datafile f JOIN f.dataset d JOIN d.investigation i WHERE i.name = '{name}'"
    )
    assert len(datasets) == 1 and len(datafiles) == 1
