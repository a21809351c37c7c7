"""A request larger than one FTS job: 2,500 datafiles in one dataset make 3 jobs, all FINISHED."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.api_client import (
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
    dataset_folder,
    icat_root,
    wait_for,
)
from tests.support.factories import seed_body
from tests.support.stack_fixtures import DatastoreStack
from tests.support.workdirs import remove_after_session
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.e2e
FILES = 2500


def write_directly(data_dir: Path, folder: str, count: int) -> None:
    """The instrument writes straight to its cache's disk (xrdcp per file would take minutes)."""
    target = data_dir / folder
    remove_after_session(str(Path(folder).parents[1]))  # the investigation's folder
    target.mkdir(parents=True, exist_ok=True)
    owner = data_dir.stat()
    for path in [*target.parents][: len(Path(folder).parts)]:
        os.chown(path, owner.st_uid, owner.st_gid)
    os.chown(target, owner.st_uid, owner.st_gid)
    for i in range(count):
        path = target / f"file_{i:04d}.nxs"
        path.write_bytes(os.urandom(1024))
        os.chown(path, owner.st_uid, owner.st_gid)


@pytest.mark.timeout(1500)
def test_2500_files_make_three_jobs_and_all_finish(
    datastore_stack: DatastoreStack, xrootd_stack: XRootDStack
) -> None:
    stack = datastore_stack
    name = f"BIG{uuid.uuid4().hex[:8].upper()}"
    write_directly(xrootd_stack.data_dir("idc"), dataset_folder(name), FILES)
    session = httpx.post(
        f"{stack.gateway_url}/login",
        json={"auth": "simple", "username": "root", "password": "pw"},
        timeout=30,
    )
    headers = {"Authorization": f"Bearer {session.json()['sessionId']}"}
    answer = httpx.post(
        f"{stack.gateway_url}/archive",
        json=seed_body(name, files=FILES),
        headers=headers,
        timeout=120,
    )
    assert answer.status_code == 202, answer.text
    job_ids = answer.json()["job_ids"]
    assert len(job_ids) == 3

    client = icat_root(stack.icat_url)

    def states() -> dict[str, int]:
        counts: dict[str, int] = {}
        for value in client.search(
            "SELECT p.stringValue FROM DatafileParameter p JOIN p.datafile f JOIN f.dataset d "
            f"JOIN d.investigation i JOIN p.type t WHERE i.name = '{name}' "
            f"AND t.name = '{ARCHIVAL_STATE}'"
        ):
            counts[value] = counts.get(value, 0) + 1
        return counts

    final = wait_for(
        lambda: (s := states()).get("FINISHED") == FILES and s,
        900,
        "every datafile FINISHED",
        interval=5,
    )
    assert final == {"FINISHED": FILES}
    dataset = client.search(
        "SELECT p FROM DatasetParameter p JOIN p.dataset d JOIN d.investigation i JOIN p.type t "
        f"WHERE i.name = '{name}' INCLUDE p.type"
    )
    by_type = {p.type.name: p.stringValue for p in dataset}
    assert by_type[ARCHIVAL_STATE] == "FINISHED"
    assert sorted(by_type[ARCHIVAL_IDS].split(",")) == sorted(job_ids)
