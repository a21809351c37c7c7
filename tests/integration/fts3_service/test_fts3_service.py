"""Fts3TransferService against the FTS3 emulator moving real files between XRootD servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from datastore_common.adapters.fts3.transfer_service import Fts3TransferService
from datastore_common.errors import ConfigurationError
from datastore_common.ports import JobProgress
from tests.support.fts3_fixtures import Fts3Emulator
from tests.support.rabbitmq_fixtures import RABBITMQ_URL
from tests.support.xrootd_fixtures import XRootDStack

from .workflow import TERMINAL, archive_transfers, planned_job, service_settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def service(fts3_emulator: Fts3Emulator) -> AsyncIterator[Fts3TransferService]:
    transfers = Fts3TransferService.from_settings(service_settings(fts3_emulator, RABBITMQ_URL))
    yield transfers
    await transfers.aclose()


async def until_terminal(service: Fts3TransferService, job_id: str) -> JobProgress:
    for _ in range(240):
        progress = (await service.status([job_id]))[job_id]
        assert progress is not None
        if progress.state in TERMINAL:
            return progress
        await asyncio.sleep(0.5)
    raise AssertionError(f"{job_id} not terminal: {progress}")


async def test_archive_job_runs_to_finished_with_ids_in_file_metadata(
    service: Fts3TransferService, xrootd_stack: XRootDStack, xrootd_test_path: str
) -> None:
    transfers = archive_transfers(xrootd_stack, xrootd_test_path, 2)
    job = planned_job(f"svc-{uuid.uuid4()}", await service.vo(), transfers)

    job_id = await service.submit(job)
    assert job_id == job.job_id  # our deterministic id is FTS's
    assert await service.submit(job) == job_id  # 409 at FTS: the same job, no second one

    final = await until_terminal(service, job_id)
    assert final.state == "FINISHED"
    assert [(f.destination, f.state) for f in final.files] == [
        (t.destination, "FINISHED") for t in transfers
    ]
    assert [f.metadata for f in final.files] == [
        {"datafile_id": t.datafile_id, "dataset_id": t.dataset_id} for t in transfers
    ]


async def test_job_parameters_follow_the_kind(
    service: Fts3TransferService,
    fts3_emulator: Fts3Emulator,
    xrootd_stack: XRootDStack,
    xrootd_test_path: str,
) -> None:
    transfers = archive_transfers(xrootd_stack, xrootd_test_path, 1)
    request_id = f"svc-{uuid.uuid4()}"
    job_id = await service.submit(planned_job(request_id, await service.vo(), transfers))

    with fts3_emulator.client() as http:
        job = http.get(f"/jobs/{job_id}").json()
    assert job["archive_timeout"] == 28800 and job["bring_online"] == -1
    assert job["verify_checksum"] == "b" and job["priority"] == 3
    assert job["job_metadata"]["request_id"] == request_id
    assert job["job_metadata"]["kind"] == "archive"
    await until_terminal(service, job_id)


async def test_unknown_ids_are_none_in_a_bulk_answer(service: Fts3TransferService) -> None:
    ghosts = [str(uuid.uuid4()) for _ in range(3)]
    assert await service.status(ghosts) == dict.fromkeys(ghosts)


async def test_vo_is_read_from_whoami_unless_configured(
    service: Fts3TransferService, fts3_emulator: Fts3Emulator
) -> None:
    with fts3_emulator.client() as http:
        delegation_id = http.get("/whoami").json()["delegation_id"]
    assert await service.vo() == delegation_id
    configured = Fts3TransferService.from_settings(
        service_settings(fts3_emulator, RABBITMQ_URL, vo="configured-vo")
    )
    assert await configured.vo() == "configured-vo"
    await configured.aclose()


def test_no_credential_is_a_configuration_error(fts3_emulator: Fts3Emulator) -> None:
    settings = service_settings(fts3_emulator, RABBITMQ_URL).model_copy(
        update={"x509_user_cert": None}
    )
    with pytest.raises(ConfigurationError):
        Fts3TransferService.from_settings(settings)
