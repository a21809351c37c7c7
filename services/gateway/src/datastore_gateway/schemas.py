"""HTTP shapes of the gateway: what clients send and what they get back (not wire messages).

``ArchiveRequest`` and ``RestoreRequest`` are the seed's ``POST /archive`` and ``POST /restore``
bodies verbatim. The archive body's investigations reuse the message models of
``datastore_common.messages.metadata``, so the HTTP body and an instrument's
``archive.requested`` message obey the same rules (safe names, no duplicates, files present).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datastore_common.domain.ledger import MAX_PAGE_SIZE, PAGE_SIZE
from datastore_common.messages import (
    InvestigationSpec,
    LeftOutFile,
    NotifyTargets,
    SettableState,
    check_unique_investigations,
)

API_VERSION = "1"


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoginRequest(_Shape):
    auth: str = Field(default="simple", min_length=1, examples=["simple"])
    username: str = Field(min_length=1, examples=["root"])
    password: str = Field(min_length=1, examples=["pw"])

    @property
    def credentials_for_icat(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


class OriginalCredentials(_Shape):
    username: str = Field(min_length=1, examples=["root"])
    password: str = Field(min_length=1, examples=["pw"])


class OriginalLoginRequest(_Shape):
    """The original Datastore API's login body: the credentials nested as ICAT takes them."""

    auth: str = Field(min_length=1, examples=["simple"])
    credentials: OriginalCredentials

    @property
    def credentials_for_icat(self) -> dict[str, str]:
        return {"username": self.credentials.username, "password": self.credentials.password}


class LoginAccepted(_Shape):
    sessionId: str = Field(description="ICAT session id; send it as 'Authorization: Bearer ...'.")


class ArchiveRequest(_Shape):
    investigations: list[InvestigationSpec] = Field(min_length=1)
    notify: NotifyTargets | None = Field(
        default=None,
        description="Who is told when the request ends: an e-mail address (needs "
        "notify.smtp_host) and/or a webhook (needs notify.webhook_secret; its host in "
        "notify.webhook_allowed_hosts when that is set).",
    )

    @model_validator(mode="after")
    def _unique_investigations(self) -> ArchiveRequest:
        check_unique_investigations(self.investigations)
        return self

    @property
    def datafile_count(self) -> int:
        return sum(len(ds.datafiles) for inv in self.investigations for ds in inv.datasets)

    @property
    def total_bytes(self) -> int:
        return sum(
            df.fileSize or 0
            for inv in self.investigations
            for ds in inv.datasets
            for df in ds.datafiles
        )


class ArchiveAccepted(_Shape):
    request_id: str = Field(description="Correlates every message and status of this request.")
    job_ids: list[str] = Field(description="The FTS job ids the files will travel under.")


class RestoreRequest(_Shape):
    """The seed's ``POST /restore`` body: ICAT ids, any mix, at least one id in all."""

    investigation_ids: list[int] = Field(default_factory=list, examples=[[]])
    dataset_ids: list[int] = Field(default_factory=list, examples=[[1]])
    datafile_ids: list[int] = Field(default_factory=list, examples=[[]])
    notify: NotifyTargets | None = Field(
        default=None,
        description="Who is told when the request ends: an e-mail address (needs "
        "notify.smtp_host) and/or a webhook (needs notify.webhook_secret; its host in "
        "notify.webhook_allowed_hosts when that is set).",
    )

    @model_validator(mode="after")
    def _some_ids(self) -> RestoreRequest:
        if not (self.investigation_ids or self.dataset_ids or self.datafile_ids):
            raise ValueError("name at least one investigation, dataset or datafile id")
        return self

    @property
    def id_count(self) -> int:
        return len(self.investigation_ids) + len(self.dataset_ids) + len(self.datafile_ids)


class RestoreAccepted(ArchiveAccepted):
    """As an archive's answer: the request id and the FTS job ids (tape to user cache), plus
    the datafiles not recalled because their copy is already online."""

    already_online: list[int] = Field(
        default_factory=list,
        description="Datafile ids whose copy on the user data cache already has the "
        "catalogue's size and adler32: not recalled, counted done. Every file online: no "
        "job, and the request is FINISHED at once.",
    )
    left_out: list[LeftOutFile] = Field(
        default_factory=list,
        description="With partial=true: the selection's datafiles not (yet) archived, not "
        "restored, each with why.",
    )
    already_in_flight: list[int] = Field(
        default_factory=list,
        description="Datafile ids another restore not yet ended is recalling to the same "
        "place: not recalled twice; this request follows that transfer and each ends as it "
        "does (its copy is never taken for a different file and overwritten).",
    )
    state: Literal["SUBMITTED", "QUEUED"] = Field(
        default="SUBMITTED",
        description="QUEUED: past a cap of restore.* (yours, or the facility's); it starts by "
        "itself as capacity frees up, in priority then arrival order (no job ids until then; "
        "what is online is looked at again when it starts). Follow it with GET /requests/{id}.",
    )
    queue_position: int | None = Field(
        default=None, description="QUEUED: 1 for the next in line (at the time of the answer)."
    )
    waiting_on: str | None = Field(default=None, description="QUEUED: why it waits, in words.")


class RestorePreview(_Shape):
    """``POST /restore?dry_run=true``: what the restore would do; nothing is submitted."""

    dry_run: Literal[True] = True
    files: int = Field(description="Datafiles the selection restores (left-out ones aside).")
    bytes: int = Field(description="Their size, as ICAT gives it.")
    already_online: int = Field(
        description="Of those, files whose copy on the user data cache already has the "
        "catalogue's size and adler32: not recalled."
    )
    already_online_bytes: int
    already_in_flight: int = Field(
        description="Files another restore is recalling to the same place now: followed."
    )
    from_tape: int = Field(description="Files it would stage from tape itself.")
    from_tape_bytes: int
    left_out: list[LeftOutFile] = Field(
        default_factory=list, description="With partial=true: not restored, with why."
    )
    refused: str | None = Field(
        default=None, description="Why it would be refused (413: past a cap alone)."
    )
    would_queue: str | None = Field(
        default=None, description="Why it would wait QUEUED now; null: it would start at once."
    )
    needs_confirm: bool = Field(
        description="Above restore.confirm_above_bytes: send it with confirm=true."
    )


class RestoreQueueEntry(_Shape):
    """A restore waiting its turn (QUEUED) or just let start (STARTING)."""

    request_id: str
    owner: str
    priority: int
    queued_at: datetime
    files: int = Field(description="Files it would recall (as counted when it was queued).")
    bytes: int
    state: Literal["QUEUED", "STARTING"]
    position: int | None = Field(description="QUEUED: 1 for the next in line.")
    waiting_on: str | None = Field(description="Why it waits, in words.")


class RestoreQueue(_Shape):
    """The restore queue, in the order it is served (priority, then arrival)."""

    items: list[RestoreQueueEntry]
    queued_files: int
    queued_bytes: int


class CancelAccepted(_Shape):
    """A cancel sent to FTS: the request then ends CANCELED as FTS reports it."""

    request_id: str
    canceled_job_ids: list[str] = Field(
        description="The jobs FTS was asked to cancel (files not yet done end CANCELED, "
        "partial copies removed)."
    )
    pending_job_ids: list[str] = Field(
        default_factory=list,
        description="Jobs FTS does not hold yet (still being submitted): cancel again shortly.",
    )


class RetryAccepted(ArchiveAccepted):
    """A retry accepted: follow ``request_id`` as any request; its jobs are named once the
    icat-writer has checked the files in ICAT (``GET /requests/{request_id}`` lists them)."""

    dataset_id: int
    datafile_ids: list[int] = Field(description="The datafiles sent again.")


class DatasetStateSet(_Shape):
    """An admin sets a dataset's "Archival state" by hand (``PUT /datasets/{id}/status``)."""

    state: SettableState = Field(examples=["FAILED"])
    reason: str = Field(
        min_length=1, max_length=1000, examples=["tape lost in the library; data to re-archive"]
    )
    datafiles: bool = Field(
        default=True, description="Set every datafile of the dataset to the state too."
    )
    deletion_date: date | None = Field(
        default=None,
        description='Recorded as the dataset\'s "Deletion date" parameter (ISO date), as the '
        "original Datastore's later API does.",
        examples=["2030-01-01"],
    )


class DatasetStateSetAccepted(_Shape):
    """The change as the audit trail keeps it; ICAT shows it once the icat-writer wrote it."""

    change_id: str
    dataset_id: int
    old_state: str | None = Field(description="The state before, from its datafiles in ICAT.")
    state: str
    datafiles: bool
    deletion_date: date | None
    set_by: str
    at: datetime
    reason: str


class JobFile(_Shape):
    source: str
    destination: str
    state: str = Field(description="FTS file state (STAGING, SUBMITTED, ACTIVE, FINISHED, ...)")
    reason: str | None = None


#: How every percentage_complete is computed (``states.ended_percentage``).
PERCENTAGE = (
    "Files whose transfer ended (FINISHED, FAILED or CANCELED) / all files x 100, to 2 "
    "decimals: 100 exactly when every file has ended (also with failures), and for no files."
)


class JobStatus(_Shape):
    """An FTS job as FTS reports it now."""

    job_id: str
    state: str = Field(description="FTS job state (STAGING, SUBMITTED, ACTIVE, FINISHED, ...)")
    reason: str | None = None
    percentage_complete: float = Field(description=PERCENTAGE)
    files: list[JobFile]


class JobState(_Shape):
    job_id: str
    status: str = Field(description="FTS job state (STAGING, SUBMITTED, ACTIVE, FINISHED, ...)")
    complete: bool = Field(description="True once the job is in a final state.")


class JobComplete(_Shape):
    job_id: str
    complete: bool = Field(
        description="True once the job is in a final state (FINISHED, FINISHEDDIRTY, FAILED, "
        "CANCELED)."
    )


class JobPercentage(_Shape):
    job_id: str
    percentage_complete: float = Field(description=PERCENTAGE)


class VersionInfo(_Shape):
    name: str
    version: str
    api_version: str


class Health(_Shape):
    status: str = Field(description="'ok' when every dependency is reachable, else 'degraded'.")
    broker_connected: bool
    vo: str | None = Field(description="FTS VO job ids are derived from, once known.")


class Problem(_Shape):
    """Body of every error answer except 422: one sentence saying why."""

    detail: str


class RequestJob(_Shape):
    job_id: str
    state: str = Field(description="PLANNED until FTS has the job, then FTS's job state.")
    files_done: int
    files_failed: int = Field(description="Files FAILED or CANCELED.")
    files_total: int
    bytes_done: int
    bytes_total: int = Field(description="Known once the sources were checked (archive).")


class RequestFailure(_Shape):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    failure_class: Literal["user", "system"] = Field(
        alias="class", description="user: the request itself; system: ours or a peer's."
    )
    reason: str


class RequestNotification(_Shape):
    """How telling one channel that the request ended went."""

    channel: Literal["broker", "webhook", "email"] = Field(
        description="broker: request.completed; webhook, email: as the request asked."
    )
    state: Literal["PENDING", "SENT", "GAVE_UP"]
    attempts: int
    error: str | None = Field(description="Why the last attempt failed, if it did.")


class RequestStatus(_Shape):
    """An accepted request as the ledger follows it, until it ends and after."""

    request_id: str
    kind: Literal["archive", "restore"]
    owner: str | None = Field(description="The ICAT user (plugin/name) who asked.")
    source: Literal["http", "broker"]
    instrument: str | None = Field(
        default=None,
        description="source broker: the instrument account (its broker user) that published "
        "it (docs/instruments.md).",
    )
    created: datetime
    updated: datetime
    state: str = Field(
        description="SUBMITTED, then its jobs' aggregated state (STAGING, ACTIVE, ARCHIVING, "
        "...), ending FINISHED, FINISHEDDIRTY, FAILED or CANCELED; never moves back."
    )
    jobs: list[RequestJob]
    datasets: list[dict[str, Any]]
    failure: RequestFailure | None = Field(
        description="Why it FAILED: '<class> error: <reason>' in ICAT."
    )
    waiting_on: str | None = Field(description="What it waits for now, in words; null once ended.")
    notify: NotifyTargets | None = Field(
        default=None, description="Who is told when it ends, as the request asked."
    )
    notifications: list[RequestNotification] = Field(
        default_factory=list,
        description="Once it ended: how telling each channel went (empty before).",
    )
    left_out: list[LeftOutFile] = Field(
        default_factory=list,
        description="A partial restore's datafiles not (yet) archived: not restored, with why.",
    )
    copies_until: datetime | None = Field(
        default=None,
        description="An ended restore: until when its copies stay on the user data cache at "
        "least (restore.retention_days after it ended); then the cleaner may remove them.",
    )


#: Every state a request can be in (``RequestStatus.state``).
RequestStateName = Literal[
    "QUEUED",
    "SUBMITTED",
    "STAGING",
    "READY",
    "ACTIVE",
    "ARCHIVING",
    "FINISHED",
    "FINISHEDDIRTY",
    "FAILED",
    "CANCELED",
    "UNKNOWN",
]


class RequestFilter(_Shape):
    """The query of ``GET /requests``: every filter given must hold."""

    mine: bool = Field(
        default=True,
        description="true: your own requests. false: everyone's, for gateway.admins; anyone "
        "else asking for everyone's still gets only their own (never a 403).",
    )
    kind: Literal["archive", "restore"] | None = Field(default=None, examples=["restore"])
    state: list[RequestStateName] = Field(
        default_factory=list,
        description="Requests in any of these states (repeat the parameter: "
        "state=STAGING&state=ACTIVE).",
    )
    investigation: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Requests with datasets of the investigation of this name (any visit); a "
        "restore is found by it when ICAT named its datafiles' investigation.",
        examples=["ABC123"],
    )
    since: datetime | None = Field(
        default=None,
        description="Accepted at or after this ISO 8601 date or time (UTC unless it says).",
        examples=["2026-01-31"],
    )
    until: datetime | None = Field(
        default=None,
        description="Accepted before this ISO 8601 date or time (UTC unless it says).",
        examples=["2026-02-01T12:00:00Z"],
    )
    limit: int = Field(
        default=PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Requests per page at most."
    )
    cursor: str | None = Field(
        default=None,
        max_length=1000,
        description="The next_cursor of the previous page, as it was: the page after it.",
    )


class RequestPage(_Shape):
    """Requests newest first (by acceptance), each as ``GET /requests/{request_id}`` shows it."""

    items: list[RequestStatus]
    next_cursor: str | None = Field(
        description="Pass it as `cursor` (same filters) for the next, older page; null on the "
        "last page."
    )


class _Archival(_Shape):
    """How the archival of some datafiles stands, from their "Archival" parameters in ICAT."""

    state: str | None = Field(
        description="The datafiles' 'Archival state' aggregated (the earliest active state "
        "among them, else FINISHED, FAILED, CANCELED when all are, else FINISHEDDIRTY); null "
        "when none records one (never archived)."
    )
    files_total: int
    files_ended: int = Field(description="Datafiles FINISHED, FAILED or CANCELED.")
    files_failed: int = Field(description="Datafiles FAILED or CANCELED.")
    percentage_complete: float = Field(description=PERCENTAGE)
    complete: bool = Field(
        description="True once every datafile's archival has ended (failures included); a "
        "datafile without an 'Archival state' has not."
    )
    failure: RequestFailure | None = Field(
        description="When datafiles failed: 'user' when any failed by the request's own "
        "fault (fix it and archive again), else 'system'; the reasons of the first ones, "
        "from their 'Archival failure'."
    )
    waiting_on: str | None = Field(description="What it waits for now, in words; null once ended.")


class DatasetStatus(_Archival):
    """A dataset's archival as ICAT records it, read with your session."""

    dataset_id: int
    name: str
    investigation_id: int
    file_states: dict[str, str | None] | None = Field(
        description="Each datafile's 'Archival state' (null: none) by its location (its name "
        "when it has none); null when asked with list_files=false."
    )


class DatasetComplete(_Shape):
    dataset_id: int
    complete: bool = Field(description="True once every datafile's archival has ended.")


class DatasetPercentage(_Shape):
    dataset_id: int
    percentage_complete: float = Field(description=PERCENTAGE)


class InvestigationStatus(_Archival):
    """An investigation's archival: over all its datasets' datafiles, and dataset by dataset."""

    investigation_id: int
    name: str
    visit_id: str
    datasets: list[DatasetStatus] = Field(description="By id, without their file_states.")


class InvestigationComplete(_Shape):
    investigation_id: int
    complete: bool = Field(description="True once every datafile's archival has ended.")


class InvestigationPercentage(_Shape):
    investigation_id: int
    percentage_complete: float = Field(description=PERCENTAGE)


class InvestigationFound(_Shape):
    """An investigation of the name asked, as ICAT lets you read it."""

    id: int = Field(description="Its ICAT id (POST /restore investigation_ids).")
    name: str
    visit_id: str
    title: str | None
    state: str | None = Field(
        description="Its datasets' 'Archival state' aggregated, counting only states "
        "Datastore wrote; null when none records one."
    )


class DatasetFound(_Shape):
    """A dataset of the investigation (and name) asked, as ICAT lets you read it."""

    id: int = Field(description="Its ICAT id (POST /restore dataset_ids).")
    name: str
    investigation_id: int
    investigation: str
    visit_id: str
    state: str | None = Field(
        description="Its 'Archival state' as Datastore wrote it; null when it records none "
        "(or only one written by someone else, which does not count)."
    )


class LookupPage(_Shape):
    """Which page of a look-up (``GET /investigations``, ``GET /datasets``) is asked for."""

    limit: int = Field(default=PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, max_length=200)


class InvestigationsFound(_Shape):
    """Investigations of the name asked, by id, a page at a time."""

    items: list[InvestigationFound]
    next_cursor: str | None = Field(
        description="Pass it as `cursor` (same query) for the next page; null on the last."
    )


class DatasetsFound(_Shape):
    """Datasets of the investigation (and name) asked, by id, a page at a time."""

    items: list[DatasetFound]
    next_cursor: str | None = Field(
        description="Pass it as `cursor` (same query) for the next page; null on the last."
    )


class QueueRow(_Shape):
    """A consumer queue with its retry ladder and dead-letter queue, or a delay queue."""

    queue: str
    consumed_by: str | None = Field(description="The service consuming it; None: a delay queue.")
    ready: int | None = Field(description="Messages waiting; None: not declared on the broker.")
    consumers: int | None
    retrying: int | None = Field(
        description="Messages waiting in its retry queues for their next attempt."
    )
    dead_letters: int | None = Field(description="Messages given up, in dlq.<queue>.")


class FailureCountRow(_Shape):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    failure_class: str = Field(
        alias="class",
        description="user, system (none recorded counts as system: FTS failed files).",
    )
    state: str = Field(description="FAILED or FINISHEDDIRTY.")
    requests: int


class RecentFailureRow(_Shape):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    request_id: str
    kind: str
    owner: str | None
    state: str
    failure_class: str = Field(alias="class")
    reason: str | None = Field(description="The request's own reason; None: files failed.")
    ended_at: datetime


class ActiveJobRow(_Shape):
    job_id: str
    request_id: str
    kind: str
    owner: str | None
    state: str = Field(description="PLANNED until FTS has the job, then FTS's job state.")
    files_total: int
    files_ended: int


class OldestActive(_Shape):
    request_id: str
    kind: str
    owner: str | None
    state: str
    accepted_at: datetime
    age_seconds: float = Field(description="Since it was accepted.")
    idle_seconds: float = Field(description="Since it last moved.")


class OperationsView(_Shape):
    """What an operator looks at: the broker's queues, what failed, what is going on."""

    queues: list[QueueRow]
    broker: str | None = Field(
        description="Why the queues could not be counted (they are then []); None: counted."
    )
    since: datetime = Field(description="Failures are counted from here.")
    failures: list[FailureCountRow]
    recent_failures: list[RecentFailureRow] = Field(description="The latest, newest first.")
    active_requests: int = Field(description="Requests not ended.")
    oldest_active: OldestActive | None = Field(
        description="The request not ended that was accepted first: the oldest waiting work."
    )
    active_jobs_total: int = Field(description="FTS jobs not ended, of requests not ended.")
    active_jobs: list[ActiveJobRow] = Field(description="The first of them, oldest request first.")
