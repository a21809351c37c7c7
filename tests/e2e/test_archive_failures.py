"""Archive through the whole system when things go wrong, and with several replicas at work."""

from __future__ import annotations

import concurrent.futures
import uuid

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
)
from tests.support.factories import seed_body
from tests.support.stack_fixtures import DatastoreStack, StackFactory

pytestmark = pytest.mark.e2e
FINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}


def dataset_state(client: object, name: str, dataset: str = "scan_0000") -> str | None:
    return archival_parameters(client, name).get(f"Dataset:{dataset}", {}).get(ARCHIVAL_STATE)


def test_fts_refusing_our_credential_waits_with_an_alarm_and_fails_nothing(
    datastore_stack_factory: StackFactory,
) -> None:
    # FTS refuses every submission from a revoked credential: ours, not the user's fault.
    stack = datastore_stack_factory(fts3={"token": "revoked-token", "vo": "revoked-vo"})
    name = f"REF{uuid.uuid4().hex[:8].upper()}"
    write_idc_files(stack.settings.instrument_data_cache, dataset_folder(name), ["file_0000.nxs"])
    answer = httpx.post(
        f"{stack.gateway_url}/archive",
        json=seed_body(name, files=1),
        headers=login(stack),
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    # The alarm, raised again on each retry (more than the e2e config's retry budget).
    wait_for(
        lambda: stack.logs("fts-submitter").count('"credential_refused"') >= 6,
        120,
        "the credential alarm on several retries",
    )
    client = icat_root(stack.icat_url)
    params = archival_parameters(client, name)
    assert params["Dataset:scan_0000"][ARCHIVAL_STATE] == "SUBMITTED"
    assert params["Datafile:file_0000.nxs"][ARCHIVAL_STATE] == "SUBMITTED"
    assert "message_dead_lettered" not in stack.logs("fts-submitter")


def test_two_replicas_of_each_worker_archive_without_duplicates(
    datastore_stack_factory: StackFactory,
) -> None:
    stack = datastore_stack_factory(replicas=2)
    headers = login(stack)
    names = [f"REP{uuid.uuid4().hex[:8].upper()}" for _ in range(4)]
    bodies = []
    for name in names:
        body = seed_body(name, files=3)
        second = seed_body(name, datasets={"scan_0001": 3})["investigations"][0]["datasets"][0]
        body["investigations"][0]["datasets"].append(second)
        bodies.append(body)
        for dataset in ("scan_0000", "scan_0001"):
            write_idc_files(
                stack.settings.instrument_data_cache,
                dataset_folder(name, dataset=dataset),
                [f"file_{i:04d}.nxs" for i in range(3)],
                size=4096,
            )
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda b: httpx.post(
                    f"{stack.gateway_url}/archive", json=b, headers=headers, timeout=60
                ),
                bodies,
            )
        )
    assert [a.status_code for a in answers] == [202] * 4
    client = icat_root(stack.icat_url)
    for name in names:
        wait_for(
            lambda n=name: (
                dataset_state(client, n) == "FINISHED"
                and dataset_state(client, n, "scan_0001") == "FINISHED"
            ),
            180,
            f"{name} FINISHED",
        )
    stack.assert_running()
    for name in names:
        where = f"WHERE i.name = '{name}'"
        assert len(client.search(f"SELECT i FROM Investigation i {where}")) == 1
        assert len(client.search(f"SELECT d FROM Dataset d JOIN d.investigation i {where}")) == 2
        datafiles = client.search(
            f"SELECT f FROM Datafile f JOIN f.dataset d JOIN d.investigation i {where}"
        )
        assert len(datafiles) == 6
        assert (
            len(
                client.search(
                    "SELECT ii FROM InvestigationInstrument ii JOIN ii.investigation i " + where
                )
            )
            == 1
        )
        params = client.search(
            "SELECT p FROM DatafileParameter p JOIN p.datafile f JOIN f.dataset d "
            f"JOIN d.investigation i {where}"
        )
        assert len(params) == len(
            {
                (p.datafile.id, p.type.id)
                for p in client.search(
                    "SELECT p FROM DatafileParameter p JOIN p.datafile f JOIN f.dataset d "
                    f"JOIN d.investigation i {where} INCLUDE p.datafile, p.type"
                )
            }
        )
    # Ours (units N/A): a takeover test in the same ICAT may hold the original's (units "").
    ours = "SELECT t FROM ParameterType t WHERE t.name = 'Archival state' AND t.units = 'N/A'"
    assert len(client.search(ours)) == 1


def test_gateway_refuses_bad_requests_with_reasons(datastore_stack: DatastoreStack) -> None:
    stack = datastore_stack
    url = f"{stack.gateway_url}/archive"
    body = seed_body("BAD")
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    alice = login(stack, auth="db", user="alice", pw="alice-pw")
    refused = httpx.post(url, json=body, headers=alice, timeout=30)
    assert refused.status_code == 403 and "archive" in refused.text.lower()
    root = login(stack)
    bad = seed_body("BAD")
    bad["investigations"][0]["datasets"][0]["datafiles"][0]["name"] = "../etc/passwd"
    invalid = httpx.post(url, json=bad, headers=root, timeout=30)
    assert invalid.status_code == 422 and "datafiles" in invalid.text
    broken = httpx.post(
        url, content=b"{not json", headers={**root, "Content-Type": "application/json"}, timeout=30
    )
    assert broken.status_code in {400, 422}
