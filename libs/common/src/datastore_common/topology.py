"""Broker topology as data, declared idempotently by every process at start-up.

``QUEUES`` is the one place that says which message types reach which queue and which service
consumes it (and ``PUBLISHERS`` who publishes each type). Everything else is derived from it:
the queues and bindings declared here, the payload types each consumer accepts
(``payload_types``), the AsyncAPI document and architecture.md's message table
(``datastore_common.asyncapi``, ``make asyncapi``).

Every consumer queue ``Q`` comes with:
- ``dlq.Q``: where messages go that cannot be processed (reason in headers);
- ``Q.retry.<seconds>s``: delay queues, one per backoff step; a message waits there for its TTL
  and is then dead-lettered back to ``Q`` through the default exchange. Fixed-TTL queues (rather
  than per-message expiry on one queue) keep short delays from waiting behind long ones.
All are quorum queues: replicated, with a delivery limit, and at-least-once dead-lettering so
that a message moving between queues is never dropped.

Delay queues are named by their delay, so a changed ``retry_delays`` or poll interval declares
new queues next to the old ones (which drain by themselves) instead of being refused by
RabbitMQ for re-declaring a queue with other arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datastore_common.messages import (
    ArchivalStateSet,
    ArchiveAccepted,
    ArchiveRegistered,
    ArchiveRejected,
    ArchiveRequested,
    ArchiveRetryRequested,
    Payload,
    RequestCompleted,
    RequestDelayed,
    RequestFailed,
    RestoreRequested,
    TransferStatus,
    TransferSubmitted,
    TransferTracked,
    binding_key,
)


@dataclass(frozen=True)
class QueueSpec:
    """A consumer role's queue and the message types routed to it."""

    name: str
    routing_keys: tuple[str, ...] = ()
    # A queue whose messages only ever arrive by delay (the poller's) needs no retry ladder.
    with_retries: bool = True
    # Replicas stand by and take over rather than share: a consumer that reads, decides and
    # writes (ICAT has no conditional update) must not race a replica on the same entities.
    single_active_consumer: bool = False


@dataclass(frozen=True)
class DelaySpec:
    """A queue that holds messages for ``seconds`` and then hands them to ``target``."""

    name: str
    target: str
    seconds: float


@dataclass(frozen=True)
class Topology:
    exchange: str
    queues: tuple[QueueSpec, ...]
    delays: tuple[DelaySpec, ...] = ()
    retry_delays: tuple[float, ...] = (1.0, 2.0, 5.0, 15.0, 60.0, 300.0)
    delivery_limit: int = 5
    queue_prefix: str = ""
    #: Retries before giving up; None: one per step of ``retry_delays``. The last step repeats.
    max_retries: int | None = None

    @property
    def retries(self) -> int:
        return len(self.retry_delays) if self.max_retries is None else self.max_retries

    def retry_delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based): capped at the last step."""
        return self.retry_delays[min(attempt, len(self.retry_delays)) - 1]

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.exchange}.dlx"

    def queue(self, role: str) -> str:
        """The real name of a role's queue (tests prefix names to stay apart)."""
        return f"{self.queue_prefix}{role}"

    def delay_into(self, role: str) -> str:
        """The delay queue that feeds a role's queue (the poller's poll interval)."""
        target = self.queue(role)
        for delay in self.delays:
            if delay.target == target:
                return delay.name
        raise KeyError(f"no delay queue feeds {target}")


def retries_for(delays: tuple[float, ...], seconds: float) -> int:
    """How many retries on the capped ladder ``delays`` keep trying for ``seconds``."""
    retries, waited = 0, 0.0
    while waited < seconds:
        waited += delays[min(retries, len(delays) - 1)]
        retries += 1
    return retries


def dlq_name(queue: str) -> str:
    return f"dlq.{queue}"


def delay_name(queue: str, seconds: float) -> str:
    return f"{queue}.{seconds:g}s"


def retry_queue_name(queue: str, seconds: float) -> str:
    return delay_name(f"{queue}.retry", seconds)


# Role names: the queue of each consumer role, before any prefix.
ICAT_WRITER_ARCHIVE = "icat-writer.archive"
ICAT_WRITER_STATUS = "icat-writer.status"
FTS_SUBMITTER = "fts-submitter"
STATUS_POLLER_POLL = "status-poller.poll"
STATUS_POLLER_DELAY = "status-poller.delay"
#: The request ledger's feed: every event that moves a request (consumed by the gateway).
GATEWAY_LEDGER = "gateway.ledger"


@dataclass(frozen=True)
class QueueRole:
    """A consumer role: its queue, the service consuming it, and the messages that reach it."""

    role: str
    consumer: str
    #: Bound on the topic exchange by their type (the routing key; ``<type>.#`` for a type
    #: addressed to instruments, ``messages.binding_key``).
    receives: tuple[type[Payload], ...]
    #: Put by the consumer itself into its delay queue ``delay``, which hands them back here.
    delayed: tuple[type[Payload], ...] = ()
    delay: str | None = None
    single_active_consumer: bool = False

    @property
    def payload_types(self) -> dict[str, type[Payload]]:
        """What the consumer of this queue parses: every type that can reach it."""
        return {model.TYPE: model for model in (*self.receives, *self.delayed)}


#: Which message types reach which queue, and who consumes each: the one place it is written.
QUEUES: tuple[QueueRole, ...] = (
    QueueRole(ICAT_WRITER_ARCHIVE, "icat-writer", (ArchiveRequested, ArchiveRetryRequested)),
    # Replicas stand by rather than share: recording a status reads, decides and writes, and
    # ICAT has no conditional update.
    # An admin's state set by hand goes the same way: it must not race a status being recorded.
    QueueRole(
        ICAT_WRITER_STATUS,
        "icat-writer",
        (TransferStatus, ArchivalStateSet),
        single_active_consumer=True,
    ),
    QueueRole(FTS_SUBMITTER, "fts-submitter", (ArchiveRegistered, RestoreRequested)),
    QueueRole(
        STATUS_POLLER_POLL,
        "status-poller",
        (TransferSubmitted,),
        delayed=(TransferTracked,),
        delay=STATUS_POLLER_DELAY,
    ),
    # Everything that moves a request (architecture.md, "Every accepted request ends visibly").
    QueueRole(
        GATEWAY_LEDGER,
        "gateway",
        (
            ArchiveRequested,
            # An instrument's request enters the ledger once the icat-writer accepted it.
            ArchiveAccepted,
            ArchiveRetryRequested,
            ArchiveRegistered,
            RestoreRequested,
            TransferSubmitted,
            TransferStatus,
            RequestFailed,
            RequestDelayed,
        ),
    ),
)

#: Who publishes each message type, in the order a request meets them (documentation only:
#: the AsyncAPI document and architecture.md's table; "instrument" is outside this code).
PUBLISHERS: dict[type[Payload], tuple[str, ...]] = {
    ArchiveRequested: ("gateway", "instrument"),
    # The answer to an instrument's request, addressed to it (``<type>.<its broker user>``).
    ArchiveAccepted: ("icat-writer",),
    ArchiveRejected: ("icat-writer",),
    ArchiveRetryRequested: ("gateway",),
    ArchiveRegistered: ("icat-writer",),
    RestoreRequested: ("gateway",),
    TransferSubmitted: ("fts-submitter",),
    TransferStatus: ("fts-submitter", "status-poller", "icat-writer"),
    TransferTracked: ("status-poller",),
    ArchivalStateSet: ("gateway",),
    RequestFailed: ("icat-writer", "fts-submitter", "status-poller"),
    RequestDelayed: ("icat-writer", "fts-submitter", "status-poller"),
    # Once per request, from the ledger's outbox; no queue of ours consumes it (it is for
    # whoever wants to know: bind a queue to datastore.request.completed.v1.#; an
    # instrument's request's goes to datastore.request.completed.v1.<its broker user>).
    RequestCompleted: ("gateway",),
}


def queue_role(role: str) -> QueueRole:
    for spec in QUEUES:
        if spec.role == role:
            return spec
    raise KeyError(f"no queue role {role!r} in topology.QUEUES")


def payload_types(role: str) -> dict[str, type[Payload]]:
    """The message types a role's consumer accepts (by type name)."""
    return queue_role(role).payload_types


def datastore_topology(
    *,
    exchange: str = "datastore",
    queue_prefix: str = "",
    poll_interval: float = 30.0,
    retry_delays: tuple[float, ...] = (1.0, 2.0, 5.0, 15.0, 60.0, 300.0),
    delivery_limit: int = 5,
    max_retries: int | None = None,
) -> Topology:
    """The whole system's topology (architecture.md, "Broker topology"), from ``QUEUES``."""

    def q(role: str) -> str:
        return f"{queue_prefix}{role}"

    return Topology(
        exchange=exchange,
        queue_prefix=queue_prefix,
        retry_delays=retry_delays,
        delivery_limit=delivery_limit,
        max_retries=max_retries,
        queues=tuple(
            QueueSpec(
                q(spec.role),
                tuple(binding_key(model) for model in spec.receives),
                single_active_consumer=spec.single_active_consumer,
            )
            for spec in QUEUES
        ),
        delays=tuple(
            DelaySpec(delay_name(q(spec.delay), poll_interval), q(spec.role), poll_interval)
            for spec in QUEUES
            if spec.delay is not None
        ),
    )


def queue_arguments(topology: Topology, queue: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-delivery-limit": topology.delivery_limit,
        "x-dead-letter-exchange": topology.dead_letter_exchange,
        "x-dead-letter-routing-key": dlq_name(queue),
    }
    if any(spec.name == queue and spec.single_active_consumer for spec in topology.queues):
        arguments["x-single-active-consumer"] = True
    return arguments


def delay_arguments(target: str, seconds: float) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": max(1, round(seconds * 1000)),
        "x-dead-letter-exchange": "",  # the default exchange routes by queue name
        "x-dead-letter-routing-key": target,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def all_queue_names(topology: Topology) -> list[str]:
    """Every queue the topology declares (for clean-up in tests and tools)."""
    names: list[str] = []
    for spec in topology.queues:
        names += [spec.name, dlq_name(spec.name)]
        if spec.with_retries:
            names += [retry_queue_name(spec.name, s) for s in sorted(set(topology.retry_delays))]
    for delay in topology.delays:
        names.append(delay.name)
    return names
