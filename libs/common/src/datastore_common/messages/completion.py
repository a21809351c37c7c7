"""What is said when a request ends (``RequestCompleted``, published once per request by the
gateway's ledger; also the body of every webhook call)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from datastore_common.messages.envelope import Payload
from datastore_common.messages.transfer import FailureClass, TransferKind


class FailureSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_class: FailureClass | None = Field(
        description="user: the request itself; system: ours or a peer's; null when only some "
        "files failed and their reasons say why."
    )
    reason: str = Field(description="Why the request, or the first files, failed.")


#: How a request can end.
EndState = Literal["FINISHED", "FINISHEDDIRTY", "FAILED", "CANCELED"]


class RequestCompleted(Payload):
    """A request ended: published exactly once per request by the gateway's ledger (from its
    outbox, at least once on the wire with one envelope id: de-duplicate by it)."""

    TYPE: ClassVar[str] = "datastore.request.completed.v1"
    #: An instrument's request's completion goes to ``TYPE.<its broker user>``.
    ADDRESSED: ClassVar[bool] = True
    request_id: str
    kind: TransferKind
    owner: str | None = Field(description="The ICAT user (plugin/name) who asked.")
    state: EndState
    files: dict[str, int] = Field(description="How many files ended in each state.")
    files_total: int = Field(ge=0)
    bytes_total: int = Field(ge=0, description="Bytes of all its files (as far as known).")
    bytes_done: int = Field(ge=0, description="Bytes of its FINISHED files.")
    failure: FailureSummary | None = None
    status_url: str = Field(
        description="GET it (with a session) for the request as the ledger keeps it: it "
        "answers for gateway.ledger_retention_days, also after FTS forgot the jobs."
    )
    completed_at: datetime
    instrument: str | None = Field(
        default=None,
        description="The broker user of the instrument that published the request, if one "
        "did (the routing key then ends with it).",
    )
    copies_until: datetime | None = Field(
        default=None,
        description="A restore: until when its copies stay on the user data cache at least "
        "(restore.retention_days after it ended; later if another restore uses them); then "
        "they may be removed.",
    )

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.instrument}" if self.instrument else self.TYPE

    def mandatory(self) -> bool:
        # An instrument that does not listen for its completions must not stall the outbox.
        return self.instrument is None
