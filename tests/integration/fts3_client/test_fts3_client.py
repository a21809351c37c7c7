"""The real wire: Fts3Client against the FTS3 emulator moving bytes between XRootD servers."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from datastore_common.adapters.fts3.client import Fts3Client
from datastore_common.adapters.fts3.wire import JobParams, TransferSpec
from datastore_common.domain.job_ids import fts_job_id
from tests.support.fts3_fixtures import Fts3Emulator
from tests.support.xrootd_fixtures import XRootDStack

from .conftest import put_file, unique_dir, wait_terminal

pytestmark = pytest.mark.integration

ARCHIVE = JobParams(verify_checksum="both", archive_timeout=120, job_metadata={"test": "it"})


async def _archive_specs(stack: XRootDStack, count: int, *, missing: int = 0) -> list[TransferSpec]:
    """``count`` files on idc (the last ``missing`` never written) -> tape, same path."""
    folder = unique_dir()
    specs = []
    for i in range(count):
        path = f"{folder}/file-{i}.dat"
        data = f"{path} {i}\n".encode() * (i + 1)
        source = stack.url("idc", path)
        checksum = None if i >= count - missing else await put_file(source, data)
        specs.append(
            TransferSpec(
                source=source,
                destination=stack.url("tape", path),
                checksum=checksum,
                filesize=None if checksum is None else len(data),
                metadata={"index": i},
            )
        )
    return specs


async def test_archive_job_finishes_and_resubmit_is_harmless(
    fts: Fts3Client, xrootd_stack: XRootDStack
) -> None:
    specs = await _archive_specs(xrootd_stack, 4)
    sid = f"it-{uuid.uuid4()}:0"
    job_id = await fts.submit(specs, ARCHIVE, sid)
    assert job_id == fts_job_id((await fts.whoami()).vo, sid)

    again = await fts.submit(specs, ARCHIVE, sid)  # 409 at FTS: same job, no new one
    assert again == job_id

    final = (await wait_terminal(fts, [job_id]))[job_id]
    assert final.job_state == "FINISHED", final
    assert final.job_finished is not None
    assert sorted(f.dest_surl for f in final.files) == sorted(s.destination for s in specs)
    assert {f.file_state for f in final.files} == {"FINISHED"}
    assert sorted(f.checksum or "" for f in final.files) == sorted(s.checksum or "" for s in specs)

    files = await fts.files(job_id)
    assert len(files) == 4 and all(f.finish_time is not None for f in files)


async def test_missing_source_gives_finisheddirty_with_reason(
    fts: Fts3Client, xrootd_stack: XRootDStack
) -> None:
    specs = await _archive_specs(xrootd_stack, 2, missing=1)
    job_id = await fts.submit(specs, ARCHIVE, f"it-{uuid.uuid4()}:0")
    final = (await wait_terminal(fts, [job_id]))[job_id]
    assert final.job_state == "FINISHEDDIRTY", final
    by_source = {f.source_surl: f for f in final.files}
    good, bad = by_source[specs[0].source], by_source[specs[1].source]
    assert good.file_state == "FINISHED"
    assert bad.file_state == "FAILED"
    assert bad.reason, "a failed file must say why"


async def test_cancel(fts: Fts3Client, xrootd_stack: XRootDStack) -> None:
    specs = await _archive_specs(xrootd_stack, 20)
    job_id = await fts.submit(specs, ARCHIVE, f"it-{uuid.uuid4()}:0")
    canceled = await fts.cancel(job_id)
    assert canceled.job_id == job_id
    assert canceled.job_state == "CANCELED"
    status = (await fts.status([job_id]))[job_id]
    assert status is not None and status.job_state == "CANCELED"
    # cancelling a terminal job is harmless
    assert (await fts.cancel(job_id)).job_state == "CANCELED"


async def test_bulk_status_of_250_ids_in_3_requests(
    fts3_emulator: Fts3Emulator, fts: Fts3Client, xrootd_stack: XRootDStack
) -> None:
    # 250 real jobs, cheap: each has one file whose source does not exist, so it fails at once.
    folder = unique_dir()
    specs = [
        TransferSpec(
            source=xrootd_stack.url("idc", f"{folder}/missing-{i}.dat"),
            destination=xrootd_stack.url("tape", f"{folder}/missing-{i}.dat"),
        )
        for i in range(250)
    ]
    ids = await asyncio.gather(
        *(fts.submit([spec], ARCHIVE, f"it-{uuid.uuid4()}:{i}") for i, spec in enumerate(specs))
    )
    assert len(set(ids)) == 250

    seen: list[httpx.Request] = []

    async def count(request: httpx.Request) -> None:
        seen.append(request)

    async with Fts3Client(
        fts3_emulator.url,
        cert=fts3_emulator.user_cert,
        key=fts3_emulator.user_key,
        ca=fts3_emulator.ca,
        event_hooks={"request": [count]},
    ) as client:
        result = await client.status(ids)

    assert len(seen) == 3
    assert list(result) == ids
    for job_id in ids:
        status = result[job_id]
        assert status is not None and status.job_id == job_id and len(status.files) == 1
    final = await wait_terminal(fts, ids)
    assert {status.job_state for status in final.values()} == {"FAILED"}


async def test_unknown_single_job_is_none(fts: Fts3Client) -> None:
    missing = str(uuid.uuid4())
    assert await fts.status([missing]) == {missing: None}


async def test_token_auth(fts3_emulator: Fts3Emulator, xrootd_stack: XRootDStack) -> None:
    path = f"{unique_dir()}/t.dat"
    data = b"token-auth\n"
    source = xrootd_stack.url("idc", path)
    spec = TransferSpec(source, xrootd_stack.url("udc", path), await put_file(source, data))
    async with Fts3Client(fts3_emulator.url, token=fts3_emulator.token, ca=fts3_emulator.ca) as c:
        who = await c.whoami()
        assert who.method == "oauth2"
        assert await c.delegate() is None
        sid = f"it-{uuid.uuid4()}:0"
        job_id = await c.submit([spec], JobParams(), sid)
        assert job_id == fts_job_id(who.vo, sid)
        assert await c.submit([spec], JobParams(), sid) == job_id
        final = (await wait_terminal(c, [job_id]))[job_id]
    assert final.job_state == "FINISHED", final
    assert final.files[0].checksum == spec.checksum


async def test_first_certificate_submit_delegates(fts3_emulator: Fts3Emulator) -> None:
    """A fresh client forced to re-delegate gets a proxy FTS accepts (PUT .../credential)."""
    async with Fts3Client(
        fts3_emulator.url,
        cert=fts3_emulator.user_cert,
        key=fts3_emulator.user_key,
        ca=fts3_emulator.ca,
    ) as client:
        delegation_id = await client.delegate(force=True)
        assert delegation_id == (await client.whoami()).delegation_id
        remaining = await client.delegation_remaining(delegation_id)
    assert remaining is not None and remaining.total_seconds() > 6 * 3600
