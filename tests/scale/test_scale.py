"""Scale on this machine kind: one dataset of 10,000 files and one of 4 large files (20 GB each
by default, sparse at the source) both reach FINISHED while other archives run.

Run by ``make scale``, not by ``make test``: it takes many minutes and, since the tape copies
are real bytes, ``4 x SCALE_FILE_GB`` of free disk (checked first; the test fails, never
skips, without it). Its reduced form in ``make test`` is tests/e2e/test_archive_large.py
(2,500 files). After each dataset: every datafile FINISHED in ICAT with the source's size and
adler32, every file on tape with that adler32, the dataset FINISHED, nothing dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from datastore_common.adapters.xrootd.client import XRootDClient
from tests.chaos.workload import Workload
from tests.e2e.api_client import (
    ARCHIVAL_STATE,
    dataset_folder,
    icat_root,
    wait_for,
)
from tests.e2e.test_archive_large import write_directly
from tests.support.factories import seed_body
from tests.support.stack_fixtures import DatastoreStack, StackFactory
from tests.support.workdirs import remove_after_session
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(7200)]

MANY_FILES = 10_000
LARGE_FILES = 4
LARGE_FILE_BYTES = int(float(os.environ.get("SCALE_FILE_GB", "20")) * 10**9)  # GB, not GiB
#: Small archives sent meanwhile: the big ones must not starve them, nor they the big ones.
OTHER_DATASETS = 30
ADLER_MOD = 65521
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "scale.json"


def record(name: str, figures: dict[str, Any]) -> None:
    """Keep the run's figures in bench/results/scale.json (one entry per test)."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[name] = figures
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def adler32_of_sparse(head: bytes, size: int) -> str:
    """adler32 of ``head`` followed by zeros up to ``size`` bytes, without reading them:
    each zero byte leaves A alone and adds A to B."""
    value = zlib.adler32(head)
    a, b = value & 0xFFFF, value >> 16
    b = (b + (size - len(head)) * a) % ADLER_MOD
    return f"{(b << 16) | a:08x}"


def write_sparse(data_dir: Path, folder: str, count: int, size: int) -> dict[str, str]:
    """Files of ``size`` bytes whose first MiB is random and the rest a hole; name -> adler32."""
    write_directly(data_dir, folder, 0)  # the folders, owned by the server's user
    owner = data_dir.stat()
    sums = {}
    for i in range(count):
        path = data_dir / folder / f"file_{i:04d}.nxs"
        head = os.urandom(1024 * 1024)
        with path.open("wb") as out:
            out.write(head)
            out.truncate(size)
        os.chown(path, owner.st_uid, owner.st_gid)
        sums[path.name] = adler32_of_sparse(head, size)
    return sums


def test_adler32_of_a_sparse_file_matches_reading_it(tmp_path: Path) -> None:
    head, size = os.urandom(1000), 5 * 1024 * 1024 + 17
    expected = f"{zlib.adler32(head + bytes(size - len(head))):08x}"
    assert adler32_of_sparse(head, size) == expected


def login(stack: DatastoreStack) -> dict[str, str]:
    answer = httpx.post(
        f"{stack.gateway_url}/login",
        json={"auth": "simple", "username": "root", "password": "pw"},
        timeout=30,
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['sessionId']}"}


def archive(stack: DatastoreStack, name: str, files: int) -> list[str]:
    answer = httpx.post(
        f"{stack.gateway_url}/archive",
        json=seed_body(name, files=files),
        headers={**login(stack), "Idempotency-Key": f"scale-{name}"},
        timeout=300,
    )
    assert answer.status_code == 202, answer.text
    return list(answer.json()["job_ids"])


def check_dataset(
    stack: DatastoreStack, name: str, sums: dict[str, str], *, size: int, timeout: float
) -> None:
    """Every datafile FINISHED in ICAT with the source's adler32, and on tape with it too."""
    client = icat_root(stack.icat_url)

    def finished() -> int:
        return len(
            client.search(
                "SELECT p.id FROM DatafileParameter p JOIN p.datafile f JOIN f.dataset d "
                f"JOIN d.investigation i JOIN p.type t WHERE i.name = '{name}' "
                f"AND t.name = '{ARCHIVAL_STATE}' AND p.stringValue = 'FINISHED'"
            )
        )

    wait_for(lambda: finished() == len(sums), timeout, f"{name}: every datafile FINISHED", 10)
    datafiles = client.search(
        f"SELECT f FROM Datafile f JOIN f.dataset d JOIN d.investigation i WHERE i.name = '{name}'"
    )
    assert {f.name: f.checksum for f in datafiles} == {
        n: f"adler32:{adler}" for n, adler in sums.items()
    }, f"{name}: ICAT's checksums are not the sources'"
    assert {f.fileSize for f in datafiles} == {size}, f"{name}: ICAT's sizes are not the sources'"
    states = client.search(
        "SELECT p.stringValue FROM DatasetParameter p JOIN p.dataset d JOIN d.investigation i "
        f"JOIN p.type t WHERE i.name = '{name}' AND t.name = '{ARCHIVAL_STATE}'"
    )
    assert states == ["FINISHED"]
    settings = stack.settings
    tape = settings.tape_archive.rstrip("/")
    folder = f"/{settings.tape_root_dir}{dataset_folder(name)}"
    storage = XRootDClient()

    async def tape_sums() -> dict[str, str]:
        semaphore = asyncio.Semaphore(16)

        async def one(file_name: str) -> tuple[str, str]:
            async with semaphore:
                answer = await storage.checksum(f"{tape}/{folder}/{file_name}")
                return file_name, answer.removeprefix("adler32:")

        return dict(await asyncio.gather(*(one(n) for n in sums)))

    assert asyncio.run(tape_sums()) == sums, f"{name}: tape copies differ from the sources"


class OtherWork(threading.Thread):
    """Small archives sent and followed while a big one runs."""

    def __init__(self, stack: DatastoreStack, idc_data: Path) -> None:
        super().__init__(daemon=True)
        self.workload = Workload.prepare(stack, idc_data, datasets=OTHER_DATASETS)
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.workload.send_all(threads=2)
            ended = self.workload.wait_until_all_ended(3600)
            states = {record["state"] for record in ended.values()}
            assert states == {"FINISHED"}, f"other work ended {states}"
        except BaseException as exc:  # reported by the test's thread
            self.error = exc
        self.seconds = time.monotonic() - started

    def check(self) -> None:
        self.join(3600)
        if self.error is not None:
            raise self.error
        assert self.workload.dead_letters() == {}


@pytest.fixture
def scale_stack(datastore_stack_factory: StackFactory) -> DatastoreStack:
    """A stack of its own with the settings a facility starts from (no test shortcuts)."""
    return datastore_stack_factory(replicas=1)


def test_a_dataset_of_10000_files_finishes_while_other_work_runs(
    scale_stack: DatastoreStack, xrootd_stack: XRootDStack
) -> None:
    name = f"TENK{uuid.uuid4().hex[:8].upper()}"
    folder = dataset_folder(name)
    write_directly(xrootd_stack.data_dir("idc"), folder, MANY_FILES)
    sums = {
        path.name: f"{zlib.adler32(path.read_bytes()):08x}"
        for path in (xrootd_stack.data_dir("idc") / folder).iterdir()
    }
    other = OtherWork(scale_stack, xrootd_stack.data_dir("idc"))
    started = time.monotonic()
    other.start()
    job_ids = archive(scale_stack, name, MANY_FILES)
    assert len(job_ids) == MANY_FILES // scale_stack.settings.fts3.max_files_per_job
    check_dataset(scale_stack, name, sums, size=1024, timeout=3600)
    seconds = time.monotonic() - started
    print(f"\nscale: {MANY_FILES} files FINISHED in {seconds:.0f} s")
    other.check()
    print(f"scale: {OTHER_DATASETS} small archives meanwhile in {other.seconds:.0f} s")
    record(
        "many_files",
        {
            "datafiles": MANY_FILES,
            "jobs": len(job_ids),
            "seconds_to_finished": round(seconds, 1),
            "other_archives": OTHER_DATASETS,
            "other_archives_seconds": round(other.seconds, 1),
        },
    )


def test_four_large_files_finish_while_other_work_runs(
    scale_stack: DatastoreStack, xrootd_stack: XRootDStack
) -> None:
    needed = int(LARGE_FILES * LARGE_FILE_BYTES * 1.05)
    free = shutil.disk_usage(xrootd_stack.data_dir("tape")).free
    assert free > needed, (
        f"the tape copies need {needed / 1024**3:.0f} GiB free on "
        f"{xrootd_stack.data_dir('tape')}, there are {free / 1024**3:.0f} GiB: "
        "free some, or set SCALE_FILE_GB lower"
    )
    name = f"HUGE{uuid.uuid4().hex[:8].upper()}"
    folder = dataset_folder(name)
    sums = write_sparse(xrootd_stack.data_dir("idc"), folder, LARGE_FILES, LARGE_FILE_BYTES)
    remove_after_session(str(Path(folder).parents[1]))
    other = OtherWork(scale_stack, xrootd_stack.data_dir("idc"))
    started = time.monotonic()
    other.start()
    archive(scale_stack, name, LARGE_FILES)
    try:
        check_dataset(scale_stack, name, sums, size=LARGE_FILE_BYTES, timeout=6000)
    finally:
        # Real bytes on the tape server: do not leave them for the next run.
        settings: Any = scale_stack.settings
        shutil.rmtree(
            xrootd_stack.data_dir("tape") / settings.tape_root_dir / Path(folder).parents[1],
            ignore_errors=True,
        )
    gb = LARGE_FILE_BYTES / 10**9
    seconds = time.monotonic() - started
    print(f"\nscale: {LARGE_FILES} x {gb:g} GB FINISHED in {seconds:.0f} s")
    other.check()
    print(f"scale: {OTHER_DATASETS} small archives meanwhile in {other.seconds:.0f} s")
    record(
        "large_files",
        {
            "datafiles": LARGE_FILES,
            "gb_each": gb,
            "seconds_to_finished": round(seconds, 1),
            "other_archives": OTHER_DATASETS,
            "other_archives_seconds": round(other.seconds, 1),
        },
    )
