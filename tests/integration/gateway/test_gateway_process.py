"""`datastore-gateway --config FILE` as a real process: uvicorn, the VO from FTS /whoami."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from datastore_common.settings import DatastoreSettings
from datastore_common.worker import topology_from
from tests.support.factories import seed_body
from tests.support.icat_fixtures import free_port
from tests.support.rabbitmq_fixtures import BusFactory, unique_name

pytestmark = pytest.mark.integration

SEED_BODY = seed_body()


def tail(log_path: Path) -> str:
    """The process log, for assertion messages (small file: reading it inline is fine)."""
    return log_path.read_text()[-5000:]


async def wait_until_serving(
    client: httpx.AsyncClient, process: asyncio.subprocess.Process, log_path: Path
) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        assert process.returncode is None, tail(log_path)
        try:
            return await client.get("/healthz")
        except httpx.TransportError:
            assert time.monotonic() < deadline, tail(log_path)
            await asyncio.sleep(0.2)


async def test_gateway_process_learns_the_vo_from_fts_and_archives(
    seeded_icat, fts3_emulator, bus_factory: BusFactory, rabbitmq_url: str, tmp_path: Path
) -> None:
    name = unique_name("gwp")
    port = free_port()
    config = {
        "x509_user_cert": str(fts3_emulator.user_cert),
        "x509_user_key": str(fts3_emulator.user_key),
        "fts3": {"endpoint": fts3_emulator.url, "ca_path": str(fts3_emulator.ca)},
        "icat": {"url": seeded_icat.url},
        "broker": {"url": rabbitmq_url, "exchange": name, "queue_prefix": f"{name}."},
        "gateway": {"port": port, "state_db": f"sqlite:///{tmp_path}/gateway.sqlite"},
        "log": {"format": "json"},
    }
    # bus_factory deletes this topology (which the process declares too) after the test.
    await bus_factory(topology_from(DatastoreSettings(broker=config["broker"])))
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "datastore_gateway", "--config", str(config_path),
            stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            health = await wait_until_serving(client, process, log_path)
            assert health.status_code == 200, health.text
            assert health.json()["vo"]  # learnt from FTS /whoami at start-up
            login = await client.post(
                "/login", json={"auth": "simple", "username": "root", "password": "pw"}
            )
            headers = {"Authorization": f"Bearer {login.json()['sessionId']}"}
            answer = await client.post("/archive", json=SEED_BODY, headers=headers)
            assert answer.status_code == 202, answer.text
            assert len(answer.json()["job_ids"]) == 1
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()  # never leave it running past the test
            await process.wait()
            raise
    # SIGTERM is a clean stop: the lifespan closes everything (uvicorn >= 0.29 then re-raises
    # the signal it caught, so the exit status is -SIGTERM, or 0 with older versions).
    assert process.returncode in (0, -signal.SIGTERM), log_path.read_text()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    assert "gateway_stopped" in [line.get("event") for line in lines], tail(log_path)
    [accepted] = [line for line in lines if line.get("event") == "archive_requested"]
    assert accepted["http_request_id"]  # the HTTP request id is bound into every log line
    assert accepted["correlation_id"] == answer.json()["request_id"]
