"""Every route that names a request, a job or a dataset, as its owner, as another user and as
an admin, on the real stack: the owner and admins are answered, anyone else hears 404 (as for
nothing, so nothing leaks), and ICAT decides who may read a dataset.

Bob archives (he is made an archiver here, not an admin); Alice is neither; root is an admin.
"""

from __future__ import annotations

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
)
from tests.support.factories import seed_body
from tests.support.stack_fixtures import DatastoreStack, StackFactory

pytestmark = pytest.mark.e2e

ROOT = ("simple", "root", "pw")
BOB = ("db", "bob", "bob-pw")
ALICE = ("db", "alice", "alice-pw")
FINAL = {"FINISHED", "FINISHEDDIRTY", "FAILED", "CANCELED"}


def session(stack: DatastoreStack, who: tuple[str, str, str]) -> dict[str, str]:
    auth, user, password = who
    answer = httpx.post(
        f"{stack.gateway_url}/login",
        json={"auth": auth, "username": user, "password": password},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['sessionId']}"}


@pytest.fixture
def stack(datastore_stack_factory: StackFactory) -> DatastoreStack:
    return datastore_stack_factory(
        gateway={"archivers": ["simple/root", "simple/datastore", "db/bob"]}
    )


@pytest.fixture
def icat_client(stack: DatastoreStack) -> Iterator[Any]:
    client = icat_root(stack.icat_url)
    yield client
    client.cleanup()


@pytest.mark.timeout(600)
def test_each_route_answers_the_owner_and_admins_and_no_one_else(
    stack: DatastoreStack, icat_client: Any
) -> None:
    url = stack.gateway_url
    bob, alice, root = session(stack, BOB), session(stack, ALICE), session(stack, ROOT)
    name = f"ACC{uuid.uuid4().hex[:8].upper()}"
    write_idc_files(stack.settings.instrument_data_cache, dataset_folder(name), ["file_0000.nxs"])
    answer = httpx.post(f"{url}/archive", json=seed_body(name, files=1), headers=bob, timeout=60)
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["request_id"]
    [job_id] = answer.json()["job_ids"]
    ended = wait_for(
        lambda: (
            (r := httpx.get(f"{url}/requests/{request_id}", headers=bob, timeout=30)).status_code
            == 200
            and r.json()["state"] in FINAL
            and r.json()
        ),
        300,
        "bob's archive to end",
    )
    assert ended["state"] == "FINISHED", ended
    assert ended["owner"] == "db/bob"
    [dataset_id] = icat_client.search(
        f"SELECT d.id FROM Dataset d JOIN d.investigation i WHERE i.name = '{name}'"
    )

    def code(method: str, path: str, headers: dict[str, str], **kwargs: Any) -> int:
        return httpx.request(
            method, f"{url}{path}", headers=headers, timeout=60, **kwargs
        ).status_code

    # The request and its job: the owner and admins, nobody else.
    for path in (
        f"/requests/{request_id}",
        f"/job/{job_id}",
        f"/job/{job_id}/status",
        f"/job/{job_id}/complete",
        f"/job/{job_id}/percentage",
    ):
        assert (code("GET", path, bob), code("GET", path, alice), code("GET", path, root)) == (
            200,
            404,
            200,
        ), path
    # Cancelling an archive: refused for its owner and an admin (409 and why), unknown to others.
    for path in (f"/requests/{request_id}", f"/job/{job_id}"):
        assert (
            code("DELETE", path, bob),
            code("DELETE", path, alice),
            code("DELETE", path, root),
        ) == (409, 404, 409), path

    # Listings: Alice sees none of Bob's, an admin asking for everyone's sees it.
    def listed(headers: dict[str, str]) -> list[str]:
        answer = httpx.get(
            f"{url}/requests",
            params={"investigation": name, "mine": "false"},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return [item["request_id"] for item in answer.json()["items"]]

    assert (listed(bob), listed(alice), listed(root)) == ([request_id], [], [request_id])

    # The dataset: ICAT decides who may read it (Bob archived it but is no member of the
    # investigation); the admin routes answer admins only and 404 to everyone else.
    for suffix in ("status", "complete", "percentage"):
        path = f"/datasets/{dataset_id}/{suffix}"
        assert (code("GET", path, bob), code("GET", path, alice), code("GET", path, root)) == (
            404,
            404,
            200,
        ), path
    retry = f"/datasets/{dataset_id}/retry"
    # Alice may not archive (403 before anything is read); Bob cannot read the dataset (404);
    # root can, and it is FINISHED: nothing to retry (409 and why).
    assert (code("POST", retry, alice), code("POST", retry, bob), code("POST", retry, root)) == (
        403,
        404,
        409,
    )
    state_set = f"/datasets/{dataset_id}/status"
    body = {"state": "FINISHED", "reason": "e2e: access check, the state it already has"}
    assert code("PUT", state_set, alice, json=body) == 404
    assert code("PUT", state_set, bob, json=body) == 404
    assert code("PUT", state_set, root, json=body) == 202
    wait_for(
        lambda: (
            archival_parameters(icat_client, name)["Dataset:scan_0000"][ARCHIVAL_STATE]
            == "FINISHED"
        ),
        60,
        "the state set by hand to reach ICAT",
    )
