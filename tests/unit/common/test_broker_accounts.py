"""One broker user per role: settings checks, RabbitMQ definitions, the local accounts."""

from __future__ import annotations

import base64
import hashlib
import re
import stat
from pathlib import Path

import pytest

from datastore_common.errors import ConfigurationError
from datastore_common.ops.broker_users import (
    ROLE_USERS,
    BrokerAccount,
    account_url,
    definitions,
    local_accounts,
    password_hash,
    topic_write_pattern,
)
from datastore_common.settings import DatastoreSettings, load_settings
from datastore_common.worker import sender_policy


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATASTORE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def test_password_hash_is_rabbitmqs_salted_sha256() -> None:
    salt = b"\x01\x02\x03\x04"
    raw = base64.b64decode(password_hash("s3cret", salt))
    assert raw[:4] == salt
    assert raw[4:] == hashlib.sha256(salt + b"s3cret").digest()
    assert password_hash("s3cret") != password_hash("s3cret")  # a fresh salt each time


@pytest.mark.parametrize(
    ("role", "may", "may_not"),
    [
        ("gateway", "datastore.restore.requested.v1", "datastore.transfer.status.v1"),
        ("instrument", "datastore.archive.requested.v1", "datastore.restore.requested.v1"),
        ("status-poller", "datastore.transfer.status.v1", "datastore.archive.registered.v1"),
        ("icat-writer", "datastore.archive.registered.v1", "datastore.transfer.submitted.v1"),
        ("fts-submitter", "datastore.transfer.submitted.v1", "datastore.archive.requested.v1"),
    ],
)
def test_topic_permissions_follow_the_publishers_table(role: str, may: str, may_not: str) -> None:
    pattern = re.compile(topic_write_pattern(role))
    assert pattern.fullmatch(may)
    assert not pattern.fullmatch(may_not)
    assert not pattern.fullmatch(may + "x")  # anchored


def test_definitions_fence_instruments_in_and_leave_the_operator_free() -> None:
    accounts = [
        BrokerAccount("gw", "gateway", "a"),
        BrokerAccount("daq", "instrument", "b"),
        BrokerAccount("ops", "operator", "c"),
    ]
    document = definitions(accounts, exchange="datastore")
    permissions = {p["user"]: p for p in document["permissions"]}
    daq = {kind: re.compile(permissions["daq"][kind]) for kind in ("configure", "write", "read")}
    # Its own answer queues only: declare, bind (write on the queue), consume (read).
    for kind in ("configure", "write", "read"):
        assert daq[kind].fullmatch("daq.answers")
        assert daq[kind].fullmatch("daq.answers.7f3e")
        for other in ("icat-writer.archive", "gateway.ledger", "dlq.icat-writer.archive"):
            assert not daq[kind].fullmatch(other), (kind, other)
        assert not daq[kind].fullmatch("daqx.answers")
        assert not daq[kind].fullmatch("other.answers")
        assert not daq[kind].fullmatch("amq.default")  # no queue through the default exchange
    assert not daq["configure"].fullmatch("datastore")  # cannot redeclare the exchange
    assert daq["write"].fullmatch("datastore") and daq["read"].fullmatch("datastore")
    assert permissions["ops"]["write"] == ".*"
    topics = {t["user"]: t for t in document["topic_permissions"]}
    assert set(topics) == {"gw", "daq"}  # the operator replays through the default exchange
    assert topics["daq"]["write"] == "^(datastore\\.archive\\.requested\\.v1)$"
    # It may bind its queues to its own answers, and to nothing else.
    read = re.compile(topics["daq"]["read"])
    for own in (
        "datastore.archive.accepted.v1.daq",
        "datastore.archive.rejected.v1.daq",
        "datastore.request.completed.v1.daq",
    ):
        assert read.fullmatch(own), own
    for other in (
        "datastore.archive.accepted.v1.other",
        "datastore.archive.accepted.v1.#",
        "datastore.archive.accepted.v1.*",
        "datastore.request.completed.v1",
        "datastore.archive.requested.v1",
        "datastore.transfer.status.v1",
        "#",
        "datastore.archive.accepted.v1.daq.x",
    ):
        assert not read.fullmatch(other), other
    assert topics["gw"]["read"] == ".*"
    assert all("password" not in user for user in document["users"])  # hashes only


def test_local_accounts_are_made_once_and_kept_private(tmp_path: Path) -> None:
    folder = tmp_path / "broker"
    first = local_accounts(folder, instruments=["daq"], prefix="t-")
    again = local_accounts(folder, instruments=["daq"], prefix="t-")
    assert first == again
    assert {a.user for a in first} == {f"t-{u}" for u in ROLE_USERS.values()} | {"t-daq"}
    assert len({a.password for a in first}) == len(first)
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    url = account_url("amqps://rabbit.example.org:5671/vh", BrokerAccount("a b", "gateway", "p@ss"))
    assert url == "amqps://a%20b:p%40ss@rabbit.example.org:5671/vh"


def test_the_bus_user_comes_from_the_url_and_the_policy_from_the_config() -> None:
    settings = DatastoreSettings(
        broker={
            "url": "amqp://datastore-icat-writer:x@127.0.0.1/",
            "users": {"datastore-icat-writer": "icat-writer", "datastore-ops": "operator"},
        },
        instruments=[{"broker_user": "daq", "icat_user": "simple/daq", "instruments": ["I"]}],
    )
    policy = sender_policy(settings)
    assert policy.own_user == "datastore-icat-writer"
    assert policy.role_of("daq") == "instrument"
    assert policy.instruments["daq"].instruments == frozenset({"I"})


def test_unknown_roles_and_a_user_listed_twice_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown roles"):
        load_settings(broker={"users": {"u": "superuser"}})
    with pytest.raises(ConfigurationError, match="listed twice"):
        load_settings(
            broker={"users": {"u": "gateway"}},
            instruments=[{"broker_user": "u", "icat_user": "simple/u", "instruments": ["I"]}],
        )


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"broker": {"url": "amqp://guest:guest@rabbit.example.org/"}}, "broker.url"),
        (
            {"broker": {"url": "amqps://datastore:change-me@rabbit.example.org/"}},
            "broker.url",
        ),
        (
            {"broker": {"url": "amqps://gw:Long-Random-1@rabbit.example.org/"}},
            "may act as every role",  # the default users: {guest: '*'}
        ),
        (
            {
                "broker": {"url": "amqp://gw:Long-Random-1@10.0.0.5/", "users": {"gw": "gateway"}},
                "icat": {"url": "https://icat.example.org", "password": "datastore-pw"},
            },
            "icat.password",
        ),
    ],
)
def test_default_credentials_are_refused_towards_other_hosts(
    overrides: dict[str, object], words: str
) -> None:
    with pytest.raises(ConfigurationError, match="refusing to start") as refused:
        load_settings(**overrides)
    assert words in str(refused.value)


def test_the_quick_local_default_still_starts() -> None:
    settings = load_settings()
    assert settings.broker.user == "guest"
    assert settings.broker.users == {"guest": "*"}
    deployed = load_settings(
        broker={"url": "amqps://gw:Long-Random-1@rabbit.example.org/", "users": {"gw": "gateway"}},
        icat={"url": "https://icat.example.org", "password": "Another-Long-1"},
    )
    assert deployed.broker.user == "gw"


def test_accounts_for_a_cluster_name_every_node_and_apply_through_the_command_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--url`` once per node: each account's URL names them all, as ``broker.url`` takes
    them; ``--apply --rabbitmqctl CMD`` imports through that command (one node suffices)."""
    from datastore_common.ops import cli

    applied: list[tuple[Path, list[str]]] = []
    monkeypatch.setattr(
        cli,
        "import_definitions",
        lambda path, *, rabbitmqctl: applied.append((path, list(rabbitmqctl))),
    )
    nodes = [f"amqp://127.0.0.1:{port}/" for port in (5682, 5683, 5684)]
    code = cli.main(
        [
            "broker-accounts",
            "--secrets",
            str(tmp_path / "secrets"),
            "--definitions",
            str(tmp_path / "definitions.json"),
            *[arg for node in nodes for arg in ("--url", node)],
            "--apply",
            "--rabbitmqctl",
            "deploy/local/rabbitmq-cluster.sh ctl",
        ]
    )
    assert code == 0
    url = (tmp_path / "secrets" / "datastore-gateway.url").read_text().strip()
    settings = DatastoreSettings(broker={"url": url})  # type: ignore[arg-type]
    assert [u.rsplit("@", 1)[1] for u in settings.broker.urls] == [
        n.split("//", 1)[1] for n in nodes
    ]
    assert settings.broker.user == "datastore-gateway"
    assert applied == [(tmp_path / "definitions.json", ["deploy/local/rabbitmq-cluster.sh", "ctl"])]
