"""Fixtures starting the ICAT emulator as a real subprocess on a free loopback port.

``icat_emulator`` (session scope) is one shared instance; ``icat_emulator_factory`` starts
further fresh instances (own temp SQLite), e.g. for restart or re-ingest tests.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.workdirs import discard_unless_failed

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "local" / "icat" / "emulator.yaml"
EXAMPLE_YAML = REPO / "deploy" / "local" / "icat" / "example.yaml"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class IcatEmulator:
    """A running emulator process; ``url`` is what python-icat's Client takes."""

    database: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: Its configuration (users and passwords): the local stack's unless a test needs others.
    config: Path = CONFIG

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> IcatEmulator:
        self.log_path = self.database.with_suffix(".log")
        with self.log_path.open("ab") as log:  # the process keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "icat_emulator",
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                    "--database",
                    str(self.database),
                    "--log-level",
                    "WARNING",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"icat emulator exited: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/icat/version", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"icat emulator not ready on {self.url} after {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> IcatEmulator:
        self.stop()
        self.port = free_port()
        return self.start()

    def server_stats(self) -> dict[str, dict[str, float]]:
        import json

        with urllib.request.urlopen(f"{self.url}/emulator/stats", timeout=5) as resp:
            return json.loads(resp.read())


def run_icat_script(
    script: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one of python-icat's scripts (icatingest.py, icatdump.py, ...) unmodified."""
    return subprocess.run(
        [sys.executable, str(VENV_BIN / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.fixture(scope="session")
def icat_emulator_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., IcatEmulator]]:
    """Call ``factory()`` to get a fresh, started emulator (stopped at session end; its folder
    is removed then too, unless a test failed); ``factory(config)`` with other users."""
    started: list[IcatEmulator] = []

    def factory(config: Path = CONFIG) -> IcatEmulator:
        directory = tmp_path_factory.mktemp("icat")
        emulator = IcatEmulator(database=directory / "icat.sqlite", config=config)
        started.append(emulator)
        return emulator.start()

    yield factory
    try:
        for emulator in started:
            with contextlib.suppress(Exception):  # stop the others all the same
                emulator.stop()
    finally:
        discard_unless_failed(request.session, *(e.database.parent for e in started))


@pytest.fixture(scope="session")
def icat_emulator(icat_emulator_factory) -> IcatEmulator:
    """The shared emulator of the test session; ``.url`` is its base URL."""
    return icat_emulator_factory()
