"""Jobs that move real bytes between the local XRootD servers, driven by the official client."""

from __future__ import annotations

import os
import random
import tempfile
import time

import pytest
from fts3.rest.client import easy as fts3

from tests.integration.fts3_emulator.helpers import (
    adler32,
    exists,
    official_context,
    put_random_file,
    unique_dir,
    wait_for_job,
)

pytestmark = pytest.mark.integration

MB = 1 << 20


def test_archive_of_four_files_finishes_after_archiving_with_identical_checksums(
    fts3_emulator, fts3_xrootd
):
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    sources = [f"{fts3_xrootd.idc}/{folder}/scan/file_{i:04d}.nxs" for i in range(4)]
    destinations = [f"{fts3_xrootd.tape}/{folder}/archive/scan/file_{i:04d}.nxs" for i in range(4)]
    checksums = [put_random_file(url, 2 * MB + i) for i, url in enumerate(sources)]
    transfers = [
        fts3.new_transfer(
            src, dst, checksum=f"adler32:{value}", filesize=2 * MB + i, metadata={"datafile": i}
        )
        for i, (src, dst, value) in enumerate(zip(sources, destinations, checksums, strict=True))
    ]
    job_id = fts3.submit(
        ctx,
        fts3.new_job(
            transfers, verify_checksum="both", archive_timeout=120, metadata={"test": "archive"}
        ),
    )

    job, seen = wait_for_job(ctx, job_id)

    assert job["job_state"] == "FINISHED", [f["reason"] for f in job["files"]]
    # Every file went ACTIVE -> ARCHIVING -> FINISHED (on tape). The job shows ARCHIVING only
    # while all pending files archive, which the tape's migration delay may make too brief to
    # see from here; the file timestamps prove the passage.
    assert seen[-1] == "FINISHED" and set(seen) <= {
        "SUBMITTED",
        "ACTIVE",
        "ARCHIVING",
        "FINISHED",
    }, seen
    assert job["job_metadata"] == {"test": "archive", "auth_method": "certificate"}
    assert job["archive_timeout"] == 120
    assert job["dm"] == []
    assert sorted(f["file_state"] for f in job["files"]) == ["FINISHED"] * 4
    for entry, value in zip(
        sorted(job["files"], key=lambda f: f["file_index"]), checksums, strict=True
    ):
        assert adler32(entry["dest_surl"]) == value
        assert entry["checksum"] == f"adler32:{value}"
        assert entry["archive_start_time"] is not None
        assert entry["archive_finish_time"] >= entry["archive_start_time"]
        assert entry["filesize"] == 2 * MB + entry["file_index"]


def test_restore_from_tape_stages_then_copies(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    on_tape = f"{fts3_xrootd.tape}/{folder}/file.nxs"
    restored = f"{fts3_xrootd.udc}/{folder}/restored/file.nxs"
    value = put_random_file(on_tape, 1 * MB)

    job_id = fts3.submit(
        ctx,
        fts3.new_job(
            [fts3.new_transfer(on_tape, restored)],
            bring_online=60,
            copy_pin_lifetime=60,
            verify_checksum=True,
        ),
    )
    first = fts3.get_job_status(ctx, job_id)
    job, seen = wait_for_job(ctx, job_id)

    assert seen[0] == "STAGING" or first["job_state"] == "STAGING", seen
    assert job["job_state"] == "FINISHED", [f["reason"] for f in job["files"]]
    entry = job["files"][0]
    assert entry["staging_start"] and entry["staging_finished"] and entry["bringonline_token"]
    assert adler32(restored) == value


def test_missing_source_fails_that_file_and_the_job_is_finisheddirty(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    present = f"{fts3_xrootd.idc}/{folder}/present.dat"
    put_random_file(present, 64 * 1024)
    transfers = [
        fts3.new_transfer(present, f"{fts3_xrootd.udc}/{folder}/present.dat"),
        fts3.new_transfer(
            f"{fts3_xrootd.idc}/{folder}/missing.dat", f"{fts3_xrootd.udc}/{folder}/missing.dat"
        ),
    ]
    job_id = fts3.submit(ctx, fts3.new_job(transfers, verify_checksum=True))

    job, _ = wait_for_job(ctx, job_id)

    assert job["job_state"] == "FINISHEDDIRTY"
    assert job["reason"].startswith("One or more files failed")
    states = {f["source_surl"].rsplit("/", 1)[-1]: f for f in job["files"]}
    assert states["present.dat"]["file_state"] == "FINISHED"
    assert states["missing.dat"]["file_state"] == "FAILED"
    assert "No such file" in states["missing.dat"]["reason"]
    assert job["job_finished"] is not None


def test_checksum_mismatch_fails_the_file_and_leaves_no_destination(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    source = f"{fts3_xrootd.idc}/{folder}/data.dat"
    destination = f"{fts3_xrootd.tape}/{folder}/data.dat"
    real = put_random_file(source, 128 * 1024)
    wrong = "0badc0de" if real != "0badc0de" else "0badc0df"
    job_id = fts3.submit(
        ctx,
        fts3.new_job(
            [fts3.new_transfer(source, destination, checksum=f"ADLER32:{wrong.upper()}")],
            verify_checksum="both",
            retry=-1,
        ),
    )

    job, _ = wait_for_job(ctx, job_id)

    assert job["job_state"] == "FAILED"
    assert "checksum" in job["files"][0]["reason"].lower()
    assert wrong in job["files"][0]["reason"]
    assert not exists(destination)


def test_destination_exists_without_overwrite_fails(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    source, destination = f"{fts3_xrootd.idc}/{folder}/a", f"{fts3_xrootd.udc}/{folder}/a"
    put_random_file(source, 1024)
    put_random_file(destination, 1024)
    job_id = fts3.submit(ctx, fts3.new_job([fts3.new_transfer(source, destination)]))
    job, _ = wait_for_job(ctx, job_id)
    assert job["job_state"] == "FAILED"
    assert "exists" in job["files"][0]["reason"]

    job_id = fts3.submit(
        ctx,
        fts3.new_job(
            [fts3.new_transfer(source, destination)], overwrite=True, verify_checksum=True
        ),
    )
    job, _ = wait_for_job(ctx, job_id)
    assert job["job_state"] == "FINISHED", [f["reason"] for f in job["files"]]
    assert job["overwrite_flag"] == "Y"
    assert adler32(destination) == adler32(source)


def test_cancel_stops_pending_files_and_a_second_cancel_is_not_modified(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    # More files than the emulator copies at once (4), big enough to still be running.
    sources = [f"{fts3_xrootd.idc}/{folder}/c{i}" for i in range(8)]
    for url in sources:
        put_random_file(url, 24 * MB)
    transfers = [
        fts3.new_transfer(url, f"{fts3_xrootd.udc}/{folder}/c{i}") for i, url in enumerate(sources)
    ]
    job_id = fts3.submit(ctx, fts3.new_job(transfers, verify_checksum=True))

    canceled = fts3.cancel(ctx, job_id)

    assert canceled["job_state"] == "CANCELED"
    assert canceled["reason"] == "Job canceled by the user"
    assert canceled["http_status"] == "200 Ok"
    # The engine must not move canceled files on. A job submitted after the cancel that
    # finishes proves the engine has scheduled past it: by then it would have picked them up.
    probe_source = f"{fts3_xrootd.idc}/{folder}/probe"
    put_random_file(probe_source, 1024)
    probe_id = fts3.submit(
        ctx, fts3.new_job([fts3.new_transfer(probe_source, f"{fts3_xrootd.udc}/{folder}/probe")])
    )
    probe, _ = wait_for_job(ctx, probe_id)
    assert probe["job_state"] == "FINISHED", [f["reason"] for f in probe["files"]]
    job = fts3.get_job_status(ctx, job_id, list_files=True)
    assert job["job_state"] == "CANCELED"
    assert {f["file_state"] for f in job["files"]} == {"CANCELED"}
    assert all(f["reason"] == "Job canceled by the user" for f in job["files"])
    # Killed copies are cleaned up (the storage may finish creating one a moment after the kill).
    deadline = time.monotonic() + 10
    while any(exists(f["dest_surl"]) for f in job["files"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(exists(f["dest_surl"]) for f in job["files"])
    again = fts3.cancel(ctx, job_id)
    assert again["job_state"] == "CANCELED"
    assert again["http_status"] == "304 Not Modified"


def test_cancel_of_single_files_keeps_the_rest_running(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    sources = [f"{fts3_xrootd.idc}/{folder}/g{i}" for i in range(6)]
    for url in sources:
        put_random_file(url, 16 * MB)
    job_id = fts3.submit(
        ctx,
        fts3.new_job(
            [
                fts3.new_transfer(url, f"{fts3_xrootd.udc}/{folder}/g{i}")
                for i, url in enumerate(sources)
            ],
            verify_checksum=True,
        ),
    )
    files = sorted(
        fts3.get_job_status(ctx, job_id, list_files=True)["files"], key=lambda f: f["file_index"]
    )

    answer = fts3.cancel(ctx, job_id, file_ids=[files[-1]["file_id"]])

    assert answer == "CANCELED"
    job, _ = wait_for_job(ctx, job_id)
    assert job["job_state"] == "CANCELED"  # FTS: finished + canceled and nothing failed
    states = {f["file_id"]: f["file_state"] for f in job["files"]}
    assert states.pop(files[-1]["file_id"]) == "CANCELED"
    assert set(states.values()) == {"FINISHED"}


def test_restart_mid_transfer_resumes_and_finishes(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    sources = [f"{fts3_xrootd.idc}/{folder}/big_{i}" for i in range(6)]
    checksums = [put_random_file(url, 48 * MB) for url in sources]
    destinations = [f"{fts3_xrootd.tape}/{folder}/big_{i}" for i in range(6)]
    job_id = fts3.submit(
        ctx,
        fts3.new_job(
            [fts3.new_transfer(s, d) for s, d in zip(sources, destinations, strict=True)],
            verify_checksum=True,
            archive_timeout=120,
        ),
    )
    wait_for_job(ctx, job_id, timeout=60, until=lambda job: job["job_state"] != "SUBMITTED")

    fts3_emulator.restart(hard=True)  # SIGKILL: nothing gets cleaned up on the way out

    job, seen = wait_for_job(official_context(fts3_emulator), job_id, timeout=180)
    assert job["job_state"] == "FINISHED", (seen, job["files"])
    assert any(f["retry"] >= 1 for f in job["files"]), "no copy was caught mid-transfer"
    for destination, value in zip(destinations, checksums, strict=True):
        assert adler32(destination) == value


def test_staging_that_never_completes_fails_after_bring_online(fts3_emulator, fts3_xrootd):
    # The disk cache has no tape back-end: its prepare queries never report the file online.
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    source = f"{fts3_xrootd.idc}/{folder}/s"
    put_random_file(source, 1024)
    job_id = fts3.submit(
        ctx,
        fts3.new_job([fts3.new_transfer(source, f"{fts3_xrootd.udc}/{folder}/s")], bring_online=2),
    )
    job, seen = wait_for_job(ctx, job_id, timeout=60)
    assert seen[0] == "STAGING"
    assert job["job_state"] == "FAILED"
    assert "Staging timeout" in job["files"][0]["reason"]


def test_archiving_that_never_reaches_tape_fails_after_archive_timeout(fts3_emulator, fts3_xrootd):
    # The user cache is disk only: the file is copied but never reported on tape.
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    source, destination = f"{fts3_xrootd.idc}/{folder}/a", f"{fts3_xrootd.udc}/{folder}/a"
    put_random_file(source, 1024)
    job_id = fts3.submit(
        ctx, fts3.new_job([fts3.new_transfer(source, destination)], archive_timeout=2)
    )
    job, seen = wait_for_job(ctx, job_id, timeout=60)
    assert "ARCHIVING" in seen
    assert job["job_state"] == "FAILED"
    assert "Archiving timeout" in job["files"][0]["reason"]
    assert exists(destination)


def _upload_small_files(urls: list[str], size: int) -> list[str]:
    """Write ``size`` random bytes at each URL (in-process, many at once); return adler32s."""
    import zlib

    from XRootD import client as xrd

    local = []
    with tempfile.TemporaryDirectory() as folder:
        for index, _ in enumerate(urls):
            data = os.urandom(size)
            path = os.path.join(folder, f"f{index}")
            with open(path, "wb") as handle:
                handle.write(data)
            local.append((path, f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"))
        process = xrd.CopyProcess()
        for (path, _), url in zip(local, urls, strict=True):
            process.add_job(path, url, force=True, mkdir=True)
        process.parallel(8)
        assert process.prepare().ok
        status, results = process.run()
        assert status.ok and all(r["status"].ok for r in results), status
    return [value for _, value in local]


def test_one_job_of_1000_small_files_all_finish_archived(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    count = 1000
    sources = [f"{fts3_xrootd.idc}/{folder}/src/d{i // 100}/f{i:04d}.dat" for i in range(count)]
    destinations = [
        f"{fts3_xrootd.tape}/{folder}/archive/d{i // 100}/f{i:04d}.dat" for i in range(count)
    ]
    checksums = _upload_small_files(sources, 16 * 1024)
    transfers = [
        fts3.new_transfer(src, dst, checksum=f"adler32:{value}", filesize=16 * 1024)
        for src, dst, value in zip(sources, destinations, checksums, strict=True)
    ]
    job_id = fts3.submit(ctx, fts3.new_job(transfers, verify_checksum="both", archive_timeout=600))

    job, _ = wait_for_job(ctx, job_id, timeout=600)

    states = [f["file_state"] for f in job["files"]]
    assert job["job_state"] == "FINISHED", {s: states.count(s) for s in set(states)}
    assert len(states) == count and set(states) == {"FINISHED"}
    assert all(f["archive_finish_time"] and f["filesize"] == 16 * 1024 for f in job["files"])
    by_dest = {f["dest_surl"]: f for f in job["files"]}
    for index in random.sample(range(count), 25):
        assert adler32(destinations[index]) == checksums[index]
        assert by_dest[destinations[index]]["checksum"] == f"adler32:{checksums[index]}"
