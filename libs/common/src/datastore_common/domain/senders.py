"""Who may send what on the broker: every consumer's check of a message's sender.

RabbitMQ authenticates each connection and refuses a message whose AMQP ``user_id`` property
is not the connection's own user, so ``user_id`` names the broker user that really published
it. What that user may *send* is decided here, before any handler runs:

- ``broker.users`` maps each service's broker user to its role (gateway, icat-writer, ...);
  ``topology.PUBLISHERS`` says which roles may publish each message type.
- ``instruments`` maps an instrument's broker user to the ICAT identity it archives as and the
  instruments it may archive for; it may publish ``archive.requested`` and nothing else.
- A copy a service put back into its own queues (a retry, a delay) is published by that
  service under its own user; it vouches for the original sender in ``x-datastore-sender``.
  That header is believed only from this process's own broker user (another replica of the
  same service) and from operators (``datastore-ops dlq replay``): anyone else could write it.

A message without ``user_id``, from an unknown user, or of a type its sender's role may not
publish is refused: the consumer dead-letters it with the reason and counts it, and it
reaches no handler (so a forged request cannot even be reported FAILED on someone's behalf).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from datastore_common.errors import PermanentError
from datastore_common.messages import ArchiveRequested, Envelope, Payload

#: The role of a user that may act as every service: only the quick local default (``guest``
#: on a loopback broker); ``DatastoreSettings.check_deployable`` refuses it anywhere else.
ANY_ROLE: Final = "*"
#: ``datastore-ops``: replays dead letters on behalf of their original senders.
OPERATOR: Final = "operator"
#: An instrument's data acquisition, publishing ``archive.requested`` straight to the broker.
INSTRUMENT: Final = "instrument"
#: The header a service (or an operator) uses to vouch for a copy's original sender.
HEADER_SENDER: Final = "x-datastore-sender"


class RefusedSenderError(PermanentError):
    """The message's sender may not send it; ``kind`` labels the metric."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class InstrumentGrant:
    """What an instrument's broker user may archive: as whom, and for which instruments."""

    broker_user: str
    icat_user: str
    instruments: frozenset[str]


@dataclass(frozen=True)
class SenderPolicy:
    #: broker user -> role (a service role, ``OPERATOR`` or ``ANY_ROLE``).
    users: Mapping[str, str]
    #: message type -> roles that may publish it (from ``topology.PUBLISHERS``).
    publishers: Mapping[str, frozenset[str]]
    #: broker user -> what that instrument may archive.
    instruments: Mapping[str, InstrumentGrant] = field(default_factory=dict)
    #: This process's own broker user: its copies are believed when they vouch for a sender.
    own_user: str | None = None

    def role_of(self, broker_user: str) -> str | None:
        if broker_user in self.instruments:
            return INSTRUMENT
        return self.users.get(broker_user)


@dataclass(frozen=True)
class Sender:
    broker_user: str
    role: str
    grant: InstrumentGrant | None = None


def identify(policy: SenderPolicy, user_id: str | None, vouched_for: str | None) -> Sender:
    """Who really sent a message published by ``user_id`` (RabbitMQ-checked) that may carry
    ``vouched_for`` (the ``x-datastore-sender`` header)."""
    if not user_id:
        raise RefusedSenderError(
            "no_user_id",
            "refused: the message has no AMQP user_id property (every publisher must set it "
            "to its broker user; RabbitMQ checks it)",
        )
    publisher_role = policy.role_of(user_id)
    if publisher_role is None:
        raise RefusedSenderError("unknown_user", f"refused: broker user {user_id!r} has no role")
    sender = user_id
    if vouched_for and vouched_for != user_id:
        if user_id != policy.own_user and publisher_role not in (OPERATOR, ANY_ROLE):
            raise RefusedSenderError(
                "false_vouch",
                f"refused: {user_id!r} may not vouch for {vouched_for!r} "
                f"(only the consuming service itself and operators may)",
            )
        sender = vouched_for
    role = policy.role_of(sender)
    if role is None:
        raise RefusedSenderError("unknown_user", f"refused: broker user {sender!r} has no role")
    return Sender(sender, role, policy.instruments.get(sender))


def original_sender(
    policy: SenderPolicy, user_id: str | None, vouched_for: str | None
) -> str | None:
    """Who a copy we put back (retry, dead letter) must name as its sender: the one vouched
    for when the publisher may vouch, else the publisher RabbitMQ checked. So a refused false
    vouch is dead-lettered under its real publisher, and an operator's replay cannot launder
    it."""
    if (
        vouched_for
        and user_id
        and (user_id == policy.own_user or policy.role_of(user_id) in (OPERATOR, ANY_ROLE))
    ):
        return vouched_for
    return user_id or None


def authorise(
    policy: SenderPolicy,
    envelope: Envelope[Payload],
    user_id: str | None,
    vouched_for: str | None,
) -> Envelope[Payload]:
    """The envelope to hand to the handler, or ``RefusedSenderError``.

    An instrument's request is checked against its grant and carries its ICAT identity as
    ``user`` and its broker user as ``source`` (whatever it wrote there): the handlers know
    whom to answer (``archive.accepted`` / ``archive.rejected``) and the ledger records it.
    """
    sender = identify(policy, user_id, vouched_for)
    allowed = policy.publishers.get(envelope.type, frozenset())
    if sender.role != ANY_ROLE and sender.role not in allowed:
        raise RefusedSenderError(
            "role_not_allowed",
            f"refused: {sender.broker_user!r} ({sender.role}) may not publish {envelope.type}; "
            f"only {', '.join(sorted(allowed)) or 'nobody'} may",
        )
    if sender.grant is None:
        return envelope
    return _instrument_request(sender.grant, envelope)


def _instrument_request(grant: InstrumentGrant, envelope: Envelope[Payload]) -> Envelope[Payload]:
    request = envelope.data
    if not isinstance(request, ArchiveRequested):  # PUBLISHERS allows instruments nothing else
        raise RefusedSenderError(
            "role_not_allowed", f"refused: an instrument may not publish {envelope.type}"
        )
    if envelope.user is not None and envelope.user != grant.icat_user:
        raise RefusedSenderError(
            "wrong_identity",
            f"refused: {grant.broker_user!r} archives as {grant.icat_user!r}, "
            f"not as {envelope.user!r}",
        )
    foreign = sorted({spec.instrument.name for spec in request.investigations} - grant.instruments)
    if foreign:
        raise RefusedSenderError(
            "wrong_instrument",
            f"refused: {grant.broker_user!r} may archive only for "
            f"{', '.join(sorted(grant.instruments)) or 'no instrument'}, not for "
            f"{', '.join(foreign)}",
        )
    return envelope.model_copy(update={"user": grant.icat_user, "source": grant.broker_user})


def publishers_by_type(
    publishers: Mapping[type[Payload], tuple[str, ...]],
) -> dict[str, frozenset[str]]:
    """``topology.PUBLISHERS`` keyed by message type name."""
    return {model.TYPE: frozenset(roles) for model, roles in publishers.items()}
