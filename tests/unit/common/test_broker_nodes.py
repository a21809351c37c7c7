"""Several broker nodes in ``broker.url``: parsing, the one-account rule, and the order nodes
are tried in (domain.broker_nodes, settings, adapters.rabbitmq.connection with fakes)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.connection import ClusterConnection, connect_cluster
from datastore_common.domain.broker_nodes import (
    BrokerUrlError,
    NodeRotation,
    check_urls,
    join_urls,
    split_urls,
    user_of,
    without_secret,
)
from datastore_common.errors import ConfigurationError
from datastore_common.settings import BrokerSettings, load_settings
from datastore_common.topology import Topology

NODES = (
    "amqp://svc:pw@127.0.0.1:5682/",
    "amqp://svc:pw@127.0.0.1:5683/",
    "amqp://svc:pw@127.0.0.1:5684/",
)
TOPOLOGY = Topology(exchange="x", queues=())


# -- parsing and the one-account rule ------------------------------------------------------------
def test_a_comma_separated_string_and_a_list_name_the_same_nodes() -> None:
    assert split_urls(join_urls(NODES)) == NODES
    assert split_urls(list(NODES)) == NODES
    assert split_urls(" amqp://a@h1/ , amqps://a@h2/ ") == ("amqp://a@h1/", "amqps://a@h2/")
    assert split_urls(NODES[0]) == (NODES[0],)


def test_a_comma_inside_a_password_or_query_is_not_a_separator() -> None:
    url = "amqp://svc:p,w@h1:5672/?name=a,b"
    assert split_urls(f"{url},amqp://svc:p,w@h2:5672/?name=a,b") == (
        url,
        "amqp://svc:p,w@h2:5672/?name=a,b",
    )


@pytest.mark.parametrize(
    ("urls", "reason"),
    [
        ((NODES[0], "amqp://other:pw@127.0.0.1:5683/"), "URL 2 names user 'other'"),
        ((NODES[0], "amqp://svc:другой@127.0.0.1:5683/"), "URL 2 has another password"),
        ((NODES[0], "amqp://svc:pw@127.0.0.1:5683/site"), "URL 2 names vhost 'site'"),
        ((NODES[0], "http://svc:pw@127.0.0.1:5683/"), "URL 2 must start with amqp://"),
        ((NODES[0], "amqp://svc:pw@:5683/"), "URL 2 names no host"),
        ((NODES[0], "amqp://svc:pw@h:port/"), "URL 2 is not a URL"),
        ((NODES[0], NODES[0]), "the same node twice"),
        ((), "names no broker URL"),
    ],
)
def test_nodes_that_disagree_are_refused_without_showing_a_password(
    urls: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(BrokerUrlError, match=reason) as refused:
        check_urls(urls)
    assert "pw" not in str(refused.value).replace("password", "")


def test_one_user_for_every_node_and_logs_without_secrets() -> None:
    assert check_urls(NODES) == NODES
    assert user_of(NODES) == "svc"
    assert user_of(("amqp://h/",)) == "guest"
    assert without_secret("amqp://svc:pw@127.0.0.1:5682/?heartbeat=5") == ("amqp://127.0.0.1:5682/")


# -- settings --------------------------------------------------------------------------------
@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    monkeypatch.setenv("DATASTORE_CONFIG", str(path))
    for key in [k for k in os.environ if k.startswith("DATASTORE__")]:
        monkeypatch.delenv(key)
    return path


def test_broker_url_takes_a_yaml_list_of_nodes(config_file: Path) -> None:
    config_file.write_text("broker:\n  url:\n" + "".join(f"    - {url}\n" for url in NODES))
    broker = load_settings().broker
    assert broker.urls == NODES
    assert broker.user == "svc"


def test_broker_url_takes_every_node_from_one_environment_variable(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text("broker:\n  url: amqp://guest:guest@127.0.0.1:5672/\n")
    monkeypatch.setenv("DATASTORE__BROKER__URL", join_urls(NODES))
    assert load_settings().broker.urls == NODES


def test_one_url_is_still_one_node() -> None:
    assert BrokerSettings().urls == ("amqp://guest:guest@127.0.0.1:5672/",)


def test_settings_refuse_nodes_reached_as_different_users(config_file: Path) -> None:
    config_file.write_text(f"broker:\n  url: [{NODES[0]}, amqp://gateway:pw@127.0.0.1:5683/]\n")
    with pytest.raises(ConfigurationError, match="every node must be reached as the same"):
        load_settings()


def test_a_remote_node_in_the_list_is_checked_like_a_remote_broker(config_file: Path) -> None:
    config_file.write_text(
        "broker:\n  url: [amqp://guest:guest@127.0.0.1:5672/, amqp://guest:guest@rabbit2.example.org/]\n"
    )
    with pytest.raises(ConfigurationError, match=r"broker\.url: a default user"):
        load_settings().check_deployable()


# -- which node next -------------------------------------------------------------------------
def test_rotation_moves_to_the_next_node_round_the_list() -> None:
    nodes = NodeRotation(NODES)
    assert nodes.url == NODES[0]
    assert [nodes.advance(), nodes.advance(), nodes.advance()] == [NODES[1], NODES[2], NODES[0]]
    nodes.settle_on(NODES[2])
    assert nodes.from_current() == [NODES[2], NODES[0], NODES[1]]
    with pytest.raises(BrokerUrlError):
        NodeRotation(())


def _closed(error: BaseException) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


async def test_a_dropped_or_refused_connection_moves_to_the_next_node() -> None:
    """aio-pika calls ``_on_connection_close`` when a connection drops and when an attempt to
    connect fails: the next attempt goes to the next node, round the list."""
    connection = ClusterConnection(NODES)
    seen = [str(connection.url)]
    for _ in NODES:
        await connection._on_connection_close(_closed(ConnectionResetError("node stopped")))
        seen.append(str(connection.url))
    assert seen == [*NODES, NODES[0]]
    assert connection.node == "amqp://127.0.0.1:5682/"


async def test_one_node_is_kept_and_a_closing_connection_does_not_move() -> None:
    single = ClusterConnection(NODES[:1])
    await single._on_connection_close(_closed(ConnectionResetError()))
    assert str(single.url) == NODES[0]
    closing = ClusterConnection(NODES, start=1)
    await closing.close()
    await closing._on_connection_close(_closed(ConnectionResetError()))
    assert str(closing.url) == NODES[1]


class FakeConnection:
    """Stands in for ClusterConnection: refuses on the nodes listed as down."""

    def __init__(self, down: set[str], made: list[str], urls: tuple[str, ...], start: int) -> None:
        self.url, self.down, self.made = urls[start], down, made
        self.closed = False

    async def connect(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (aio-pika)
        assert timeout, "a node that never answers must not block the others"
        self.made.append(self.url)
        if self.url in self.down:
            raise ConnectionRefusedError(f"{self.url} refused")

    async def close(self) -> None:
        self.closed = True


def _factory(down: set[str], made: list[str]) -> Any:
    def make(urls: tuple[str, ...], *, start: int, **_: Any) -> FakeConnection:
        return FakeConnection(down, made, tuple(urls), start)

    return make


async def test_connect_takes_the_first_node_that_answers() -> None:
    made: list[str] = []
    connection = await connect_cluster(NODES, factory=_factory({NODES[0]}, made))
    assert made == [NODES[0], NODES[1]]
    assert connection.url == NODES[1]


async def test_connect_raises_the_last_error_when_no_node_answers() -> None:
    made: list[str] = []
    with pytest.raises(ConnectionRefusedError, match="5682"):  # tried last, from node 2
        await connect_cluster(NODES, start=1, factory=_factory(set(NODES), made))
    assert made == [NODES[1], NODES[2], NODES[0]]


async def test_the_bus_retries_every_node_until_one_answers() -> None:
    """``Bus.connect`` tries each node per attempt (a broker restarting is waited for)."""
    made: list[str] = []
    down = set(NODES)

    class Recovering(FakeConnection):
        async def connect(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (aio-pika)
            if len(made) == len(NODES):  # every node refused once: then node 1 comes back
                down.discard(NODES[0])
            await super().connect(timeout)

        async def channel(self, **_: Any) -> Any:
            raise RuntimeError("connected")  # far enough: the topology is not declared here

    def make(urls: tuple[str, ...], *, start: int, **_: Any) -> Any:
        return Recovering(down, made, tuple(urls), start)

    bus = Bus(list(NODES), TOPOLOGY, source="tests", connection_factory=make)
    with pytest.raises(RuntimeError, match="connected"):
        await bus.connect(attempts=3)
    assert made == [*NODES, NODES[0]]


def test_the_bus_refuses_nodes_reached_as_different_users() -> None:
    with pytest.raises(BrokerUrlError, match="same broker user"):
        Bus(
            [NODES[0], "amqp://other:pw@127.0.0.1:5683/"],
            Topology(exchange="x", queues=()),
            source="t",
        )
    assert Bus(join_urls(NODES), Topology(exchange="x", queues=()), source="t").user == "svc"
