"""Session fixtures for the FTS3 emulator: throw-away certificates and a running emulator.

``fts3_emulator`` starts ``python -m fts3_emulator`` on a free loopback port with a temporary
SQLite database and certificates made by ``deploy/local/certs.sh``, waits until ``GET /``
answers over HTTPS with client-certificate authentication, and stops it at teardown. It needs
the local XRootD stack: the ``xrootd_stack`` fixture when it exists, else
``deploy/local/xrootd.sh start`` (idempotent).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.workdirs import discard_unless_failed

REPO_ROOT = Path(__file__).resolve().parents[2]
CERTS_SCRIPT = REPO_ROOT / "deploy" / "local" / "certs.sh"
XROOTD_SCRIPT = REPO_ROOT / "deploy" / "local" / "xrootd.sh"
TEST_TOKEN = "fts3-emulator-test-token"
TEST_TOKEN_DN = "/C=UK/O=Datastore/OU=Services/CN=FTS3 Emulator Test Token"


@dataclass(frozen=True)
class CertificateSet:
    directory: Path
    ca: Path
    ca_key: Path
    host_cert: Path
    host_key: Path
    user_cert: Path
    user_key: Path


@dataclass(frozen=True)
class XrootdEndpoints:
    idc: str
    udc: str
    tape: str


@dataclass
class Fts3Emulator:
    """A running emulator; ``restart()`` stops and starts it on the same port and database."""

    url: str
    port: int
    certs: CertificateSet
    config_path: Path
    db_path: Path
    log_path: Path
    token: str = TEST_TOKEN
    token_dn: str = TEST_TOKEN_DN
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def ca(self) -> Path:
        return self.certs.ca

    @property
    def user_cert(self) -> Path:
        return self.certs.user_cert

    @property
    def user_key(self) -> Path:
        return self.certs.user_key

    def client(self, *, with_cert: bool = True, **kwargs: object) -> httpx.Client:
        cert = (str(self.user_cert), str(self.user_key)) if with_cert else None
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert:
            context.load_cert_chain(*cert)
        return httpx.Client(base_url=self.url, verify=context, timeout=30, **kwargs)  # type: ignore[arg-type]

    def start(self) -> None:
        with self.log_path.open("ab") as log:  # the process keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fts3_emulator", "--config", str(self.config_path)],
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={k: v for k, v in os.environ.items() if not k.startswith("FTS3_EMULATOR_")},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fts3 emulator exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError), self.client() as client:
                if client.get("/").status_code == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"fts3 emulator not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self, *, hard: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def restart(self, *, hard: bool = False) -> None:
        self.stop(hard=hard)
        self.start()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def fts3_certs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CertificateSet]:
    var = tmp_path_factory.mktemp("fts3-var")
    subprocess.run(
        ["bash", str(CERTS_SCRIPT)],
        check=True,
        capture_output=True,
        env={**os.environ, "DATASTORE_VAR": str(var)},
    )
    directory = var / "certs"
    yield CertificateSet(
        directory=directory,
        ca=directory / "ca.pem",
        ca_key=directory / "ca.key",
        host_cert=directory / "hostcert.pem",
        host_key=directory / "hostkey.pem",
        user_cert=directory / "usercert.pem",
        user_key=directory / "userkey.pem",
    )
    # Whatever used the certificates (the emulator, e2e stacks) has stopped by now.
    discard_unless_failed(request.session, var)


@pytest.fixture(scope="session")
def fts3_xrootd(request: pytest.FixtureRequest) -> XrootdEndpoints:
    """The three XRootD servers, from the shared ``xrootd_stack`` fixture when it exists."""
    try:
        stack = request.getfixturevalue("xrootd_stack")
    except pytest.FixtureLookupError:
        stack = None
    if stack is not None:
        if isinstance(stack, dict):
            return XrootdEndpoints(idc=stack["idc"], udc=stack["udc"], tape=stack["tape"])
        if hasattr(stack, "idc"):
            return XrootdEndpoints(idc=str(stack.idc), udc=str(stack.udc), tape=str(stack.tape))
        idc, udc, tape = (str(url) for url in stack)
        return XrootdEndpoints(idc=idc, udc=udc, tape=tape)
    result = subprocess.run(
        ["bash", str(XROOTD_SCRIPT), "start"], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        pytest.fail(f"deploy/local/xrootd.sh start failed: {result.stderr[-2000:]}")
    return XrootdEndpoints(
        idc="root://127.0.0.1:11094", udc="root://127.0.0.1:11095", tape="root://127.0.0.1:11096"
    )


@pytest.fixture(scope="session")
def fts3_emulator(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fts3_certs: CertificateSet,
    fts3_xrootd: XrootdEndpoints,
) -> Iterator[Fts3Emulator]:
    work = tmp_path_factory.mktemp("fts3-emulator")
    port = free_port()
    config_path = work / "emulator.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "host": "127.0.0.1",
                "port": port,
                "db_path": str(work / "fts3.sqlite"),
                "cert": str(fts3_certs.host_cert),
                "key": str(fts3_certs.host_key),
                "ca": str(fts3_certs.ca),
                "tokens": {TEST_TOKEN: {"user_dn": TEST_TOKEN_DN}},
                "concurrency": 8,
                "poll_interval": 0.2,
                "log_level": "info",
            }
        )
    )
    emulator = Fts3Emulator(
        url=f"https://127.0.0.1:{port}",
        port=port,
        certs=fts3_certs,
        config_path=config_path,
        db_path=work / "fts3.sqlite",
        log_path=work / "emulator.log",
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
        discard_unless_failed(request.session, work)
