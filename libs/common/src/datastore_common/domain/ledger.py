"""The request ledger's rules: what a request is, how its state follows its jobs, what it
waits for, and who sees which requests listed how. Pure: the gateway's ledger store applies
these to what it has recorded.

A request is accepted (``SUBMITTED``) with its planned jobs and files; status events move
files forward only (``states.may_advance``), jobs follow FTS's job state the same way, and
the request's state is its jobs' aggregated as a dataset's is from its files. A request
given up as a whole (``RequestFailed``) is ``FAILED`` whatever its jobs say.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datastore_common.domain.states import (
    CANCELED,
    FAILED,
    FINISHED,
    SUBMITTED,
    TERMINAL,
    aggregate_dataset_state,
    may_advance,
    normalise,
)
from datastore_common.messages import (
    ArchiveAccepted,
    ArchiveRequested,
    ArchiveRetryRequested,
    PlannedJob,
    PlannedTransfer,
    RestoreRequested,
    SharedTransfer,
    TransferKind,
)

#: What a request waits for, in words, by the earliest state among its jobs.
_WAITING_ON = {
    "STAGING": "staging from tape",
    "SUBMITTED": "a transfer slot in the FTS queue",
    "READY": "a transfer slot in the FTS queue",
    "ACTIVE": "the copy",
    "ARCHIVING": "migration to tape",
}


@dataclass(frozen=True)
class PlannedFile:
    destination: str
    bytes: int | None
    state: str = SUBMITTED
    #: The catalogue's adler32 (a restore's: the copy the cleaner may later remove is checked
    #: against it).
    checksum: str | None = None
    #: The request whose transfer to the same destination this file waits on (a restore's
    #: file already in flight for another restore): it moves as that one's file moves.
    follows: str | None = None


@dataclass(frozen=True)
class LedgerJob:
    """A job of a request as the ledger follows it: an FTS job (``state`` None until FTS
    reports it), or the restore's files already online (``already_online_job``)."""

    job_id: str
    files: tuple[PlannedFile, ...]
    state: str | None = None


def already_online_job_id(request_id: str) -> str:
    """The ledger's name for a restore's files already on the user data cache: not an FTS
    job (FTS never hears of it, and it is never an FTS job id: not a UUID)."""
    return f"{request_id}:already-online"


def already_online_job(request_id: str, transfers: Sequence[PlannedTransfer]) -> LedgerJob:
    """A restore's files already online, FINISHED from the start: they count as done."""
    return LedgerJob(
        already_online_job_id(request_id),
        tuple(PlannedFile(t.destination, t.filesize, FINISHED) for t in transfers),
        state=FINISHED,
    )


def in_flight_job_id(request_id: str) -> str:
    """The ledger's name for a restore's files other restores are recalling (not an FTS
    job, never a UUID): its files follow theirs."""
    return f"{request_id}:in-flight"


def in_flight_job(request_id: str, transfers: Sequence[SharedTransfer]) -> LedgerJob:
    """A restore's files already being recalled by other restores, waiting on theirs."""
    return LedgerJob(
        in_flight_job_id(request_id),
        tuple(
            PlannedFile(t.destination, t.filesize, SUBMITTED, follows=t.recalled_by)
            for t in transfers
        ),
        state=SUBMITTED,
    )


def following_job_state(file_states: Iterable[str]) -> str:
    """The state of a job of files that follow other requests' transfers: its files',
    aggregated as a dataset's (the earliest active one, or how they ended)."""
    return aggregate_dataset_state(file_states)


def is_ledger_only_job(job_id: str) -> bool:
    """Whether a request's job is the ledger's own (files already online or following another
    restore's), which FTS never hears of."""
    return job_id.endswith((":already-online", ":in-flight"))


@dataclass(frozen=True)
class NewRequest:
    """What the ledger records when a request is accepted."""

    request_id: str
    kind: TransferKind
    owner: str | None
    source: str
    datasets: tuple[dict[str, Any], ...]
    jobs: tuple[LedgerJob, ...]
    #: Who is told when it ends: {"email": ..., "webhook": ...} (what was given).
    notify: Mapping[str, str] | None = None
    #: A partial restore's datafiles not restored: {"datafile_id": ..., "reason": ...}.
    left_out: tuple[Mapping[str, Any], ...] = ()
    #: The instrument account (its broker user) that published it straight to the broker.
    instrument: str | None = None


def ledger_jobs(jobs: Sequence[PlannedJob]) -> tuple[LedgerJob, ...]:
    return tuple(
        LedgerJob(
            job.job_id,
            tuple(
                PlannedFile(t.destination, t.filesize, checksum=t.checksum) for t in job.transfers
            ),
        )
        for job in jobs
    )


def new_request(
    data: ArchiveRequested | ArchiveRetryRequested | RestoreRequested,
    *,
    owner: str | None,
    source: str,
) -> NewRequest:
    """The ledger entry of an accepted request (its plan may still be empty: an instrument's
    archive request and a retry are planned by the icat-writer, and their jobs arrive with
    registration). A retry is an archive of one dataset."""
    if isinstance(data, ArchiveRetryRequested):
        shown = {"dataset_id": data.dataset_id, **data.dataset, "datafiles": len(data.datafile_ids)}
        return NewRequest(
            request_id=data.request_id,
            kind="archive",
            owner=owner,
            source=source,
            datasets=(shown,),
            jobs=(),
        )
    if isinstance(data, ArchiveRequested):
        datasets = tuple(
            {
                "investigation": investigation.name,
                "visit_id": investigation.visitId,
                "dataset": dataset.name,
                "datafiles": len(dataset.datafiles),
            }
            for investigation in data.investigations
            for dataset in investigation.datasets
        )
        kind: TransferKind = "archive"
    else:
        datasets = restored_datasets(data.jobs, [*data.already_online, *data.already_in_flight])
        kind = "restore"
    jobs = ledger_jobs(data.jobs)
    if isinstance(data, RestoreRequested) and data.already_online:
        jobs += (already_online_job(data.request_id, data.already_online),)
    if isinstance(data, RestoreRequested) and data.already_in_flight:
        jobs += (in_flight_job(data.request_id, data.already_in_flight),)
    return NewRequest(
        request_id=data.request_id,
        kind=kind,
        owner=owner,
        source=source,
        datasets=datasets,
        jobs=jobs,
        notify=data.notify.model_dump(exclude_none=True) if data.notify is not None else None,
        left_out=tuple(f.model_dump() for f in data.left_out)
        if isinstance(data, RestoreRequested)
        else (),
    )


def accepted_request(accepted: ArchiveAccepted, *, owner: str | None) -> NewRequest:
    """The ledger entry of an instrument's archive request, from the icat-writer's
    ``archive.accepted`` (its jobs arrive with ``archive.registered``, just after)."""
    return NewRequest(
        request_id=accepted.request_id,
        kind="archive",
        owner=owner or accepted.owner,
        source="broker",
        datasets=tuple(accepted.datasets),
        jobs=(),
        notify=accepted.notify.model_dump(exclude_none=True) if accepted.notify else None,
        instrument=accepted.instrument,
    )


def restored_datasets(
    jobs: Sequence[PlannedJob], already_online: Sequence[PlannedTransfer] = ()
) -> tuple[dict[str, Any], ...]:
    """A restore's datasets by id, with their investigation and names where ICAT gave them
    (``RestoreItem.key``), as an archive's are shown, and how many of their datafiles (those
    already online included)."""
    by_id: dict[int, dict[str, Any]] = {}
    for transfer in [*(t for job in jobs for t in job.transfers), *already_online]:
        if not transfer.dataset_id:
            continue
        shown = by_id.setdefault(transfer.dataset_id, {"dataset_id": transfer.dataset_id})
        key = transfer.datafile
        if key is not None:
            shown.update(
                investigation=key.investigation, visit_id=key.visit_id, dataset=key.dataset
            )
        shown["datafiles"] = shown.get("datafiles", 0) + 1
    return tuple(by_id[dataset_id] for dataset_id in sorted(by_id))


@dataclass(frozen=True)
class JobSummary:
    job_id: str
    state: str
    files_done: int
    files_failed: int
    files_total: int
    bytes_done: int
    bytes_total: int


def summarise_job(
    job_id: str, job_state: str | None, files: Iterable[tuple[str, int | None]]
) -> JobSummary:
    """Counts over a job's files, given as (state, bytes); terminal failures count as failed."""
    counts: dict[str, tuple[int, int]] = {}
    for state, size in files:
        number, total = counts.get(state, (0, 0))
        counts[state] = (number + 1, total + (size or 0))
    return summarise_counts(job_id, job_state, counts)


def summarise_counts(
    job_id: str, job_state: str | None, counts: Mapping[str, tuple[int, int]]
) -> JobSummary:
    """``summarise_job`` from {file state: (files, bytes)}, as a store counts them."""
    done = failed = total = bytes_done = bytes_total = 0
    for state, (files, size) in counts.items():
        total += files
        bytes_total += size
        if state == FINISHED:
            done += files
            bytes_done += size
        elif state in (FAILED, CANCELED):
            failed += files
    states = [state for state, (files, _) in counts.items() if files]
    if job_state is None:
        shown = "PLANNED"
    elif normalise(job_state) in TERMINAL or not states:
        shown = normalise(job_state)
    else:
        # FTS's job state lags its files' by a poll at times: the files are the truth.
        shown = (
            aggregate_dataset_state(states)
            if all(s in TERMINAL for s in states)
            else normalise(job_state)
        )
    return JobSummary(job_id, shown, done, failed, total, bytes_done, bytes_total)


def request_state(job_states: Sequence[str], *, failed: bool) -> str:
    """FAILED when given up; SUBMITTED until every job is known to FTS; else its jobs'
    aggregated state (the earliest active one, or how they ended)."""
    if failed:
        return FAILED
    if not job_states or any(s == "PLANNED" for s in job_states):
        return SUBMITTED
    return aggregate_dataset_state(job_states)


def next_request_state(stored: str, computed: str, *, failed: bool) -> str:
    """The state to show and keep: a request never steps back, and a request given up is
    FAILED. SUBMITTED (accepted) comes before every job state, staging included."""
    if failed:
        return FAILED
    if stored == SUBMITTED:
        return computed
    return computed if may_advance(stored, computed) else stored


@dataclass(frozen=True)
class Waiting:
    """Inputs of ``waiting_on`` besides the job states."""

    kind: TransferKind
    registered: bool = False
    retry: str | None = field(default=None)


def waiting_on(state: str, job_states: Sequence[str], waiting: Waiting) -> str | None:
    """What the request waits for now, in words; None once it has ended."""
    if state in TERMINAL:
        return None
    if waiting.retry:
        return waiting.retry
    if not job_states or "PLANNED" in job_states:
        if waiting.kind == "archive" and not waiting.registered:
            return "registration in ICAT (checking the sources on the instrument data cache)"
        return "submission to FTS"
    return waiting_for(job_states)


def waiting_for(states: Collection[str]) -> str | None:
    """What jobs or files in these states wait for, in words, by the earliest active one."""
    for active, words in _WAITING_ON.items():
        if active in states:
            return words
    return None


# -- listing ------------------------------------------------------------------------------

#: Requests per page of a listing, unless asked otherwise, and at most.
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def investigations_of(datasets: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The names of the investigations a request's datasets belong to, each once, sorted:
    what a listing filtered by investigation matches (a restore's datasets name theirs when
    ICAT told us, see ``new_request``)."""
    return tuple(sorted({str(d["investigation"]) for d in datasets if d.get("investigation")}))


def listed_owner(user: str, admins: Collection[str], *, mine: bool) -> str | None:
    """Whose requests a listing shows: the caller's own, or everyone's (None) when an admin
    asks for all; anyone else asking for all still gets only their own."""
    return None if not mine and user in admins else user


@dataclass(frozen=True)
class Position:
    """Where a page of a listing ended, newest first: its last request."""

    created: float
    request_id: str


@dataclass(frozen=True)
class RequestQuery:
    """One page of a listing, newest first (by ``created``, then request id); every filter
    given must hold. ``since`` is inclusive, ``until`` exclusive (epoch seconds)."""

    owner: str | None
    kind: TransferKind | None = None
    states: tuple[str, ...] = ()
    investigation: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = PAGE_SIZE
    after: Position | None = None
