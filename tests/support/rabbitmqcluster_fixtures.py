"""The three-node RabbitMQ cluster of ``make up-cluster`` (deploy/local/rabbitmq-cluster.sh), for
the tests that stop a node: the bus's failover tests and the chaos scenario.

``rabbitmq_cluster`` uses the cluster when its three nodes answer (``make up-cluster``), else
starts it for the session and stops it again at the end; a cluster that does not come up
fails the tests that need it. The broker on
127.0.0.1:5672 is never touched: every command names a cluster node.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from datastore_common.domain.broker_nodes import join_urls
from datastore_common.ops.broker_users import (
    account_url,
    definitions,
    import_definitions,
    local_accounts,
)
from datastore_common.ops.dlq import OpsError
from tests.support.rabbitmq_fixtures import BrokerAccounts, _port_open, widen_to_stack_exchanges

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "local" / "rabbitmq-cluster.sh"
NODES = (1, 2, 3)


def amqp_port(node: int) -> int:
    return 5681 + node


def node_name(node: int) -> str:
    return f"datastore-c{node}@localhost"


@dataclass
class RabbitMQCluster:
    """The running cluster: each node's URL (as guest, a loopback user) and a node's switch."""

    urls: tuple[str, ...] = tuple(f"amqp://guest:guest@127.0.0.1:{amqp_port(n)}/" for n in NODES)
    stopped: set[int] = field(default_factory=set)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=REPO,
        )
        if done.returncode != 0:
            pytest.fail(f"rabbitmq-cluster.sh {' '.join(args)}: {done.stderr[-2000:]}")
        return done

    def ctl(self, *args: str, node: int = 1) -> str:
        """rabbitmqctl against one cluster node (never the broker on :5672)."""
        return self.run("ctl", "-n", node_name(node), *args).stdout

    def stop_node(self, node: int) -> None:
        self.stopped.add(node)
        self.run("stop-node", str(node))

    def start_node(self, node: int) -> None:
        self.run("start-node", str(node))
        self.stopped.discard(node)

    def running(self) -> list[int]:
        return [n for n in NODES if _port_open("127.0.0.1", amqp_port(n))]

    def node_of_connection(self, connection_name: str) -> int:
        """Which node a client named ``connection_name`` is connected to."""
        for node in self.running():
            listed = self.ctl(
                "-q", "list_connections", "client_properties", "--formatter", "json", node=node
            )
            for row in json.loads(listed or "[]"):
                properties = row.get("client_properties") or []
                pairs = {p[0]: p[2] for p in properties if isinstance(p, list) and len(p) == 3}
                if pairs.get("connection_name") == connection_name:
                    return node
        raise AssertionError(f"no cluster node has a connection named {connection_name!r}")

    def messages(self, containing: str) -> dict[str, int]:
        """Messages in each queue whose name contains ``containing``."""
        listed = self.ctl("-q", "list_queues", "name", "messages", "--formatter", "json")
        return {
            row["name"]: int(row.get("messages") or 0)
            for row in json.loads(listed or "[]")
            if containing in row["name"]
        }

    def quorum_members(self, containing: str) -> dict[str, list[str]]:
        """Each quorum queue whose name contains ``containing``: its members' nodes."""
        listed = self.ctl("-q", "list_queues", "name", "type", "members", "--formatter", "json")
        return {
            row["name"]: sorted(row.get("members") or [])
            for row in json.loads(listed or "[]")
            if containing in row["name"] and row.get("type") == "quorum"
        }


@pytest.fixture(scope="session")
def rabbitmq_cluster() -> Iterator[RabbitMQCluster]:
    cluster = RabbitMQCluster()
    started = False
    if len(cluster.running()) < len(NODES):
        # Started for the session (and stopped at its end) unless `make up-cluster` runs it.
        cluster.run("start")
        started = True
    try:
        yield cluster
    finally:
        for node in sorted(cluster.stopped):  # a test stopped it and failed before restarting
            subprocess.run(["bash", str(SCRIPT), "start-node", str(node)], check=False, cwd=REPO)
        if started:
            subprocess.run(["bash", str(SCRIPT), "stop"], check=False, cwd=REPO)


@pytest.fixture(scope="session")
def cluster_broker_accounts(
    rabbitmq_cluster: RabbitMQCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerAccounts]:
    """One broker user per role on the cluster, as ``broker_accounts`` makes on the single
    broker; each ``url(role)`` names the three nodes."""
    prefix = f"c{uuid.uuid4().hex[:6]}-"
    folder = tmp_path_factory.mktemp("cluster-broker")
    accounts = local_accounts(folder / "secrets", instruments=["instrument"], prefix=prefix)
    definitions_file = folder / "definitions.json"
    exchange = f"{prefix}exchange"
    document = widen_to_stack_exchanges(definitions(accounts, exchange=exchange), exchange)
    definitions_file.write_text(json.dumps(document))
    try:
        import_definitions(definitions_file, rabbitmqctl=[str(SCRIPT), "ctl"])
    except OpsError as exc:
        pytest.fail(f"could not create the session's broker users on the cluster: {exc}")
    yield ClusterAccounts({a.role: a for a in accounts}, rabbitmq_cluster.urls[0], exchange)
    for account in accounts:
        subprocess.run(
            ["bash", str(SCRIPT), "ctl", "-q", "delete_user", account.user],
            capture_output=True,
            check=False,
            cwd=REPO,
        )


@dataclass(frozen=True)
class ClusterAccounts(BrokerAccounts):
    """``BrokerAccounts`` whose URLs name every node of the cluster."""

    def url(self, role: str) -> str:
        return join_urls(
            [account_url(f"amqp://127.0.0.1:{amqp_port(n)}/", self.by_role[role]) for n in NODES]
        )
