"""deploy/local/xrootd.sh and the three servers it runs."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest

from datastore_common.adapters.xrootd.client import XRootDClient
from tests.integration.xrootd import cli
from tests.support.xrootd_fixtures import XRootDStack, run_xrootd_script

pytestmark = pytest.mark.integration


def pids(stack: XRootDStack) -> dict[str, str]:
    return {
        name: (stack.var_dir / "xrootd" / name / "xrootd.pid").read_text().strip()
        for name in ("idc", "udc", "tape")
    }


def test_start_twice_keeps_the_running_servers(xrootd_stack: XRootDStack) -> None:
    before = pids(xrootd_stack)

    result = run_xrootd_script("start")

    assert result.returncode == 0, result.stderr
    assert result.stderr.count("already running") == 3
    assert pids(xrootd_stack) == before


def test_status_reports_three_running_servers(xrootd_stack: XRootDStack) -> None:
    result = run_xrootd_script("status")

    assert result.returncode == 0, result.stdout
    for name, url in (
        ("idc", xrootd_stack.idc),
        ("udc", xrootd_stack.udc),
        ("tape", xrootd_stack.tape),
    ):
        assert f"{name} running" in result.stdout
        assert f"url={url}" in result.stdout


@pytest.mark.skipif(os.getuid() != 0, reason="only root has privileges to drop")
def test_servers_run_unprivileged(xrootd_stack: XRootDStack) -> None:
    # Real, effective and saved ids: with `-R` alone the real id stayed root.
    for pid in pids(xrootd_stack).values():
        uid_line = next(
            line
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
        real, effective, saved, _ = (int(value) for value in uid_line.split()[1:])
        assert 0 not in (real, effective, saved), uid_line


async def test_third_party_copy_from_idc_to_tape_keeps_the_checksum(
    xrootd_stack: XRootDStack, xrootd_test_path: str, tmp_path: Path
) -> None:
    content = os.urandom(300_000)
    local = tmp_path / "raw.nxs"
    local.write_bytes(content)
    source = xrootd_stack.url("idc", f"{xrootd_test_path}/raw.nxs")
    destination = xrootd_stack.url("tape", f"{xrootd_test_path}/raw.nxs")
    cli.upload(local, source)
    await XRootDClient().mkdir(xrootd_stack.url("tape", xrootd_test_path))

    cli.third_party_copy(source, destination)

    storage = XRootDClient()
    copied = await storage.stat(destination)
    assert copied is not None and copied.size == len(content)
    assert await storage.checksum(destination) == f"adler32:{zlib.adler32(content):08x}"
    assert (
        xrootd_stack.data_dir("tape") / xrootd_test_path.lstrip("/") / "raw.nxs"
    ).read_bytes() == content
