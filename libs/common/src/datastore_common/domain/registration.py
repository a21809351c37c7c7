"""Registration: what the icat-writer writes to ICAT for an archive request.

Pure, like the status-poller's ``observe()``: plain data in (the request and its plan, what the
instrument data cache and ICAT answered), plain data out (the "Archival" values to write, the
jobs to announce, the files left out and why); no I/O. The icat-writer's handlers read and
write around these calls. For an archive request, in this order:

1. ``check_plan``: the request's jobs cover exactly the datafiles it names.
2. per dataset, ``files_of``: each datafile's place, size and checksum (``size_and_checksum``)
   and whether its source exists; ``domain.claims``: may this request archive the dataset
   (the handler claims it in ICAT)? ``refuse`` drops every file of a dataset another request
   holds.
3. ``register_files``: the values of each datafile (``decide_file``) and of the dataset
   (``dataset_values``); on a redelivery only the gaps are filled (``fill_gaps``).
4. ``announce``: the jobs with their registered files only, and a status for each job that
   lost files.

FTS's status events are ``domain.progress``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from datastore_common.domain.archival import (
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_FAILURE,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
    failure_text,
    join_job_ids,
)
from datastore_common.domain.claims import Standing
from datastore_common.domain.paths import archive_location
from datastore_common.domain.plan import is_real_checksum
from datastore_common.domain.states import (
    FAILED,
    FINISHED,
    SUBMITTED,
    aggregate_dataset_state,
    classify_failure,
)
from datastore_common.errors import InvalidRequestError
from datastore_common.messages import (
    ArchiveRequested,
    DatafileSpec,
    DatasetSpec,
    FileState,
    InvestigationSpec,
    PlannedJob,
    PlannedTransfer,
    TransferStatus,
)

ALREADY_ON_TAPE = "already on tape from an earlier request: not copied again"
SOURCE_NOT_FOUND = "source not found on the instrument data cache"

FileKey = tuple[str, str, str, str]  # investigation, visitId, dataset, datafile
Values = dict[str, str | None]  # "Archival" parameters to write; None removes one


class PlanMismatchError(InvalidRequestError):
    """The jobs of an archive request do not cover exactly the datafiles it names."""


# What is read of the outside world, by shape (``ports.StoredFile``, ``ports.CatalogueDataset``,
# ``ports.CatalogueDatafile`` have it): the rules need no more than this.


class Described(Protocol):
    """A source as the instrument data cache describes it."""

    @property
    def size(self) -> int: ...

    @property
    def checksum(self) -> str: ...


class RecordedDataset(Protocol):
    """A Dataset as ICAT records it."""

    @property
    def dataset_id(self) -> int: ...

    @property
    def archival(self) -> Mapping[str, str]: ...


class RecordedDatafile(Protocol):
    """A Datafile as ICAT records it."""

    @property
    def datafile_id(self) -> int: ...

    @property
    def dataset_id(self) -> int: ...

    @property
    def archival(self) -> Mapping[str, str]: ...


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """An archive request's jobs, checked against the datafiles it names."""

    request_id: str
    jobs: tuple[PlannedJob, ...]
    transfers: Mapping[FileKey, tuple[str, PlannedTransfer]]  # (job id, transfer) per datafile
    job_ids: frozenset[str]  # ids recorded in ICAT from these mean "this request's own"
    endpoint: str  # the FTS endpoint recorded with the files

    @property
    def sources(self) -> list[str]:
        """Every source to describe, in plan order."""
        return [transfer.source for _, transfer in self.transfers.values()]


def datafile_key(
    investigation: InvestigationSpec, dataset: DatasetSpec, datafile: DatafileSpec
) -> FileKey:
    return (investigation.name, investigation.visitId, dataset.name, datafile.name)


def transfer_key(transfer: PlannedTransfer) -> FileKey:
    key = transfer.datafile
    if key is None:
        raise PlanMismatchError(f"transfer {transfer.source} names no datafile")
    return (key.investigation, key.visit_id, key.dataset, key.datafile)


def check_plan(request: ArchiveRequested, jobs: Sequence[PlannedJob], *, endpoint: str) -> Plan:
    """The plan of ``request``: PlanMismatchError unless ``jobs`` are archive jobs that name
    every datafile of the request once, and no other."""
    transfers = _transfers_by_key(jobs)
    named = {
        datafile_key(inv, ds, df)
        for inv in request.investigations
        for ds in inv.datasets
        for df in ds.datafiles
    }
    if named != set(transfers):
        missing = sorted("/".join(k) for k in named - set(transfers))[:5]
        extra = sorted("/".join(k) for k in set(transfers) - named)[:5]
        raise PlanMismatchError(
            f"jobs do not match the request's datafiles (unplanned: {missing}, unknown: {extra})"
        )
    return Plan(
        request_id=request.request_id,
        jobs=tuple(jobs),
        transfers=transfers,
        job_ids=frozenset(job.job_id for job in jobs),
        endpoint=endpoint,
    )


def _transfers_by_key(jobs: Sequence[PlannedJob]) -> dict[FileKey, tuple[str, PlannedTransfer]]:
    planned: dict[FileKey, tuple[str, PlannedTransfer]] = {}
    for job in jobs:
        if job.kind != "archive":
            raise PlanMismatchError(f"job {job.job_id} is a {job.kind} job in an archive request")
        for transfer in job.transfers:
            key = transfer_key(transfer)
            if key in planned:
                raise PlanMismatchError(f"datafile {'/'.join(key)} planned twice")
            planned[key] = (job.job_id, transfer)
    return planned


# ---------------------------------------------------------------- one dataset


@dataclass(frozen=True)
class FileToRegister:
    """A datafile of the request, with what is known of it before ICAT is asked."""

    key: FileKey
    spec: DatafileSpec
    job_id: str
    transfer: PlannedTransfer
    location: str  # its ICAT Datafile.location
    file_size: int | None
    checksum: str | None
    on_cache: bool  # its source exists on the instrument data cache


def size_and_checksum(
    datafile: DatafileSpec, stored: Described | None
) -> tuple[int | None, str | None]:
    """The request's size unless it is missing or 0, its checksum only when it is a real
    ``adler32:<8 hex>`` (the seed sends "string"); else what the cache says, if anything."""
    size = datafile.fileSize or (stored.size if stored else None)
    checksum = (
        datafile.checksum
        if is_real_checksum(datafile.checksum)
        else (stored.checksum if stored else None)
    )
    return size, checksum


def files_of(
    plan: Plan,
    investigation: InvestigationSpec,
    dataset: DatasetSpec,
    described: Mapping[str, Described | None],
) -> list[FileToRegister]:
    """The dataset's datafiles, in request order, with their jobs and what the cache said."""
    files = []
    for datafile in dataset.datafiles:
        key = datafile_key(investigation, dataset, datafile)
        job_id, transfer = plan.transfers[key]
        stored = described[transfer.source]
        size, checksum = size_and_checksum(datafile, stored)
        files.append(
            FileToRegister(
                key=key,
                spec=datafile,
                job_id=job_id,
                transfer=transfer,
                location=archive_location(investigation, dataset, datafile),
                file_size=size,
                checksum=checksum,
                on_cache=stored is not None,
            )
        )
    return files


@dataclass(frozen=True)
class DatasetRegistration:
    """What registering one dataset writes to ICAT, and which of its files go to FTS."""

    dataset_id: int
    file_values: Mapping[int, Values]  # by datafile id
    dataset_values: Values
    registered: Mapping[FileKey, PlannedTransfer]  # stays in its job, with its ICAT ids
    dropped: Mapping[FileKey, FileState]  # left out of its job, with why
    refused: bool = False  # another request holds the dataset: nothing is written


def refuse(
    investigation: InvestigationSpec,
    dataset: DatasetSpec,
    files: Sequence[FileToRegister],
    refusal: Standing,
    *,
    dataset_id: int,
) -> DatasetRegistration:
    """Every file of a dataset another request holds is dropped, FAILED as a user error."""
    reason = (
        f"dataset {investigation.name}-{investigation.visitId}/{dataset.name} is already "
        f"archived or being archived (state {refusal.state}, jobs "
        f"{', '.join(refusal.job_ids) or '-'}): not archived again"
    )
    dropped = {
        file.key: FileState(
            source=file.transfer.source,
            destination=file.transfer.destination,
            state=FAILED,
            reason=reason,
            failure_class="user",
        )
        for file in files
    }
    return DatasetRegistration(
        dataset_id=dataset_id,
        file_values={},
        dataset_values={},
        registered={},
        dropped=dropped,
        refused=True,
    )


@dataclass(frozen=True)
class FileDecision:
    """What registration does with one datafile."""

    values: Values  # its "Archival" values to write (maybe none)
    state: str  # its state once they are written
    job_id: str | None = None  # the job it stays in, when registered
    registered: PlannedTransfer | None = None
    dropped: FileState | None = None


class _Wanted(NamedTuple):
    values: Values
    registered: PlannedTransfer | None = None
    dropped: FileState | None = None


def decide_file(
    file: FileToRegister,
    recorded: RecordedDatafile,
    *,
    ours: bool,
    endpoint: str,
) -> FileDecision:
    """One datafile: kept FINISHED when an earlier request put it on tape, FAILED when its
    source is missing, else SUBMITTED in its job; on a redelivery only the gaps are filled."""
    current = recorded.archival
    if not ours and current.get(ARCHIVAL_STATE) == FINISHED:
        wanted = _Wanted({}, dropped=_dropped(file, recorded, FINISHED, ALREADY_ON_TAPE))
    elif not file.on_cache:
        wanted = _missing_source(file, recorded)
    else:
        wanted = _submitted(file, recorded, endpoint)
    values = fill_gaps(current, wanted.values) if ours else wanted.values
    return FileDecision(
        values=values,
        state=values.get(ARCHIVAL_STATE) or current.get(ARCHIVAL_STATE) or SUBMITTED,
        job_id=file.job_id if wanted.registered is not None else None,
        registered=wanted.registered,
        dropped=wanted.dropped,
    )


def _dropped(
    file: FileToRegister,
    recorded: RecordedDatafile,
    state: str,
    reason: str,
    failure_class: Literal["user"] | None = None,
) -> FileState:
    return FileState(
        source=file.transfer.source,
        destination=file.transfer.destination,
        datafile_id=recorded.datafile_id,
        dataset_id=recorded.dataset_id,
        state=state,
        reason=reason,
        failure_class=failure_class,
    )


def _missing_source(file: FileToRegister, recorded: RecordedDatafile) -> _Wanted:
    reason = f"{SOURCE_NOT_FOUND}: {file.transfer.source}"
    values: Values = {
        ARCHIVAL_STATE: FAILED,
        ARCHIVAL_FAILURE: failure_text(classify_failure(reason), reason),
    }
    return _Wanted(values, dropped=_dropped(file, recorded, FAILED, reason, "user"))


def _submitted(file: FileToRegister, recorded: RecordedDatafile, endpoint: str) -> _Wanted:
    values: Values = {
        ARCHIVAL_STATE: SUBMITTED,
        ARCHIVAL_IDS: file.job_id,
        ARCHIVAL_ENDPOINT: endpoint,
        ARCHIVAL_FAILURE: None,
    }
    transfer = file.transfer.model_copy(
        update={
            "datafile_id": recorded.datafile_id,
            "dataset_id": recorded.dataset_id,
            "checksum": file.checksum,
            "filesize": file.file_size,
        }
    )
    return _Wanted(values, registered=transfer)


def fill_gaps(current: Mapping[str, str], wanted: Mapping[str, str | None]) -> Values:
    """On redelivery only write what an interrupted first delivery left missing: the states
    recorded since (ACTIVE, FINISHED...) must not go back to SUBMITTED."""
    return {
        name: value for name, value in wanted.items() if value is not None and name not in current
    }


def dataset_values(
    current: Mapping[str, str],
    decisions: Sequence[FileDecision],
    *,
    ours: bool,
    endpoint: str,
) -> Values:
    """The dataset's values: its files' aggregated state, the endpoint, and the jobs its files
    stay in (when none stays in a job, the ids already recorded are left as they are)."""
    values: Values = {
        ARCHIVAL_STATE: aggregate_dataset_state([d.state for d in decisions]),
        ARCHIVAL_ENDPOINT: endpoint,
    }
    job_ids = [d.job_id for d in decisions if d.job_id is not None]
    if job_ids:
        values[ARCHIVAL_IDS] = join_job_ids(job_ids)
    return fill_gaps(current, values) if ours else values


def register_files(
    files: Sequence[FileToRegister],
    recorded: Mapping[str, RecordedDatafile],
    dataset: RecordedDataset,
    *,
    ours: bool,
    endpoint: str,
) -> DatasetRegistration:
    """The values of a dataset and its datafiles (``recorded`` by name, as ICAT has them now
    that they exist), and which files stay in their jobs."""
    file_values: dict[int, Values] = {}
    decisions: list[FileDecision] = []
    for file in files:
        record = recorded[file.spec.name]
        decision = decide_file(file, record, ours=ours, endpoint=endpoint)
        file_values[record.datafile_id] = decision.values
        decisions.append(decision)
    keyed = list(zip((f.key for f in files), decisions, strict=True))
    return DatasetRegistration(
        dataset_id=dataset.dataset_id,
        file_values=file_values,
        dataset_values=dataset_values(dataset.archival, decisions, ours=ours, endpoint=endpoint),
        registered={k: d.registered for k, d in keyed if d.registered is not None},
        dropped={k: d.dropped for k, d in keyed if d.dropped is not None},
    )


# ---------------------------------------------------------------- the request


@dataclass(frozen=True)
class Announcement:
    """What registration publishes: the jobs to submit and the status of lost files."""

    jobs: list[PlannedJob]  # the planned jobs with their registered transfers only
    statuses: list[TransferStatus]  # one per job that lost transfers
    registered: int  # files in ``jobs``
    dropped: int  # files in ``statuses``


def announce(plan: Plan, registrations: Sequence[DatasetRegistration]) -> Announcement:
    """Jobs with the registered transfers only, and a status event for every job that lost
    transfers (FAILED when nothing is left of it)."""
    registered = {k: t for r in registrations for k, t in r.registered.items()}
    dropped = {k: f for r in registrations for k, f in r.dropped.items()}
    jobs: list[PlannedJob] = []
    statuses: list[TransferStatus] = []
    for job in plan.jobs:
        kept, lost = _split_job(job, registered, dropped)
        if kept:
            jobs.append(job.model_copy(update={"transfers": kept}))
        if lost:
            statuses.append(_job_status(plan, job, lost, any_kept=bool(kept)))
    return Announcement(jobs, statuses, registered=len(registered), dropped=len(dropped))


def _split_job(
    job: PlannedJob,
    registered: Mapping[FileKey, PlannedTransfer],
    dropped: Mapping[FileKey, FileState],
) -> tuple[list[PlannedTransfer], list[FileState]]:
    """The job's transfers that stay (registered), and the states of those it lost."""
    keys = [transfer_key(t) for t in job.transfers]
    return [registered[k] for k in keys if k in registered], [
        dropped[k] for k in keys if k in dropped
    ]


def _job_status(
    plan: Plan, job: PlannedJob, lost: list[FileState], *, any_kept: bool
) -> TransferStatus:
    # A job left without files ends as its files did: FINISHED when all were on tape
    # already, FAILED when none could be archived, FINISHEDDIRTY for a mix.
    failures = [f for f in lost if f.state == FAILED]
    return TransferStatus(
        request_id=plan.request_id,
        kind="archive",
        job_id=job.job_id,
        fts_endpoint=plan.endpoint,
        job_state=SUBMITTED if any_kept else aggregate_dataset_state([f.state for f in lost]),
        reason=f"no file of this job can be archived: {failures[0].reason}"
        if failures and not any_kept
        else None,
        files=lost,
    )
