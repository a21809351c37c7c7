"""Messages about planned, submitted and observed FTS transfers."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datastore_common.messages.envelope import Payload
from datastore_common.messages.metadata import InvestigationSpec
from datastore_common.messages.notify import NotifyTargets

TransferKind = Literal["archive", "restore"]
FailureClass = Literal["user", "system"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatafileKey(_Part):
    """Where a datafile sits in ICAT, by uniqueness keys (before it has an id)."""

    investigation: str
    visit_id: str
    dataset: str
    datafile: str


class PlannedTransfer(_Part):
    source: str = Field(description="Full source URL, e.g. root://idc:1094//path")
    destination: str
    datafile: DatafileKey | None = None
    datafile_id: int | None = Field(default=None, description="ICAT Datafile id, once known.")
    dataset_id: int | None = None
    checksum: str | None = Field(default=None, description="adler32:<hex>, once known.")
    filesize: int | None = Field(default=None, ge=0)


class LeftOutFile(_Part):
    """A datafile of a partial restore's selection that is not restored, and why."""

    datafile_id: int = Field(description="ICAT Datafile id")
    reason: str


class SharedTransfer(PlannedTransfer):
    """A file of a restore that another restore, not yet ended, is recalling to the same
    place: not recalled twice, and never overwritten half-written; it ends as that one's
    copy of it does."""

    recalled_by: str = Field(description="The request whose FTS job is recalling the file.")


class PlannedJob(_Part):
    """One FTS job: its deterministic id and sid, and the files it moves."""

    job_id: str
    sid: str
    kind: TransferKind
    transfers: list[PlannedTransfer]
    overwrite: bool = Field(
        default=False,
        description="Replace what is at the destination: a retry's, whose earlier attempt may "
        "have left its copy there (failed while archiving, cancelled).",
    )
    priority: int | None = Field(
        default=None,
        ge=1,
        le=5,
        description="FTS priority of the job (1-5); none: fts3.priority. A restore's follows "
        "its owner's priority in the restore queue (restore.user_priorities).",
    )


class ArchiveRequested(Payload):
    """A client or instrument asks for investigations' files to be archived."""

    TYPE: ClassVar[str] = "datastore.archive.requested.v1"
    request_id: str
    investigations: list[InvestigationSpec] = Field(min_length=1)
    jobs: list[PlannedJob] = Field(
        default_factory=list,
        description="Plan computed by the gateway; an instrument may leave it empty and the "
        "icat-writer plans with the same pure function.",
    )
    notify: NotifyTargets | None = Field(
        default=None, description="Who is told when the request ends (request.completed)."
    )


class ArchiveRegistered(Payload):
    """ICAT now holds the request's metadata; these jobs may be submitted."""

    TYPE: ClassVar[str] = "datastore.archive.registered.v1"
    request_id: str
    jobs: list[PlannedJob]


class ArchiveRetryRequested(Payload):
    """An archiver (or an operator, through the gateway) asks for the datafiles FAILED or
    CANCELED of an ended archive of a dataset to be archived again. The icat-writer checks
    them against ICAT, claims the dataset for new jobs named from ``request_id`` (a redelivery
    names the same ones) and announces them with ``archive.registered``."""

    TYPE: ClassVar[str] = "datastore.archive.retry.requested.v1"
    request_id: str
    dataset_id: int = Field(description="ICAT Dataset id")
    datafile_ids: list[int] = Field(
        min_length=1,
        description="The datafiles to send again (FAILED or CANCELED when the retry was "
        "accepted); the icat-writer refuses the retry if ICAT says otherwise by then.",
    )
    dataset: dict[str, str | int] = Field(
        default_factory=dict,
        description="How the ledger shows the dataset: its id and, where ICAT gave them, "
        "its investigation, visit id and name.",
    )


SettableState = Literal["FINISHED", "FINISHEDDIRTY", "FAILED", "CANCELED"]


class ArchivalStateSet(Payload):
    """An admin sets a dataset's "Archival state" by hand (and its datafiles', with
    ``datafiles``), with a reason kept in the gateway's audit trail; the icat-writer writes it.
    ``change_id`` names the change (the correlation id)."""

    TYPE: ClassVar[str] = "datastore.archival.state.set.v1"
    change_id: str
    dataset_id: int = Field(description="ICAT Dataset id")
    state: SettableState
    reason: str = Field(min_length=1, max_length=1000)
    datafiles: bool = Field(description="Set every datafile of the dataset to the state too.")
    deletion_date: date | None = Field(
        default=None, description='Recorded as the dataset\'s "Deletion date" (ISO date).'
    )
    set_by: str = Field(description="The admin's ICAT user name (plugin/name).")


class RestoreRequested(Payload):
    """A user asks for archived datafiles to be staged and copied to the user data cache."""

    TYPE: ClassVar[str] = "datastore.restore.requested.v1"
    request_id: str
    jobs: list[PlannedJob] = Field(
        default_factory=list,
        description="The files to stage from tape and copy; none when every file is "
        "already online.",
    )
    already_online: list[PlannedTransfer] = Field(
        default_factory=list,
        description="Files whose copy on the user data cache already has the catalogue's "
        "size and adler32: not recalled, counted done.",
    )
    left_out: list[LeftOutFile] = Field(
        default_factory=list,
        description="A partial restore's datafiles not (yet) archived: not restored, each "
        "with why.",
    )
    notify: NotifyTargets | None = Field(
        default=None, description="Who is told when the request ends (request.completed)."
    )
    already_in_flight: list[SharedTransfer] = Field(
        default_factory=list,
        description="Files another restore not yet ended is recalling to the same place: "
        "not recalled twice; each ends as that restore's copy of it does.",
    )

    @model_validator(mode="after")
    def _some_files(self) -> RestoreRequested:
        if not (self.jobs or self.already_online or self.already_in_flight):
            raise ValueError(
                "a restore names at least one job, one file already online or one in flight"
            )
        return self


class TransferSubmitted(Payload):
    """FTS accepted a job; the status poller follows it from here."""

    TYPE: ClassVar[str] = "datastore.transfer.submitted.v1"
    request_id: str
    kind: TransferKind
    job_id: str
    fts_endpoint: str
    transfers: list[PlannedTransfer]


class FileState(_Part):
    source: str
    destination: str
    datafile_id: int | None = None
    dataset_id: int | None = None
    datafile: DatafileKey | None = Field(
        default=None,
        description="The datafile's ICAT keys, when it may have no id yet (a request given up "
        "during registration): the icat-writer records the state where the entity exists.",
    )
    state: str = Field(description="FTS file state (SUBMITTED, ACTIVE, FINISHED, FAILED, ...)")
    reason: str | None = None
    failure_class: FailureClass | None = None


class TransferStatus(Payload):
    """What FTS (or a step before it) says about a job and its files now."""

    TYPE: ClassVar[str] = "datastore.transfer.status.v1"
    request_id: str
    kind: TransferKind
    job_id: str
    fts_endpoint: str
    job_state: str
    reason: str | None = None
    files: list[FileState] = Field(default_factory=list)


class RequestFailed(Payload):
    """A request was given up as a whole: it will never be done, for this reason.

    Published by the worker that gave up (a permanent error, retries or redeliveries
    exhausted), after the FAILED states of its jobs; the request ledger ends the request
    FAILED with ``"<failure_class> error: <reason>"``.
    """

    TYPE: ClassVar[str] = "datastore.request.failed.v1"
    request_id: str
    kind: TransferKind
    failure_class: FailureClass
    reason: str
    job_ids: list[str] = Field(default_factory=list)


class RequestDelayed(Payload):
    """A step of a request failed for a passing reason and will be tried again at
    ``retry_at``: the ledger shows it in ``waiting_on`` until the request moves on."""

    TYPE: ClassVar[str] = "datastore.request.delayed.v1"
    request_id: str
    reason: str
    retry_at: datetime


class TransferTracked(Payload):
    """Internal to the status poller: a job it follows, with the states it last published."""

    TYPE: ClassVar[str] = "datastore.transfer.tracked.v1"
    request_id: str
    kind: TransferKind
    job_id: str
    fts_endpoint: str
    job_state: str | None = None
    file_states: dict[str, str] = Field(
        default_factory=dict, description="destination URL -> last published file state"
    )
    transfers: list[PlannedTransfer]
    polls: int = 0


def job_failed(
    *,
    request_id: str,
    kind: TransferKind,
    job_id: str,
    fts_endpoint: str,
    transfers: list[PlannedTransfer],
    reason: str,
    failure_class: FailureClass = "system",
) -> TransferStatus:
    """A job, and each of its files, FAILED for one reason (FTS refused it, or lost it)."""
    return TransferStatus(
        request_id=request_id,
        kind=kind,
        job_id=job_id,
        fts_endpoint=fts_endpoint,
        job_state="FAILED",
        reason=reason,
        files=[
            FileState(
                source=t.source,
                destination=t.destination,
                datafile_id=t.datafile_id,
                dataset_id=t.dataset_id,
                datafile=t.datafile if t.datafile_id is None else None,
                state="FAILED",
                reason=reason,
                failure_class=failure_class,
            )
            for t in transfers
        ],
    )
