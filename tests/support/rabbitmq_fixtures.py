"""A real RabbitMQ for the tests: the running one, started when it is down, else a loud failure."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.declare import delete_topology
from datastore_common.domain.senders import INSTRUMENT
from datastore_common.messages import Payload
from datastore_common.ops.broker_users import (
    BrokerAccount,
    account_url,
    definitions,
    import_definitions,
    local_accounts,
    users_setting,
)
from datastore_common.ops.dlq import OpsError
from datastore_common.topology import Topology, all_queue_names

P = TypeVar("P", bound=Payload)

RABBITMQ_URL = os.environ.get("DATASTORE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def ensure_rabbitmq(host: str = "127.0.0.1", port: int = 5672, wait: float = 60.0) -> None:
    if _port_open(host, port):
        return
    server = shutil.which("rabbitmq-server")
    if server is None:
        pytest.fail(
            f"RabbitMQ is not listening on {host}:{port} and rabbitmq-server is not installed"
        )
    subprocess.run([server, "-detached"], check=False)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _port_open(host, port):
            time.sleep(2)  # the port opens slightly before the broker accepts logins
            return
        time.sleep(0.5)
    pytest.fail(f"started rabbitmq-server but {host}:{port} did not open within {wait}s")


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    ensure_rabbitmq()
    return RABBITMQ_URL


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


BusFactory = Callable[[Topology], Awaitable[Bus]]


@pytest.fixture
async def bus_factory(rabbitmq_url: str) -> AsyncIterator[BusFactory]:
    """Connect buses on throw-away topologies; every queue and exchange is deleted afterwards."""
    made: list[Bus] = []

    async def make(topology: Topology) -> Bus:
        bus = Bus(rabbitmq_url, topology, source="tests", prefetch=32)
        await bus.connect(attempts=3)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        if bus.connected:
            topo = bus.topology
            await delete_topology(
                bus, all_queue_names(topo), [topo.exchange, topo.dead_letter_exchange]
            )
        await bus.close()


async def take_payloads(
    bus: Bus, queue: str, payload: type[P], count: int, wait: float = 30.0
) -> list[P]:
    """Take up to ``count`` messages of one type from a queue within ``wait`` seconds."""
    channel = await bus.new_channel(10)
    source = await channel.get_queue(queue)
    found: list[P] = []
    deadline = time.monotonic() + wait
    while len(found) < count and time.monotonic() < deadline:
        message = await source.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.1)
            continue
        found.append(payload.model_validate(json.loads(message.body)["data"]))
    await channel.close()
    return found


@dataclass(frozen=True)
class BrokerAccounts:
    """One broker user per role for this test session (``datastore-ops broker-accounts``):
    real RabbitMQ users with random passwords, deleted when the session ends."""

    by_role: dict[str, BrokerAccount]
    base_url: str
    #: The topic exchange their topic permissions are written for.
    exchange: str

    def url(self, role: str) -> str:
        return account_url(self.base_url, self.by_role[role])

    def user(self, role: str) -> str:
        return self.by_role[role].user

    @property
    def users_setting(self) -> dict[str, str]:
        """``broker.users`` for a stack run by these accounts."""
        return dict(users_setting(list(self.by_role.values())))

    def instrument_setting(self, icat_user: str, instruments: list[str]) -> dict[str, object]:
        """An ``instruments:`` entry for the session's instrument user."""
        return {
            "broker_user": self.user(INSTRUMENT),
            "icat_user": icat_user,
            "instruments": instruments,
        }


#: Each e2e stack has an exchange of its own (``e2e-<run>``, tests/support/stack_fixtures.py).
STACK_EXCHANGES = "e2e-[0-9a-f]{8}"


def widen_to_stack_exchanges(document: dict[str, Any], exchange: str) -> dict[str, Any]:
    """The instrument may publish on (and bind from) every e2e stack's exchange too, not the
    session's one only: its vhost permissions name the exchange. Topic permissions are per
    exchange and none are given for the stacks' (RabbitMQ then checks no routing key there);
    every consumer's own check of the sender still holds."""
    named = f"^({re.escape(exchange)}|"
    for permission in document["permissions"]:
        for kind in ("write", "read"):
            value = permission[kind]
            if value.startswith(named):
                permission[kind] = (
                    f"^({re.escape(exchange)}|{STACK_EXCHANGES}|" + value[len(named) :]
                )
    return document


@pytest.fixture(scope="session")
def broker_accounts(
    rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerAccounts]:
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    folder = tmp_path_factory.mktemp("broker")
    accounts = local_accounts(folder / "secrets", instruments=["instrument"], prefix=prefix)
    definitions_file = folder / "definitions.json"
    exchange = f"{prefix}exchange"
    document = widen_to_stack_exchanges(definitions(accounts, exchange=exchange), exchange)
    definitions_file.write_text(json.dumps(document))
    try:
        import_definitions(definitions_file)
    except OpsError as exc:
        pytest.fail(f"could not create the session's broker users: {exc}")
    roles = {account.role: account for account in accounts}
    host = urlsplit(rabbitmq_url)
    yield BrokerAccounts(roles, f"amqp://{host.hostname}:{host.port or 5672}/", exchange)
    rabbitmqctl = shutil.which("rabbitmqctl")
    for account in accounts:
        if rabbitmqctl is not None:
            subprocess.run(
                [rabbitmqctl, "-q", "delete_user", account.user], capture_output=True, check=False
            )
