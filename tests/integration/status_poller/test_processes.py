"""The two workers as the processes operators run: console scripts configured by environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from datastore_common.settings import DatastoreSettings
from datastore_common.worker import topology_from
from tests.integration.fts3_service.workflow import (
    TERMINAL,
    archive_registered,
    archive_transfers,
    planned_job,
    service_settings,
    status_capture,
    whoami_vo,
)
from tests.support.fts3_fixtures import Fts3Emulator
from tests.support.rabbitmq_fixtures import BusFactory
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def environment(settings: DatastoreSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASTORE")}
    env.update(
        DATASTORE__BROKER__URL=settings.broker.url.get_secret_value(),
        DATASTORE__BROKER__EXCHANGE=settings.broker.exchange,
        DATASTORE__BROKER__QUEUE_PREFIX=settings.broker.queue_prefix,
        DATASTORE__BROKER__RETRY_DELAYS=json.dumps(settings.broker.retry_delays),
        DATASTORE__FTS3__ENDPOINT=str(settings.fts3.endpoint),
        DATASTORE__FTS3__CA_PATH=str(settings.fts3.ca_path),
        DATASTORE__X509_USER_CERT=str(settings.x509_user_cert),
        DATASTORE__X509_USER_KEY=str(settings.x509_user_key),
        DATASTORE__POLLER__INTERVAL_SECONDS=str(settings.poller.interval_seconds),
        DATASTORE__LOG__FORMAT="json",
    )
    return env


@pytest.fixture
def workers(
    tmp_path: Path, fts3_emulator: Fts3Emulator, rabbitmq_url: str
) -> Iterator[DatastoreSettings]:
    settings = service_settings(fts3_emulator, rabbitmq_url)
    processes = []
    try:
        for script in ("datastore-fts-submitter", "datastore-status-poller"):
            with (tmp_path / f"{script}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [str(BIN / script)],
                        env=environment(settings),
                        cwd=tmp_path,  # no ./config.yaml here
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield settings
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = []
        for process in processes:
            try:
                codes.append(process.wait(timeout=30))
            except subprocess.TimeoutExpired:
                process.kill()  # never leave it running past the test
                codes.append(process.wait())
        logs = {p.name: p.read_text()[-2000:] for p in tmp_path.glob("*.log")}
        assert codes == [0, 0], logs  # a graceful stop on SIGTERM


async def test_console_scripts_archive_to_finished(
    workers: DatastoreSettings,
    bus_factory: BusFactory,
    fts3_emulator: Fts3Emulator,
    xrootd_stack: XRootDStack,
    xrootd_test_path: str,
) -> None:
    request_id = f"procs-{uuid.uuid4()}"
    job = planned_job(
        request_id,
        whoami_vo(fts3_emulator),
        archive_transfers(xrootd_stack, xrootd_test_path, 4),
    )
    bus = await bus_factory(topology_from(workers))

    async with status_capture(bus) as capture:
        await bus.publish(archive_registered(request_id, [job]))
        final = await capture.until(job.job_id, TERMINAL, wait=120)

    assert final.job_state == "FINISHED"
    assert {f.state for f in final.files} == {"FINISHED"}
