"""No secret reaches a log line: a whole stack configured with recognisable secrets runs login,
archive, status and restore through the gateway, then every service log is searched for each.

The secrets: the ICAT functional account's password (in the services' configuration), the
user's login password and a wrong one (in /login bodies), the session id /login returned (the
Bearer token of every later call) and a line of the X.509 private key. The ICAT emulator here
is the test's own, with these passwords; the rest of the stack is the usual one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import icat
import pytest
import yaml

from tests.e2e.api_client import (
    ARCHIVAL_STATE,
    archival_parameters,
    dataset_folder,
    wait_for,
    write_idc_files,
)
from tests.support.factories import file_names, seed_body
from tests.support.icat_fixtures import CONFIG as ICAT_CONFIG
from tests.support.icat_fixtures import IcatEmulator, run_icat_script
from tests.support.stack_fixtures import DatastoreStack, StackFactory

pytestmark = pytest.mark.e2e

FINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}
RUN = uuid.uuid4().hex
FUNCTIONAL_PASSWORD = f"S3cr3t-icat-{RUN}"
USER_PASSWORD = f"S3cr3t-user-{RUN}"
WRONG_PASSWORD = f"S3cr3t-wrong-{RUN}"


@pytest.fixture
def secret_icat(tmp_path: Path) -> Iterator[IcatEmulator]:
    """An ICAT emulator whose root user and functional account have this run's passwords,
    with the seed's facility, types, instrument and cycle ingested."""
    config = yaml.safe_load(ICAT_CONFIG.read_text())
    config["authenticators"]["simple"]["users"] = {
        "root": USER_PASSWORD,
        "datastore": FUNCTIONAL_PASSWORD,
    }
    config_path = tmp_path / "icat-emulator.yaml"
    config_path.write_text(yaml.safe_dump(config))
    emulator = IcatEmulator(database=tmp_path / "icat.sqlite", config=config_path).start()
    try:
        ingest = run_icat_script(
            "icatingest.py",
            "-i",
            "deploy/local/icat/example.yaml",
            "-f",
            "YAML",
            "--duplicate",
            "IGNORE",
            "--url",
            emulator.url,
            "--no-check-certificate",
            "--auth",
            "simple",
            "--user",
            "root",
            "--pass",
            USER_PASSWORD,
        )
        assert ingest.returncode == 0, ingest.stderr[-2000:]
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def icat_as_root(secret_icat: IcatEmulator) -> Iterator[Any]:
    client = icat.Client(secret_icat.url, checkCert=False)
    client.login("simple", {"username": "root", "password": USER_PASSWORD})
    yield client
    client.cleanup()


def login(stack: DatastoreStack, password: str) -> httpx.Response:
    return httpx.post(
        f"{stack.gateway_url}/login",
        json={"auth": "simple", "username": "root", "password": password},
        timeout=30,
    )


def private_key_line(stack: DatastoreStack) -> str:
    """A line from the middle of the X.509 key the services use (never to be printed)."""
    key = stack.settings.x509_user_key
    assert key is not None
    body = [line for line in key.read_text().splitlines() if not line.startswith("-----")]
    return body[len(body) // 2]


def leaks(log_dir: Path, secrets: dict[str, str]) -> list[str]:
    """``file:line: <what>`` for every log line holding a secret (the secret itself not shown)."""
    found = []
    for path in sorted(log_dir.glob("*.log")):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            found.extend(
                f"{path.name}:{number}: {what}" for what, value in secrets.items() if value in line
            )
    return found


@pytest.mark.timeout(900)
def test_no_secret_reaches_any_service_log(
    datastore_stack_factory: StackFactory,
    secret_icat: IcatEmulator,
    icat_as_root: Any,
) -> None:
    stack = datastore_stack_factory(icat={"url": secret_icat.url, "password": FUNCTIONAL_PASSWORD})
    settings = stack.settings
    assert settings.icat.password.get_secret_value() == FUNCTIONAL_PASSWORD

    refused = login(stack, WRONG_PASSWORD)
    assert refused.status_code == 401, refused.text
    answer = login(stack, USER_PASSWORD)
    assert answer.status_code == 200, answer.text
    session_id = answer.json()["sessionId"]
    headers = {"Authorization": f"Bearer {session_id}"}

    # archive, and follow it as a user would
    name = f"SEC{uuid.uuid4().hex[:8].upper()}"
    write_idc_files(settings.instrument_data_cache, dataset_folder(name), file_names(2))
    archived = httpx.post(
        f"{stack.gateway_url}/archive",
        json=seed_body(name, files=2),
        headers=headers,
        timeout=60,
    )
    assert archived.status_code == 202, archived.text
    request_id = archived.json()["request_id"]
    wait_for(
        lambda: (
            archival_parameters(icat_as_root, name).get("Dataset:scan_0000", {}).get(ARCHIVAL_STATE)
            in FINAL
        ),
        300,
        "the archive to end",
    )
    request = httpx.get(f"{stack.gateway_url}/requests/{request_id}", headers=headers, timeout=30)
    assert request.status_code == 200, request.text
    [dataset_id] = icat_as_root.search(
        f"SELECT d.id FROM Dataset d JOIN d.investigation i WHERE i.name = '{name}'"
    )
    status = httpx.get(
        f"{stack.gateway_url}/datasets/{dataset_id}/status", headers=headers, timeout=30
    )
    assert status.status_code == 200, status.text
    assert status.json()["state"] == "FINISHED", status.text

    # restore, and follow the job
    restored = httpx.post(
        f"{stack.gateway_url}/restore",
        json={"dataset_ids": [int(dataset_id)]},
        headers=headers,
        timeout=60,
    )
    assert restored.status_code == 202, restored.text
    [job_id] = restored.json()["job_ids"]

    def job_ended() -> bool:
        answer = httpx.get(f"{stack.gateway_url}/job/{job_id}/status", headers=headers, timeout=30)
        return answer.status_code == 200 and bool(answer.json()["complete"])

    wait_for(job_ended, 300, f"restore job {job_id} to end")
    stack.assert_running()
    key_line = private_key_line(stack)
    stack.stop_all()  # every line written and flushed

    secrets = {
        "the ICAT functional password": FUNCTIONAL_PASSWORD,
        "the user's password": USER_PASSWORD,
        "a refused password": WRONG_PASSWORD,
        "the session id /login returned": session_id,
        "a line of the X.509 private key": key_line,
    }
    logs = sorted(stack.log_dir.glob("*.log"))
    assert {path.name.rsplit("-", 1)[0] for path in logs} >= {
        "gateway",
        "icat-writer",
        "fts-submitter",
        "status-poller",
    }
    assert all(path.stat().st_size > 0 for path in logs), "a service wrote no log at all"
    found = leaks(stack.log_dir, secrets)
    assert not found, "secrets in service logs:\n" + "\n".join(found)
