"""One broker user per role, and what RabbitMQ lets each do, from ``topology.PUBLISHERS``.

``definitions`` builds a RabbitMQ definitions document (users with salted password hashes,
vhost permissions, topic permissions) that ``rabbitmqctl import_definitions`` or the server's
``load_definitions`` applies: ``deploy/local/rabbitmq.sh`` for the local stack, the compose
file and the Kubernetes manifests for a deployment. The broker's permissions are the first
fence; every consumer's check of ``user_id`` (``domain.senders``) is the one that holds even
when a permission is too wide.

- A service may publish on the topic exchange only the message types ``PUBLISHERS`` gives its
  role (topic permission ``write``), and needs the vhost otherwise: it declares the topology
  and puts retries into its own delay queues through the default exchange.
- An instrument may only write to the exchange, and there only ``archive.requested``; it
  may declare, bind and read only its own answer queues (``<broker user>.answers`` and
  ``<broker user>.answers.<anything>``), bound only to its own answers
  (``archive.accepted`` / ``archive.rejected`` / ``request.completed``, each ``.<broker
  user>``: ``topic_read_pattern``). It cannot reach another queue, nor any through the
  default exchange.
- The operator (``datastore-ops``) may do anything on the vhost: it replays dead letters.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

from datastore_common.domain.senders import INSTRUMENT, OPERATOR, publishers_by_type
from datastore_common.messages import PAYLOAD_TYPES
from datastore_common.ops.dlq import OpsError
from datastore_common.settings import SERVICE_ROLES
from datastore_common.topology import PUBLISHERS

#: The broker user of each role in the local stack and the deployment files.
ROLE_USERS: Final = {
    **{role: f"datastore-{role}" for role in SERVICE_ROLES},
    OPERATOR: "datastore-ops",
}
_HASHING: Final = "rabbit_password_hashing_sha256"


@dataclass(frozen=True)
class BrokerAccount:
    user: str
    role: str
    password: str


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def topic_write_pattern(role: str) -> str:
    """The routing keys ``role`` may publish on the topic exchange (none: ``^$``)."""
    types = sorted(name for name, roles in publishers_by_type(PUBLISHERS).items() if role in roles)
    return f"^({'|'.join(re.escape(name) for name in types)})$" if types else "^$"


def answer_queues_pattern(user: str) -> str:
    """The queues an instrument may declare, bind and read: its own answer queues."""
    return f"{re.escape(user)}\\.answers(\\..+)?"


def topic_read_pattern(user: str) -> str:
    """The routing keys an instrument may bind a queue to: its own answers only."""
    types = sorted(model.TYPE for model in PAYLOAD_TYPES.values() if model.ADDRESSED)
    return f"^({'|'.join(re.escape(name) for name in types)})\\.{re.escape(user)}$"


def definitions(
    accounts: Sequence[BrokerAccount], *, exchange: str, vhost: str = "/"
) -> dict[str, Any]:
    """The definitions document for ``accounts`` on ``vhost`` and the topic ``exchange``."""
    users, permissions, topics = [], [], []
    for account in accounts:
        users.append(
            {
                "name": account.user,
                "password_hash": password_hash(account.password),
                "hashing_algorithm": _HASHING,
                "tags": "",
            }
        )
        if account.role == INSTRUMENT:
            own = answer_queues_pattern(account.user)
            allowed = {
                "configure": f"^{own}$",
                # publish on the exchange; bind its own queues (write on the queue)
                "write": f"^({re.escape(exchange)}|{own})$",
                # bind from the exchange (read on it; topic read says which keys); consume
                "read": f"^({re.escape(exchange)}|{own})$",
            }
        else:
            allowed = {"configure": ".*", "write": ".*", "read": ".*"}
        permissions.append({"user": account.user, "vhost": vhost, **allowed})
        if account.role != OPERATOR:
            topics.append(
                {
                    "user": account.user,
                    "vhost": vhost,
                    "exchange": exchange,
                    "write": topic_write_pattern(account.role),
                    "read": topic_read_pattern(account.user)
                    if account.role == INSTRUMENT
                    else ".*",
                }
            )
    return {"users": users, "permissions": permissions, "topic_permissions": topics}


def local_accounts(
    secrets_dir: Path, *, instruments: Sequence[str] = (), prefix: str = ""
) -> list[BrokerAccount]:
    """The local stack's accounts, each with a password kept in ``secrets_dir/<user>.password``
    (made once, mode 0600), so re-running changes nothing."""
    secrets_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)
    wanted = {f"{prefix}{user}": role for role, user in ROLE_USERS.items()}
    wanted |= {f"{prefix}{user}": INSTRUMENT for user in instruments}
    accounts = []
    for user, role in wanted.items():
        path = secrets_dir / f"{user}.password"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24))
        accounts.append(BrokerAccount(user, role, path.read_text().strip()))
    return accounts


def account_url(base: str, account: BrokerAccount) -> str:
    """``base`` (amqp[s]://host:port/vhost) logged in as ``account``."""
    parts = urlsplit(base)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(account.user, safe='')}:{quote(account.password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def users_setting(accounts: Sequence[BrokerAccount]) -> Mapping[str, str]:
    """``broker.users`` for these accounts (instruments go under ``instruments:`` instead)."""
    return {a.user: a.role for a in accounts if a.role != INSTRUMENT}


def import_definitions(
    path: Path, *, timeout: float = 120.0, rabbitmqctl: Sequence[str] = ("rabbitmqctl",)
) -> None:
    """Apply a definitions file to the RabbitMQ on this host with ``rabbitmqctl`` (a command
    and its first arguments: ``rabbitmqctl -n rabbit@node1``, the local cluster's
    ``deploy/local/rabbitmq-cluster.sh ctl``). Users and permissions are cluster-wide: one
    node of a cluster is enough.

    rabbitmqctl reads the file as the broker's own system user, so it gets a private copy it
    may read (the hashes stay unreadable to everyone else).
    """
    if not rabbitmqctl:
        raise OpsError("no rabbitmqctl command given")
    found = shutil.which(rabbitmqctl[0])
    if found is None:
        raise OpsError(f"{rabbitmqctl[0]} is not installed: import the definitions another way")
    command = [found, *rabbitmqctl[1:]]
    with tempfile.TemporaryDirectory(prefix="datastore-definitions-") as folder:
        copy = Path(folder) / "definitions.json"
        shutil.copyfile(path, copy)
        copy.chmod(0o600)
        owner = _broker_system_user()
        if owner is not None and os.geteuid() == 0:
            os.chown(folder, owner, -1)
            os.chown(copy, owner, -1)
        done = subprocess.run(
            [*command, "-q", "import_definitions", str(copy)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if done.returncode != 0:
        raise OpsError(f"rabbitmqctl import_definitions failed: {done.stderr.strip()[-500:]}")
    # The import finishes in the background: wait until every user exists.
    wanted = {user["name"] for user in json.loads(path.read_text())["users"]}
    deadline = time.monotonic() + timeout
    while True:
        listed = subprocess.run(
            [*command, "-q", "list_users"], capture_output=True, text=True, check=False
        )
        present = {line.split("\t", 1)[0] for line in listed.stdout.splitlines()}
        if wanted <= present:
            return
        if time.monotonic() > deadline:
            raise OpsError(f"users missing after the import: {sorted(wanted - present)}")
        time.sleep(0.5)


def _broker_system_user() -> int | None:
    try:
        return pwd.getpwnam("rabbitmq").pw_uid
    except KeyError:
        return None
