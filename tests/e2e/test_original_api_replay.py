"""The original Datastore API's seed workflow, replayed call for call against our stack.

What a client of ral-facilities' ``datastore-api`` sends in the walk-through
(/work/shared/design/seed-workflow.md, the original's ``docs/example.md``): its login body
(``{"auth", "credentials": {...}}``), the seed's ``POST /archive`` body verbatim, the job
routes of its first version (``/job/{id}``, ``/complete``, ``/percentage``), the dataset routes
of its later one (``/dataset/{id}/status|complete|percentage``), ``POST /restore`` with ICAT ids,
``DELETE /job/{id}`` on an archive job, ``/version``. Each answer is read only through the
fields the original answered with, so a client written for it keeps working. Where ours answers
differently on purpose, the assertion says so (README, "Coming from the original Datastore API").
"""

from __future__ import annotations

import copy
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
    wait_for,
    write_idc_files,
    xrootd_adler32,
)
from tests.support.stack_fixtures import DatastoreStack

pytestmark = pytest.mark.e2e

FINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}

#: The original walk-through's login (its LoginRequest: plugin, then ICAT's credentials).
ORIGINAL_LOGIN = {"auth": "simple", "credentials": {"username": "root", "password": "pw"}}


def _datafile(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": "Description",
        "doi": "10.00000/00000",
        "fileSize": 0,
        "checksum": "string",
        "datafileCreateTime": "2024-06-05T10:53:29.501Z",
        "datafileModTime": "2024-06-05T10:53:29.501Z",
    }


#: The walk-through's POST /archive body, verbatim (only the investigation's name is made unique
#: per run, below).
SEED_ARCHIVE_BODY: dict[str, Any] = {
    "investigations": [
        {
            "facility": {"name": "facility"},
            "investigationType": {"name": "type"},
            "instrument": {"name": "instrument"},
            "facilityCycle": {"name": "20XX"},
            "datasets": [
                {
                    "name": "scan_0000",
                    "complete": True,
                    "description": "Description",
                    "doi": "10.00000/00000",
                    "location": "string",
                    "startDate": "2024-06-05T10:53:29.501Z",
                    "endDate": "2024-06-05T10:53:29.501Z",
                    "datasetType": {"name": "scan"},
                    "datafiles": [_datafile(f"file_000{i}.nxs") for i in range(4)],
                }
            ],
            "name": "ABC123",
            "visitId": "1",
            "title": "Title",
            "summary": "Summary",
            "doi": "10.00000/00000",
            "startDate": "2024-06-05T10:53:29.501Z",
            "endDate": "2024-06-05T10:53:29.501Z",
            "releaseDate": "2024-06-05T10:53:29.501Z",
        }
    ]
}


class OriginalClient:
    """The calls a client of the original API makes, with its bodies, against ``base``."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.headers: dict[str, str] = {}

    def login(self) -> None:
        answer = httpx.post(f"{self.base}/login", json=ORIGINAL_LOGIN, timeout=30)
        assert answer.status_code == 200, answer.text
        self.headers = {"Authorization": f"Bearer {answer.json()['sessionId']}"}

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=60)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers=self.headers, timeout=30)

    def delete(self, path: str) -> httpx.Response:
        return httpx.delete(f"{self.base}{path}", headers=self.headers, timeout=30)

    def job_complete(self, job_id: str) -> bool | None:
        """The original's GET /job/{id}/complete; None while FTS does not know the job yet
        (ours accepts before submitting: the original answered after)."""
        answer = self.get(f"/job/{job_id}/complete")
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        complete: bool = answer.json()["complete"]
        return complete


@pytest.fixture
def icat_client(datastore_stack: DatastoreStack) -> Iterator[Any]:
    client = icat_root(datastore_stack.icat_url)
    yield client
    client.cleanup()


@pytest.mark.timeout(900)
def test_the_original_seed_workflow_runs_unchanged(
    datastore_stack: DatastoreStack, xrootd_stack: object, icat_client: Any
) -> None:
    stack = datastore_stack
    settings = stack.settings
    client = icat_client
    name = f"ORG{uuid.uuid4().hex[:8].upper()}"
    folder = dataset_folder(name)
    sums = write_idc_files(
        settings.instrument_data_cache, folder, [f"file_000{i}.nxs" for i in range(4)]
    )
    api = OriginalClient(stack.gateway_url)

    # Log in with the original body; the session id is the bearer token, as there.
    api.login()
    version = api.get("/version")
    assert version.status_code == 200 and version.json()["version"], version.text

    # Archive: the seed's body verbatim; the answer carries the FTS job ids (ours adds
    # request_id, and answers 202 Accepted where the original answered 200 after FTS).
    body = copy.deepcopy(SEED_ARCHIVE_BODY)
    body["investigations"][0]["name"] = name
    archived = api.post("/archive", body)
    assert archived.status_code in (200, 202), archived.text
    [archive_job] = archived.json()["job_ids"]

    # "Straight away we should see the metadata of our request in ICAT, including the
    # status of our archival job as a DatasetParameter."
    wait_for(
        lambda: archival_parameters(client, name).get("Dataset:scan_0000", {}).get(ARCHIVAL_STATE),
        30,
        "the dataset's archival state in ICAT",
    )
    [dataset_id] = client.search(
        f"SELECT d.id FROM Dataset d JOIN d.investigation i WHERE i.name = '{name}' "
        "AND d.name = 'scan_0000'"
    )

    # The job routes of the original's first version follow the archive job to its end.
    assert wait_for(lambda: api.job_complete(archive_job), 300, "the archive job to end")
    percentage = api.get(f"/job/{archive_job}/percentage")
    assert percentage.status_code == 200, percentage.text
    assert percentage.json()["percentage_complete"] == 100.0
    job = api.get(f"/job/{archive_job}")
    assert job.status_code == 200, job.text  # (ours: state, files; the original: FTS's JSON)

    # The later version's dataset routes read ICAT's records (its DatasetStatusResponse:
    # state, and file_states by location).
    final = wait_for(
        lambda: (s := api.get(f"/dataset/{dataset_id}/status").json()).get("state") in FINAL and s,
        120,
        "the dataset to reach a final state",
    )
    assert final["state"] == "FINISHED", final
    assert set(final["file_states"].values()) == {"FINISHED"}
    assert sorted(final["file_states"]) == [f"{folder}/file_000{i}.nxs" for i in range(4)]
    assert api.get(f"/dataset/{dataset_id}/complete").json()["complete"] is True
    assert api.get(f"/dataset/{dataset_id}/percentage").json()["percentage_complete"] == 100.0
    stack.assert_running()

    # "xrdfs $TAPE_ARCHIVE ls /${TAPE_ROOT_DIR}instrument/20XX/ABC123-1/scan/scan_0000"
    for file_name, adler in sums.items():
        tape_path = f"/{settings.tape_root_dir}{folder}/{file_name}"
        assert xrootd_adler32(settings.tape_archive, tape_path) == adler

    # An archive job cannot be cancelled (the original: 400 "Archival jobs cannot be
    # cancelled"; ours: 409 with the same reason).
    refused = api.delete(f"/job/{archive_job}")
    assert refused.status_code in (400, 409), refused.text
    assert "cannot be cancelled" in refused.json()["detail"]

    # Restore with the ids found in ICAT, the original's RestoreRequest body.
    before = archival_parameters(client, name)
    restored = api.post(
        "/restore", {"investigation_ids": [], "dataset_ids": [int(dataset_id)], "datafile_ids": []}
    )
    assert restored.status_code in (200, 202), restored.text
    [restore_job] = restored.json()["job_ids"]
    assert wait_for(lambda: api.job_complete(restore_job), 600, "the restore job to end")
    status = api.get(f"/job/{restore_job}/status")
    assert status.status_code == 200 and status.json()["status"] == "FINISHED", status.text
    assert api.get(f"/job/{restore_job}/percentage").json()["percentage_complete"] == 100.0

    # "xrdfs $USER_DATA_CACHE ls /instrument/20XX/ABC123-1/scan/scan_0000": same bytes.
    for file_name, adler in sums.items():
        assert xrootd_adler32(settings.user_data_cache, f"/{folder}/{file_name}") == adler
    # "Restore requests will not result in any changes to the ICAT metadata."
    assert archival_parameters(client, name) == before
