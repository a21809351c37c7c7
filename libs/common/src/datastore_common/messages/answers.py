"""The answers an instrument gets to an ``archive.requested`` it published on the broker.

Each request published by an instrument account (``instruments:`` in the settings) is answered
exactly once, by the icat-writer: ``archive.accepted`` once ICAT holds it and its jobs are on
their way, or ``archive.rejected`` with the reason when nothing of it will happen. Both are
*addressed*: their routing key ends with the instrument's broker user
(``datastore.archive.accepted.v1.<broker_user>``), so that an instrument may bind a queue to
its own answers only (RabbitMQ's topic permissions hold it to them). ``request.completed``
of an instrument's request is addressed the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from datastore_common.messages.envelope import Payload
from datastore_common.messages.notify import NotifyTargets

#: Why a request was rejected, for software to act on (``reason`` says it in words).
RejectionClass = Literal[
    "schema",  # not a valid archive.requested (JSON, envelope, fields, safe names)
    "not_allowed",  # an instrument or an ICAT identity its account was not given
    "unknown_names",  # a facility, type, instrument, cycle or format ICAT does not know
    "too_large",  # more files or bytes than one request may hold
    "duplicate_in_flight",  # every dataset is being (or was) archived by another request
    "untrusted_plan",  # it carried jobs other than the plan Datastore makes of it
    "given_up",  # it could not be registered (see the reason); nothing was archived
]


class ArchiveAccepted(Payload):
    """An instrument's archive request is registered in ICAT and its FTS jobs are on their
    way: follow it with ``request.completed`` (or ``GET`` the ``status_url``)."""

    TYPE: ClassVar[str] = "datastore.archive.accepted.v1"
    ADDRESSED: ClassVar[bool] = True
    request_id: str
    instrument: str = Field(description="The broker user of the instrument account answered.")
    request_message_id: str | None = Field(
        default=None, description="The envelope id of the archive.requested answered."
    )
    owner: str = Field(description="The ICAT identity (plugin/name) it archives as.")
    job_ids: list[str] = Field(description="The FTS job ids it planned.")
    status_url: str = Field(description="The request in the ledger (GET with a session).")
    datasets: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Its datasets as the ledger shows them: investigation, visit_id, dataset, "
        "datafiles.",
    )
    notify: NotifyTargets | None = Field(
        default=None, description="Who is told when it ends (as the request asked)."
    )

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.instrument}"


class ArchiveRejected(Payload):
    """An instrument's archive request will not be done, for ``reason``; nothing of it was
    written to ICAT or sent to FTS. Fix it and publish it again."""

    TYPE: ClassVar[str] = "datastore.archive.rejected.v1"
    ADDRESSED: ClassVar[bool] = True
    request_id: str | None = Field(
        description="The request's id, when the message named one that could be read."
    )
    instrument: str = Field(description="The broker user of the instrument account answered.")
    request_message_id: str | None = Field(
        default=None, description="The AMQP message id of the archive.requested answered."
    )
    rejection: RejectionClass
    reason: str = Field(description="What is wrong, naming the values at fault.")

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.instrument}"

    def mandatory(self) -> bool:
        # Nobody but the instrument listens: one not bound to its answers must not stall us.
        return False
