"""The whole system for end-to-end tests: the four services as real processes.

``datastore_stack`` (session) writes a config for this run (its own broker exchange and queue
names, a free gateway port, a short poll interval, the test emulators' URLs and certificates),
ingests the seed's high-level ICAT entities with python-icat's ``icatingest.py``, and starts one
process of each service. Tests may start more replicas (``stack.start("icat-writer")``) and
read service logs. Everything is stopped and the run's queues deleted at the end.

``datastore_stack_factory`` (per test) starts further stacks with other settings; they are
stopped, and their queues deleted, when that test ends. ``cluster_stack_factory`` does the same
on the three-node RabbitMQ cluster (``make up-cluster``; skipped when it is not running): every
service's ``broker.url`` names the three nodes. A stack's folder (config, logs,
gateway SQLite) goes once it has stopped unless a test failed (tests/support/workdirs.py);
what it wrote to the XRootD servers (its tape root) goes at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from datastore_common.adapters.rabbitmq.declare import delete_topology
from datastore_common.domain.senders import INSTRUMENT, OPERATOR
from datastore_common.settings import DatastoreSettings, load_settings
from datastore_common.topology import all_queue_names
from datastore_common.worker import make_bus
from tests.support.fts3_fixtures import Fts3Emulator, free_port
from tests.support.icat_fixtures import IcatEmulator, run_icat_script
from tests.support.rabbitmq_fixtures import BrokerAccounts
from tests.support.workdirs import discard_unless_failed, remove_after_session

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
SERVICES = ("icat-writer", "fts-submitter", "status-poller", "gateway")


@dataclass
class DatastoreStack:
    config_path: Path
    log_dir: Path
    gateway_url: str
    icat_url: str
    #: Each service's (and the instrument's, the operator's) own broker URL.
    broker_urls: dict[str, str] = field(default_factory=dict)
    processes: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)
    closed: bool = False

    @property
    def settings(self) -> DatastoreSettings:
        previous = os.environ.get("DATASTORE_CONFIG")
        os.environ["DATASTORE_CONFIG"] = str(self.config_path)
        try:
            return load_settings()
        finally:
            if previous is None:
                del os.environ["DATASTORE_CONFIG"]
            else:
                os.environ["DATASTORE_CONFIG"] = previous

    def settings_as(self, role: str) -> DatastoreSettings:
        """The stack's settings as ``role`` (instrument, operator, a service) connects."""
        return self.settings.model_copy(
            update={
                "broker": self.settings.broker.model_copy(
                    update={"url": SecretStr(self.broker_urls[role])}
                )
            }
        )

    def start(self, service: str) -> subprocess.Popen[bytes]:
        replicas = self.processes.setdefault(service, [])
        log_path = self.log_dir / f"{service}-{len(replicas)}.log"
        with log_path.open("ab") as log:  # the process keeps its own descriptor
            process = subprocess.Popen(
                [str(VENV_BIN / f"datastore-{service}")],
                env={
                    **os.environ,
                    "DATASTORE_CONFIG": str(self.config_path),
                    # Each service logs in as its own broker user (domain.senders).
                    **(
                        {"DATASTORE__BROKER__URL": self.broker_urls[service]}
                        if service in self.broker_urls
                        else {}
                    ),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        replicas.append(process)
        return process

    def stop(self, service: str) -> None:
        for process in self.processes.pop(service, []):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for service in list(self.processes):
            self.stop(service)

    def close(self, session: pytest.Session) -> None:
        """Stop every process, delete the run's queues and exchanges, and drop the folder
        (kept after a failure, for its logs). Once: later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        try:
            self.stop_all()
        finally:
            try:
                _delete_queues(self.settings)
            finally:
                discard_unless_failed(session, self.config_path.parent)

    def logs(self, service: str) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for path in sorted(self.log_dir.glob(f"{service}-*.log"))
        )

    def assert_running(self) -> None:
        for service, replicas in self.processes.items():
            for process in replicas:
                if process.poll() is not None:
                    pytest.fail(
                        f"{service} exited with {process.returncode}:\n{self.logs(service)[-3000:]}"
                    )

    def wait_for_gateway(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_running()
            try:
                if httpx.get(f"{self.gateway_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"gateway not healthy within {timeout}s:\n{self.logs('gateway')[-3000:]}")


StackFactory = Callable[..., DatastoreStack]


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(scope="session")
def _stack_maker(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    broker_accounts: BrokerAccounts,
    icat_emulator: IcatEmulator,
    fts3_emulator: Fts3Emulator,
    xrootd_stack: object,
) -> Iterator[StackFactory]:
    """``make(replicas=1, accounts=None, **config_overrides)``: a running set of the four
    services, connected as ``accounts`` (default: the session's users on the single broker;
    ``cluster_broker_accounts``: on the cluster); any stack still running at the end of the
    session is closed then."""
    ingest = run_icat_script(
        "icatingest.py",
        "-i",
        "deploy/local/icat/example.yaml",
        "-f",
        "YAML",
        "--duplicate",
        "IGNORE",
        "--url",
        icat_emulator.url,
        "--no-check-certificate",
        "--auth",
        "simple",
        "--user",
        "root",
        "--pass",
        "pw",
    )
    if ingest.returncode != 0:
        pytest.fail(f"icatingest.py failed: {ingest.stderr[-2000:]}")
    stacks: list[DatastoreStack] = []
    # The VO our credential has at FTS, as a site writes it in fts3.vo: the icat-writer names
    # the FTS jobs of requests that come without them (instruments) and checks those that do.
    tls = ssl.create_default_context(cafile=str(fts3_emulator.ca))
    tls.load_cert_chain(str(fts3_emulator.user_cert), str(fts3_emulator.user_key))
    whoami = httpx.get(f"{fts3_emulator.url}/whoami", verify=tls, timeout=30)
    if whoami.status_code != 200:
        pytest.fail(f"FTS3 emulator /whoami: {whoami.status_code} {whoami.text[:300]}")
    vo = whoami.json()["vos"][0]

    def make(
        replicas: int = 1, *, accounts: BrokerAccounts | None = None, **overrides: Any
    ) -> DatastoreStack:
        users = accounts or broker_accounts
        work = tmp_path_factory.mktemp("stack")
        run = uuid.uuid4().hex[:8]
        port = free_port()
        config = _merge(
            {
                "x509_user_cert": str(fts3_emulator.user_cert),
                "x509_user_key": str(fts3_emulator.user_key),
                "tape_root_dir": f"e2e-{run}/",
                "fts3": {
                    "endpoint": fts3_emulator.url,
                    "ca_path": str(fts3_emulator.ca),
                    "vo": vo,
                },
                "icat": {"url": icat_emulator.url, "session_cache_seconds": 5},
                # Every service as its own broker user, checked by every consumer; the
                # config's own URL (tests' buses, clean-up) is the operator's.
                "instruments": [users.instrument_setting("simple/root", ["instrument"])],
                "broker": {
                    "url": users.url(OPERATOR),
                    "users": users.users_setting,
                    "exchange": f"e2e-{run}",
                    "queue_prefix": f"e2e-{run}.",
                    "retry_delays": [0.5, 1, 2, 4],
                    "retry_for_seconds": 8,
                    "connect_attempts": 5,
                },
                "gateway": {
                    "host": "127.0.0.1",
                    "port": port,
                    "state_db": f"sqlite:///{work / 'gateway.sqlite'}",
                    "max_datafiles_per_request": 20_000,
                },
                "poller": {"interval_seconds": 0.5, "batch_wait_seconds": 0.1},
                "log": {"level": "INFO", "format": "json"},
            },
            overrides,
        )
        remove_after_session(config["tape_root_dir"])  # what the stack archived
        config_path = work / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        log_dir = work / "logs"
        log_dir.mkdir()
        stack = DatastoreStack(
            config_path=config_path,
            log_dir=log_dir,
            gateway_url=f"http://127.0.0.1:{port}",
            icat_url=icat_emulator.url,
            broker_urls={role: users.url(role) for role in (*SERVICES, OPERATOR, INSTRUMENT)},
        )
        stacks.append(stack)
        try:
            for service in SERVICES:
                for _ in range(1 if service == "gateway" else replicas):
                    stack.start(service)
            stack.wait_for_gateway()
        except BaseException:
            stack.stop_all()  # the rest (queues, folder) at the end of the session
            raise
        return stack

    try:
        yield make
    finally:
        for stack in stacks:
            with contextlib.suppress(Exception):  # close the others all the same
                stack.close(request.session)


@pytest.fixture
def datastore_stack_factory(
    request: pytest.FixtureRequest, _stack_maker: StackFactory
) -> Iterator[StackFactory]:
    """``factory(replicas=1, **config_overrides)``: a running set of the four services, for
    this test only: stopped (and its queues deleted) when the test ends."""
    made: list[DatastoreStack] = []

    def factory(replicas: int = 1, **overrides: Any) -> DatastoreStack:
        stack = _stack_maker(replicas, **overrides)
        made.append(stack)
        return stack

    try:
        yield factory
    finally:
        for stack in made:
            with contextlib.suppress(Exception):
                stack.close(request.session)


@pytest.fixture
def cluster_stack_factory(
    request: pytest.FixtureRequest,
    _stack_maker: StackFactory,
    cluster_broker_accounts: BrokerAccounts,
) -> Iterator[StackFactory]:
    """``factory(replicas=1, **config_overrides)``: as ``datastore_stack_factory``, on the
    RabbitMQ cluster: each service connects to the first of the three nodes that answers and
    moves to another when its node stops."""
    made: list[DatastoreStack] = []

    def factory(replicas: int = 1, **overrides: Any) -> DatastoreStack:
        stack = _stack_maker(replicas, accounts=cluster_broker_accounts, **overrides)
        made.append(stack)
        return stack

    try:
        yield factory
    finally:
        for stack in made:
            with contextlib.suppress(Exception):
                stack.close(request.session)


@pytest.fixture(scope="session")
def datastore_stack(_stack_maker: StackFactory) -> DatastoreStack:
    """The shared stack of the session: one process of each service."""
    return _stack_maker()


def _delete_queues(settings: DatastoreSettings) -> None:
    import asyncio

    async def clean() -> None:
        bus = make_bus(settings, "e2e-cleanup")
        await bus.connect(attempts=2)
        topology = bus.topology
        await delete_topology(
            bus, all_queue_names(topology), [topology.exchange, topology.dead_letter_exchange]
        )
        await bus.close()

    asyncio.run(clean())


@pytest.fixture
async def gateway_client(datastore_stack: DatastoreStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=datastore_stack.gateway_url, timeout=60) as client:
        yield client
