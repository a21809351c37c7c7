"""Session fixture for the local XRootD stack (deploy/local/xrootd.sh): idc, udc and tape.

``xrootd_stack`` runs ``deploy/local/xrootd.sh start`` (idempotent; fails the test loudly when
the servers cannot start) with short tape delays, and reads the delays actually in force from
``var/xrootd/tape/delays.env`` (a stack that was already running keeps its own). The stack
is left running at the end: other areas' tests share it; ``make xrootd-down`` stops it.
``xrootd_test_path`` gives each test its own folder path, e.g. ``/tests/test_x-1a2b3c4d``.

What a session writes to the servers stays out of ``var/`` once it ends: the folders given by
``xrootd_test_path``, and any other that a test names with ``remove_after_session``
(tests/support/workdirs.py), are removed from the three servers' data folders at the end of
the session. Only those: other sessions and ``make demo`` share the servers.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.workdirs import remove_after_session, remove_session_paths

REPO_ROOT = Path(__file__).resolve().parents[2]
XROOTD_SCRIPT = REPO_ROOT / "deploy" / "local" / "xrootd.sh"
TEST_TAPE_DELAYS = {
    "TAPE_MIGRATION_SECONDS": "1",
    "TAPE_EVICTION_SECONDS": "4",
    "TAPE_STAGE_SECONDS": "1",
}


@dataclass(frozen=True)
class TapeDelays:
    migration: float
    eviction: float
    stage: float


@dataclass(frozen=True)
class XRootDStack:
    """Root URLs of the three servers (``root://127.0.0.1:PORT``) and the tape delays."""

    idc: str
    udc: str
    tape: str
    var_dir: Path
    tape_delays: TapeDelays

    def url(self, server: str, path: str) -> str:
        """``url("idc", "/a/b")`` -> ``root://127.0.0.1:11094//a/b``."""
        return f"{getattr(self, server)}//{path.lstrip('/')}"

    def data_dir(self, server: str) -> Path:
        """The server's local data folder (read-only use in tests: files belong to xrootd)."""
        return self.var_dir / "xrootd" / server / "data"


def run_xrootd_script(
    *arguments: str,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(extra_env or {})}
    return subprocess.run(
        ["bash", str(XROOTD_SCRIPT), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def read_tape_delays(var_dir: Path) -> TapeDelays:
    delays_file = var_dir / "xrootd" / "tape" / "delays.env"
    values = dict(re.findall(r"^(\w+)=(\S+)$", delays_file.read_text(), re.MULTILINE))
    return TapeDelays(
        migration=float(values["TAPE_MIGRATION_SECONDS"]),
        eviction=float(values["TAPE_EVICTION_SECONDS"]),
        stage=float(values["TAPE_STAGE_SECONDS"]),
    )


def xrootd_ports() -> dict[str, str]:
    """The local servers' ports (``XROOTD_<NAME>_PORT``, as deploy/local/xrootd.sh reads them)."""
    return {
        name: os.environ.get(f"XROOTD_{name.upper()}_PORT", default)
        for name, default in (("idc", "11094"), ("udc", "11095"), ("tape", "11096"))
    }


def storage_roots() -> dict[str, str]:
    """The settings' storage roots on the local servers: the workers refuse transfers
    outside them (``domain.trust``)."""
    ports = xrootd_ports()
    return {
        "instrument_data_cache": f"root://127.0.0.1:{ports['idc']}//",
        "user_data_cache": f"root://127.0.0.1:{ports['udc']}//",
        "tape_archive": f"root://127.0.0.1:{ports['tape']}//",
    }


@pytest.fixture(scope="session")
def xrootd_stack() -> Iterator[XRootDStack]:
    # Explicit settings in the environment win over the short test delays.
    test_env = {key: os.environ.get(key, value) for key, value in TEST_TAPE_DELAYS.items()}
    result = run_xrootd_script("start", extra_env=test_env)
    if result.returncode != 0:
        pytest.fail(
            f"deploy/local/xrootd.sh start failed (rc {result.returncode}):\n"
            f"{result.stderr[-3000:]}",
            pytrace=False,
        )
    var_dir = Path(os.environ.get("DATASTORE_VAR", REPO_ROOT / "var"))
    ports = xrootd_ports()
    # Everything that uses the servers (the FTS3 emulator, e2e stacks) ends before this.
    try:
        yield XRootDStack(
            idc=f"root://127.0.0.1:{ports['idc']}",
            udc=f"root://127.0.0.1:{ports['udc']}",
            tape=f"root://127.0.0.1:{ports['tape']}",
            var_dir=var_dir,
            tape_delays=read_tape_delays(var_dir),
        )
    finally:
        remove_session_paths(var_dir)


@pytest.fixture
def xrootd_test_path(request: pytest.FixtureRequest) -> str:
    """A folder path no other test uses (not created: tests make it where they need it)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60]
    path = f"/tests/{name}-{uuid.uuid4().hex[:8]}"
    remove_after_session(path)
    return path
