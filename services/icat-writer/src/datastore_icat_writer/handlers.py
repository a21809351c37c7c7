"""icat-writer: keep ICAT truthful about what was asked to be archived and how it went.

``register_archive`` writes an archive request's entities and "Archival" parameters before any
FTS job exists, then announces the jobs (``archive.registered``). ``record_transfer_status``
moves datafile states forward as FTS reports them and recomputes each dataset's state.

Both are idempotent: entities are got-or-created by ICAT's uniqueness keys, parameters are
only written when their value changes, and states never move backwards, so a redelivered
message changes nothing and publishes the same jobs (same deterministic ids) again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from datastore_common.domain.archival import (
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_FAILURE,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
    CatalogueDatafile,
    failure_text,
    join_job_ids,
    split_job_ids,
)
from datastore_common.domain.paths import archive_location
from datastore_common.domain.plan import is_real_checksum, plan_archive
from datastore_common.domain.states import (
    CANCELED,
    FAILED,
    FINISHED,
    FINISHEDDIRTY,
    SUBMITTED,
    aggregate_dataset_state,
    classify_failure,
    may_advance,
    normalise,
)
from datastore_common.errors import InvalidRequestError, PermanentError
from datastore_common.logging import get_logger
from datastore_common.messages import (
    ArchiveRegistered,
    ArchiveRequested,
    DatafileSpec,
    DatasetSpec,
    Envelope,
    FileState,
    InvestigationSpec,
    PlannedJob,
    PlannedTransfer,
    TransferStatus,
)
from datastore_common.ports import (
    Catalogue,
    NewDatafile,
    Publisher,
    Storage,
    StoredFile,
)
from datastore_common.settings import DatastoreSettings

log = get_logger(__name__)

#: A dataset in one of these states may be archived again by a new request; its files
#: already FINISHED (on tape) stay as they are and are not copied again.
REARCHIVABLE = frozenset({FAILED, CANCELED, FINISHEDDIRTY})
ALREADY_ON_TAPE = "already on tape from an earlier request: not copied again"
SOURCE_NOT_FOUND = "source not found on the instrument data cache"

FileKey = tuple[str, str, str, str]  # investigation, visitId, dataset, datafile


class PlanMismatchError(InvalidRequestError):
    """The jobs of an archive request do not cover exactly the datafiles it names."""


@dataclass
class _Outcome:
    """What registration decided per planned transfer (by file key)."""

    registered: dict[FileKey, PlannedTransfer] = field(default_factory=dict)
    dropped: dict[FileKey, FileState] = field(default_factory=dict)


def _key(investigation: InvestigationSpec, dataset: DatasetSpec, datafile: DatafileSpec) -> FileKey:
    return (investigation.name, investigation.visitId, dataset.name, datafile.name)


def _file_key(transfer: PlannedTransfer) -> FileKey:
    key = transfer.datafile
    if key is None:
        raise PlanMismatchError(f"transfer {transfer.source} names no datafile")
    return (key.investigation, key.visit_id, key.dataset, key.datafile)


def planned_jobs(data: object, settings: DatastoreSettings) -> list[PlannedJob] | None:
    """The jobs of an archive request, planned here when it came without (for giving up)."""
    return _plan(data, settings) if isinstance(data, ArchiveRequested) else None


def _plan(request: ArchiveRequested, settings: DatastoreSettings) -> list[PlannedJob]:
    if request.jobs:
        return request.jobs
    if not settings.fts3.vo:
        raise PermanentError(
            "archive request without jobs, and fts3.vo is not configured: the icat-writer "
            "cannot name FTS jobs (set fts3.vo / DATASTORE__FTS3__VO)"
        )
    return plan_archive(
        request.request_id,
        request.investigations,
        instrument_data_cache=settings.instrument_data_cache,
        tape_archive=settings.tape_archive,
        tape_root_dir=settings.tape_root_dir,
        vo=settings.fts3.vo,
        max_files_per_job=settings.fts3.max_files_per_job,
    )


def _transfers_by_key(
    request: ArchiveRequested, jobs: Sequence[PlannedJob]
) -> dict[FileKey, tuple[str, PlannedTransfer]]:
    """(job id, transfer) of every datafile the request names; PlanMismatchError otherwise."""
    planned: dict[FileKey, tuple[str, PlannedTransfer]] = {}
    for job in jobs:
        if job.kind != "archive":
            raise PlanMismatchError(f"job {job.job_id} is a {job.kind} job in an archive request")
        for transfer in job.transfers:
            file_key = _file_key(transfer)
            if file_key in planned:
                raise PlanMismatchError(f"datafile {'/'.join(file_key)} planned twice")
            planned[file_key] = (job.job_id, transfer)
    named = {
        _key(inv, ds, df)
        for inv in request.investigations
        for ds in inv.datasets
        for df in ds.datafiles
    }
    if named != set(planned):
        missing = sorted("/".join(k) for k in named - set(planned))[:5]
        extra = sorted("/".join(k) for k in set(planned) - named)[:5]
        raise PlanMismatchError(
            f"jobs do not match the request's datafiles (unplanned: {missing}, unknown: {extra})"
        )
    return planned


async def register_archive(
    envelope: Envelope[ArchiveRequested],
    *,
    catalogue: Catalogue,
    storage: Storage,
    publisher: Publisher,
    settings: DatastoreSettings,
) -> None:
    """Register an archive request in ICAT, then publish ``archive.registered``."""
    request = envelope.data
    jobs = _plan(request, settings)
    planned = _transfers_by_key(request, jobs)
    request_job_ids = {job.job_id for job in jobs}
    endpoint = str(settings.fts3.endpoint)
    described = await storage.describe_many([transfer.source for _, transfer in planned.values()])

    outcome = _Outcome()
    for investigation in request.investigations:
        await _register_investigation(
            investigation,
            planned=planned,
            described=described,
            request_job_ids=request_job_ids,
            endpoint=endpoint,
            catalogue=catalogue,
            outcome=outcome,
        )

    registered_jobs, statuses = _split_jobs(request.request_id, jobs, outcome, endpoint)
    for status in statuses:
        await publisher.publish(status, correlation_id=envelope.correlation_id, user=envelope.user)
    if registered_jobs:
        await publisher.publish(
            ArchiveRegistered(request_id=request.request_id, jobs=registered_jobs),
            correlation_id=envelope.correlation_id,
            user=envelope.user,
        )
    log.info(
        "archive_registered",
        request_id=request.request_id,
        jobs=[job.job_id for job in registered_jobs],
        datafiles=len(outcome.registered),
        dropped=len(outcome.dropped),
    )


async def _register_investigation(
    investigation: InvestigationSpec,
    *,
    planned: Mapping[FileKey, tuple[str, PlannedTransfer]],
    described: Mapping[str, StoredFile | None],
    request_job_ids: set[str],
    endpoint: str,
    catalogue: Catalogue,
    outcome: _Outcome,
) -> None:
    investigation_id = await catalogue.ensure_investigation(investigation)
    datasets = await catalogue.ensure_datasets(investigation_id, investigation.datasets)
    registered_dataset_ids: list[int] = []
    for dataset in investigation.datasets:
        record = datasets[dataset.name]
        keys = [_key(investigation, dataset, datafile) for datafile in dataset.datafiles]
        state = record.archival.get(ARCHIVAL_STATE)
        recorded_ids = split_job_ids(record.archival.get(ARCHIVAL_IDS))
        # Job ids are deterministic per request: ids all from this request's plan mean that
        # this message was delivered before (carry on), other ids mean another request owns it.
        ours = bool(recorded_ids) and set(recorded_ids) <= request_job_ids
        refused = state is not None and normalise(state) not in REARCHIVABLE and not ours
        if not refused and state is None and not recorded_ids:
            # A first archive: claim the dataset atomically, so that of two requests
            # archiving it at once (two instruments, a client's retry) exactly one goes on.
            dataset_job_ids = sorted({planned[k][0] for k in keys})
            holder = await catalogue.claim_dataset(record.dataset_id, join_job_ids(dataset_job_ids))
            if holder is not None and not set(split_job_ids(holder)) <= request_job_ids:
                refused, state, recorded_ids = True, SUBMITTED, split_job_ids(holder)
        if refused:
            reason = (
                f"dataset {investigation.name}-{investigation.visitId}/{dataset.name} is already "
                f"archived or being archived (state {state}, jobs {', '.join(recorded_ids) or '-'})"
                ": not archived again"
            )
            log.warning("dataset_already_archived", dataset_id=record.dataset_id, state=state)
            for key in keys:
                _, transfer = planned[key]
                outcome.dropped[key] = FileState(
                    source=transfer.source,
                    destination=transfer.destination,
                    state=FAILED,
                    reason=reason,
                    failure_class="user",
                )
            continue

        new_files = []
        for datafile, key in zip(dataset.datafiles, keys, strict=True):
            stored = described[planned[key][1].source]
            new_files.append(
                NewDatafile(
                    spec=datafile,
                    location=archive_location(investigation, dataset, datafile),
                    file_size=datafile.fileSize or (stored.size if stored else None),
                    checksum=datafile.checksum
                    if is_real_checksum(datafile.checksum)
                    else (stored.checksum if stored else None),
                )
            )
        records = await catalogue.ensure_datafiles(record.dataset_id, new_files)

        file_values: dict[int, dict[str, str | None]] = {}
        final_states: list[str] = []
        dataset_jobs: list[str] = []
        for datafile, key, new in zip(dataset.datafiles, keys, new_files, strict=True):
            job_id, transfer = planned[key]
            catalogued = records[datafile.name]
            wanted: dict[str, str | None]
            if not ours and catalogued.archival.get(ARCHIVAL_STATE) == FINISHED:
                wanted = {}
                outcome.dropped[key] = FileState(
                    source=transfer.source,
                    destination=transfer.destination,
                    datafile_id=catalogued.datafile_id,
                    dataset_id=record.dataset_id,
                    state=FINISHED,
                    reason=ALREADY_ON_TAPE,
                )
            elif described[transfer.source] is None:
                reason = f"{SOURCE_NOT_FOUND}: {transfer.source}"
                wanted = {
                    ARCHIVAL_STATE: FAILED,
                    ARCHIVAL_FAILURE: failure_text(classify_failure(reason), reason),
                }
                outcome.dropped[key] = FileState(
                    source=transfer.source,
                    destination=transfer.destination,
                    datafile_id=catalogued.datafile_id,
                    dataset_id=record.dataset_id,
                    state=FAILED,
                    reason=reason,
                    failure_class="user",
                )
            else:
                wanted = {
                    ARCHIVAL_STATE: SUBMITTED,
                    ARCHIVAL_IDS: job_id,
                    ARCHIVAL_ENDPOINT: endpoint,
                    ARCHIVAL_FAILURE: None,
                }
                dataset_jobs.append(job_id)
                outcome.registered[key] = transfer.model_copy(
                    update={
                        "datafile_id": catalogued.datafile_id,
                        "dataset_id": record.dataset_id,
                        "checksum": new.checksum,
                        "filesize": new.file_size,
                    }
                )
            if ours:
                wanted = _fill_gaps(catalogued.archival, wanted)
            file_values[catalogued.datafile_id] = wanted
            final_states.append(
                wanted.get(ARCHIVAL_STATE) or catalogued.archival.get(ARCHIVAL_STATE) or SUBMITTED
            )
        await catalogue.set_archival("Datafile", file_values)

        dataset_values: dict[str, str | None] = {
            ARCHIVAL_STATE: aggregate_dataset_state(final_states),
            ARCHIVAL_ENDPOINT: endpoint,
        }
        if dataset_jobs:
            dataset_values[ARCHIVAL_IDS] = join_job_ids(dataset_jobs)
        if ours:
            dataset_values = _fill_gaps(record.archival, dataset_values)
        await catalogue.set_archival("Dataset", {record.dataset_id: dataset_values})
        registered_dataset_ids.append(record.dataset_id)
    if registered_dataset_ids:
        await catalogue.update_totals(registered_dataset_ids)


def _fill_gaps(
    current: Mapping[str, str], wanted: Mapping[str, str | None]
) -> dict[str, str | None]:
    """On redelivery only write what an interrupted first delivery left missing: the states
    recorded since (ACTIVE, FINISHED...) must not go back to SUBMITTED."""
    return {
        name: value for name, value in wanted.items() if value is not None and name not in current
    }


def _split_jobs(
    request_id: str,
    jobs: Sequence[PlannedJob],
    outcome: _Outcome,
    endpoint: str,
) -> tuple[list[PlannedJob], list[TransferStatus]]:
    """Jobs with the registered transfers only, and a status event for every job that lost
    transfers (FAILED when nothing is left of it)."""
    registered_jobs: list[PlannedJob] = []
    statuses: list[TransferStatus] = []
    for job in jobs:
        keys = [_file_key(t) for t in job.transfers]
        kept = [outcome.registered[k] for k in keys if k in outcome.registered]
        dropped = [outcome.dropped[k] for k in keys if k in outcome.dropped]
        if kept:
            registered_jobs.append(job.model_copy(update={"transfers": kept}))
        if dropped:
            # A job left without files ends as its files did: FINISHED when all were on tape
            # already, FAILED when none could be archived, FINISHEDDIRTY for a mix.
            ended = aggregate_dataset_state([f.state for f in dropped])
            failures = [f for f in dropped if f.state == FAILED]
            statuses.append(
                TransferStatus(
                    request_id=request_id,
                    kind="archive",
                    job_id=job.job_id,
                    fts_endpoint=endpoint,
                    job_state=SUBMITTED if kept else ended,
                    reason=f"no file of this job can be archived: {failures[0].reason}"
                    if failures and not kept
                    else None,
                    files=dropped,
                )
            )
    return registered_jobs, statuses


async def record_transfer_status(
    envelope: Envelope[TransferStatus], *, catalogue: Catalogue
) -> None:
    """Move datafile states forward as FTS reports them; recompute the datasets' states."""
    status = envelope.data
    if status.kind != "archive":
        return  # restores change no ICAT metadata
    reported = await _with_datafile_ids(status.files, catalogue)
    if not reported:
        return
    current = {
        d.datafile_id: d
        for d in await catalogue.datafiles_by_id(
            sorted({f.datafile_id for f in reported if f.datafile_id})
        )
    }
    states = {i: d.archival.get(ARCHIVAL_STATE) for i, d in current.items()}
    updates: dict[int, dict[str, str | None]] = {}
    for file in reported:
        assert file.datafile_id is not None
        if file.datafile_id not in current:
            log.warning(
                "transfer_status_unknown_datafile",
                datafile_id=file.datafile_id,
                job_id=status.job_id,
            )
            continue
        recorded_job = current[file.datafile_id].archival.get(ARCHIVAL_IDS)
        if recorded_job is not None and status.job_id not in split_job_ids(recorded_job):
            continue  # a late event of an earlier attempt: the file is another job's now
        new_state = normalise(file.state)
        if not may_advance(states[file.datafile_id], new_state):
            continue  # stale or duplicate: terminal states are final, no step back
        states[file.datafile_id] = new_state
        values: dict[str, str | None] = {ARCHIVAL_STATE: new_state}
        if new_state == FAILED:
            reason = file.reason or status.reason or "FTS gave no reason"
            values[ARCHIVAL_FAILURE] = failure_text(
                file.failure_class or classify_failure(reason), reason
            )
        updates.setdefault(file.datafile_id, {}).update(values)
    if updates:
        await catalogue.set_archival("Datafile", updates)
    # Datasets are recomputed even when no file moved: a first delivery may have stopped
    # between writing its files and its datasets.
    touched = sorted({current[i].dataset_id for i in current})
    changed = await _recompute_datasets(catalogue, touched)
    if changed:
        await catalogue.update_totals(changed)
    log.info(
        "transfer_status_recorded",
        job_id=status.job_id,
        job_state=status.job_state,
        datafiles_moved=len(updates),
        datasets_changed=changed,
    )


async def _with_datafile_ids(files: Sequence[FileState], catalogue: Catalogue) -> list[FileState]:
    """The files with an ICAT id: those reported by key only (a request given up during
    registration) get theirs where the datafile exists; the others are not in ICAT."""
    keys = [f.datafile for f in files if f.datafile_id is None and f.datafile is not None]
    found = await catalogue.find_datafiles(keys) if keys else {}
    with_ids: list[FileState] = []
    for file in files:
        if file.datafile_id is None and file.datafile in found:
            file = file.model_copy(update={"datafile_id": found[file.datafile]})
        if file.datafile_id is not None:
            with_ids.append(file)
    return with_ids


async def _recompute_datasets(catalogue: Catalogue, dataset_ids: Sequence[int]) -> list[int]:
    """Write each dataset's aggregated state when it moves forward; the ids that changed.

    A second pass re-reads the files after writing: a replica recording another job of the
    same dataset at the same moment may have read older file states than ours.
    """
    changed: list[int] = []
    for _ in range(2):
        files, dataset_rows = await asyncio.gather(
            catalogue.datafiles_of(dataset_ids), catalogue.datasets_by_id(dataset_ids)
        )
        datasets = {d.dataset_id: d for d in dataset_rows}
        writes: dict[int, dict[str, str | None]] = {}
        for dataset_id, dataset in datasets.items():
            file_states = _file_states(files, dataset_id)
            if not file_states:
                continue  # none of its files is being archived by us
            new_state = aggregate_dataset_state(file_states)
            old_state = dataset.archival.get(ARCHIVAL_STATE)
            if old_state != new_state and may_advance(old_state, new_state):
                writes[dataset_id] = {ARCHIVAL_STATE: new_state}
        if not writes:
            break
        await catalogue.set_archival("Dataset", writes)
        changed += [i for i in writes if i not in changed]
    return changed


def _file_states(files: Sequence[CatalogueDatafile], dataset_id: int) -> list[str]:
    return [
        state
        for f in files
        if f.dataset_id == dataset_id and (state := f.archival.get(ARCHIVAL_STATE)) is not None
    ]
