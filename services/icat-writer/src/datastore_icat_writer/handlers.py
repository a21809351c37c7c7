"""icat-writer: keep ICAT truthful about what was asked to be archived and how it went.

``register_archive`` writes an archive request's entities and "Archival" parameters before any
FTS job exists, then announces the jobs (``archive.registered``). ``record_transfer_status``
moves datafile states forward as FTS reports them and recomputes each dataset's state.

Both are idempotent: entities are got-or-created by ICAT's uniqueness keys, parameters are
only written when their value changes, and states never move backwards, so a redelivered
message changes nothing and publishes the same jobs (same deterministic ids) again.

What to write is decided by the pure functions of ``domain.registration``; the handlers here
only read ICAT and the instrument data cache, call them, and write and publish what they say.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datastore_common.domain import claims, control, progress, registration, trust
from datastore_common.domain.answers import TooLargeError, check_size
from datastore_common.domain.archival import (
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
    CatalogueDatafile,
    CatalogueDataset,
    split_job_ids,
)
from datastore_common.domain.plan import plan_archive
from datastore_common.domain.states import aggregate_dataset_state
from datastore_common.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermanentError,
)
from datastore_common.logging import get_logger
from datastore_common.messages import (
    ArchivalStateSet,
    ArchiveRegistered,
    ArchiveRequested,
    ArchiveRetryRequested,
    DatasetSpec,
    Envelope,
    FileState,
    InvestigationSpec,
    PlannedJob,
    RejectionClass,
    TransferStatus,
)
from datastore_common.ports import (
    Catalogue,
    NewDatafile,
    Publisher,
    Storage,
    StoredFile,
    Vocabulary,
    terms_of,
    unknown_names_text,
)
from datastore_common.settings import DatastoreSettings
from datastore_icat_writer import answers

log = get_logger(__name__)


def planned_jobs(data: object, settings: DatastoreSettings) -> list[PlannedJob] | None:
    """The jobs to report FAILED when an archive request is given up: our own plan when this
    worker can name its jobs (``fts3.vo``), so that a forged plan is never reported as the
    request's; else the message's own jobs (or ours, for a request that came without)."""
    if not isinstance(data, ArchiveRequested):
        return None
    if settings.fts3.vo or not data.jobs:
        return _own_plan(data, settings)
    return data.jobs


def _own_plan(
    request: ArchiveRequested, settings: DatastoreSettings, vo: str | None = None
) -> list[PlannedJob]:
    """The plan the gateway makes of ``request``, with this worker's settings (and ``vo``
    for ``fts3.vo``)."""
    vo = vo or settings.fts3.vo
    if not vo:
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
        vo=vo,
        max_files_per_job=settings.fts3.max_files_per_job,
    )


#: Stands in for the VO when the icat-writer does not know it: the jobs are then compared
#: with our plan in everything but their FTS ids (which the fts-submitter checks against
#: FTS's own before anything is tracked).
UNKNOWN_VO = "unknown-vo"


def _plan(request: ArchiveRequested, settings: DatastoreSettings) -> list[PlannedJob]:
    """The request's jobs, planned here when it came without (an instrument may leave them
    out); jobs it carries must be exactly our own plan of it (``trust.check_archive_plan``):
    the broker does not vouch for what is published on it."""
    if not request.jobs:
        return _own_plan(request, settings)
    own = _own_plan(request, settings, settings.fts3.vo or UNKNOWN_VO)
    trust.check_archive_plan(own, request.jobs, check_job_ids=bool(settings.fts3.vo))
    return request.jobs


def _archive_roots(settings: DatastoreSettings) -> trust.ArchiveRoots:
    return trust.ArchiveRoots(
        instrument_data_cache=settings.instrument_data_cache,
        tape_archive=settings.tape_archive,
        tape_root_dir=settings.tape_root_dir,
    )


async def register_archive(
    envelope: Envelope[ArchiveRequested],
    *,
    catalogue: Catalogue,
    storage: Storage,
    publisher: Publisher,
    settings: DatastoreSettings,
    vocabulary: Vocabulary | None = None,
) -> None:
    """Register an archive request in ICAT, then publish ``archive.registered``.

    An instrument's request (published straight to the broker) is answered too
    (``answers``): rejected, with nothing written, when it is too large, names what ICAT
    does not know (asked of ``vocabulary``), carries a plan not ours, or every dataset it
    names is another request's; else accepted once registered, before its jobs go on."""
    instrument = answers.instrument_of(settings, envelope.source)
    if instrument is not None:
        await _register_for_instrument(
            envelope,
            instrument,
            catalogue=catalogue,
            storage=storage,
            publisher=publisher,
            settings=settings,
            vocabulary=vocabulary,
        )
        return
    jobs = _plan(envelope.data, settings)
    announcement = await _register(envelope.data, jobs, catalogue, storage, settings)
    await _announce(envelope, announcement.announcement, publisher)


async def _register_for_instrument(
    envelope: Envelope[ArchiveRequested],
    instrument: str,
    *,
    catalogue: Catalogue,
    storage: Storage,
    publisher: Publisher,
    settings: DatastoreSettings,
    vocabulary: Vocabulary | None,
) -> None:
    request = envelope.data
    limits = settings.gateway
    refusal: tuple[RejectionClass, str] | None = None
    try:
        check_size(
            request.investigations,
            max_datafiles=limits.max_datafiles_per_request,
            max_bytes=limits.max_bytes_per_request,
        )
    except TooLargeError as exc:
        refusal = ("too_large", str(exc))
    if refusal is None and vocabulary is not None:
        # Asked before anything is written; ICAT not answering is retried like any step.
        unknown = await vocabulary.unknown(terms_of(request.investigations))
        named = unknown_names_text(unknown, vocabulary.facility)
        if named:
            refusal = ("unknown_names", named)
    jobs: list[PlannedJob] = []
    if refusal is None:
        try:
            jobs = _plan(request, settings)
        except trust.UntrustedMessageError as exc:
            refusal = ("untrusted_plan", str(exc))
    if refusal is not None:
        await answers.reject_request(publisher, envelope, instrument, *refusal)
        return
    registered = await _register(request, jobs, catalogue, storage, settings)
    if registered.datasets and all(r.refused for r in registered.datasets):
        # Nothing of it was written: another request holds every dataset it names.
        reasons = [f.reason for s in registered.announcement.statuses for f in s.files if f.reason]
        await answers.reject_request(
            publisher,
            envelope,
            instrument,
            "duplicate_in_flight",
            reasons[0] if reasons else "another request holds every dataset it names",
        )
        return
    await answers.accept(publisher, envelope, instrument, [job.job_id for job in jobs], settings)
    await _announce(envelope, registered.announcement, publisher)


@dataclass(frozen=True)
class _Registered:
    announcement: registration.Announcement
    datasets: list[registration.DatasetRegistration]


async def _register(
    request: ArchiveRequested,
    jobs: list[PlannedJob],
    catalogue: Catalogue,
    storage: Storage,
    settings: DatastoreSettings,
) -> _Registered:
    """Write the request's entities and "Archival" parameters; what to publish of it."""
    endpoint = str(settings.fts3.endpoint)
    plan = registration.check_plan(request, jobs, endpoint=endpoint)
    described = await storage.describe_many(plan.sources)
    registered: list[registration.DatasetRegistration] = []
    for investigation in request.investigations:
        registered += await _register_investigation(investigation, plan, described, catalogue)
    return _Registered(registration.announce(plan, registered), registered)


async def _announce(
    envelope: Envelope[ArchiveRequested],
    announcement: registration.Announcement,
    publisher: Publisher,
) -> None:
    """Publish the states of files left out, then ``archive.registered`` for the rest."""
    request = envelope.data
    for status in announcement.statuses:
        await publisher.publish(status, correlation_id=envelope.correlation_id, user=envelope.user)
    if announcement.jobs:
        await publisher.publish(
            ArchiveRegistered(request_id=request.request_id, jobs=announcement.jobs),
            correlation_id=envelope.correlation_id,
            user=envelope.user,
        )
    log.info(
        "archive_registered",
        request_id=request.request_id,
        jobs=[job.job_id for job in announcement.jobs],
        datafiles=announcement.registered,
        dropped=announcement.dropped,
    )


async def _register_investigation(
    investigation: InvestigationSpec,
    plan: registration.Plan,
    described: Mapping[str, StoredFile | None],
    catalogue: Catalogue,
) -> list[registration.DatasetRegistration]:
    investigation_id = await catalogue.ensure_investigation(investigation)
    records = await catalogue.ensure_datasets(investigation_id, investigation.datasets)
    registered = [
        await _register_dataset(
            investigation, dataset, records[dataset.name], plan, described, catalogue
        )
        for dataset in investigation.datasets
    ]
    written = [r.dataset_id for r in registered if not r.refused]
    if written:
        await catalogue.update_totals(written)
    return registered


async def _register_dataset(
    investigation: InvestigationSpec,
    dataset: DatasetSpec,
    record: CatalogueDataset,
    plan: registration.Plan,
    described: Mapping[str, StoredFile | None],
    catalogue: Catalogue,
) -> registration.DatasetRegistration:
    files = registration.files_of(plan, investigation, dataset, described)
    standing = claims.standing(record.archival, plan.job_ids)
    if standing.action == "claim":
        # Atomic in ICAT: of two requests archiving a dataset at once, exactly one goes on.
        holder = await catalogue.claim_dataset(
            record.dataset_id,
            claims.claim_ids(f.job_id for f in files),
            replacing=standing.replacing,
        )
        standing = claims.after_claim(holder, plan.job_ids)
    if standing.action == "refuse":
        log.warning("dataset_already_archived", dataset_id=record.dataset_id, state=standing.state)
        return registration.refuse(
            investigation, dataset, files, standing, dataset_id=record.dataset_id
        )

    recorded = await catalogue.ensure_datafiles(
        record.dataset_id,
        [NewDatafile(f.spec, f.location, f.file_size, f.checksum) for f in files],
    )
    result = registration.register_files(
        files, recorded, record, ours=standing.ours, endpoint=plan.endpoint
    )
    await catalogue.set_archival("Datafile", result.file_values)
    await catalogue.set_archival("Dataset", {record.dataset_id: result.dataset_values})
    return result


async def retry_archive(
    envelope: Envelope[ArchiveRetryRequested],
    *,
    catalogue: Catalogue,
    storage: Storage,
    publisher: Publisher,
    settings: DatastoreSettings,
) -> None:
    """Archive again the datafiles FAILED or CANCELED of a dataset whose archive ended: claim
    the dataset for the retry's jobs (atomically, as any archive), record its files SUBMITTED
    in them, then publish ``archive.registered`` so the fts-submitter sends them.

    A redelivery finds the dataset claimed with its own (deterministic) job ids and only
    fills what the first delivery left undone; a retry that ICAT no longer allows (the
    dataset in flight again, FINISHED, the files changed) is refused (ConflictError: the
    request ends FAILED with the reason, nothing in ICAT changes)."""
    retry = envelope.data
    name = f"dataset {retry.dataset_id}"
    datasets = await catalogue.datasets_by_id([retry.dataset_id])
    if not datasets:
        raise NotFoundError(f"cannot retry: no {name} in ICAT")
    [dataset] = datasets
    files = await catalogue.datafiles_of([retry.dataset_id])
    wanted = set(retry.datafile_ids)
    chosen = [f for f in files if f.datafile_id in wanted]
    missing = sorted(wanted - {f.datafile_id for f in chosen})
    if missing:
        raise NotFoundError(f"cannot retry: datafiles {missing} are not in {name}")
    if not settings.fts3.vo:
        raise PermanentError("fts3.vo is not configured: cannot name the retry's FTS jobs")
    jobs = control.plan_retry(
        retry.request_id,
        chosen,
        instrument_data_cache=settings.instrument_data_cache,
        tape_archive=settings.tape_archive,
        tape_root_dir=settings.tape_root_dir,
        vo=settings.fts3.vo,
        max_files_per_job=settings.fts3.max_files_per_job,
    )
    jobs = await _with_sources_described(jobs, storage)
    job_ids = [job.job_id for job in jobs]
    endpoint = str(settings.fts3.endpoint)
    values = control.retry_values(jobs, endpoint=endpoint)
    standing = claims.standing(dataset.archival, job_ids)
    if not standing.ours:
        decision = control.retry_decision(
            {f.datafile_id: f.archival.get(ARCHIVAL_STATE) for f in files}, name
        )
        changed = sorted(wanted - set(decision.datafile_ids))
        if decision.refused or changed:
            why = decision.reason or f"datafiles {changed} are no longer FAILED or CANCELED"
            raise ConflictError(f"retry refused: {why}")
        if standing.action == "claim":
            holder = await catalogue.claim_dataset(
                retry.dataset_id, claims.claim_ids(job_ids), replacing=standing.replacing
            )
            standing = claims.after_claim(holder, job_ids)
        if standing.action == "refuse":
            raise ConflictError(
                f"retry refused: {name} is {standing.state}, held by jobs "
                f"{', '.join(standing.job_ids) or '(being claimed)'}"
            )
    else:
        # Redelivered: states recorded since (ACTIVE, FINISHED...) must not go back.
        current = {f.datafile_id: f.archival for f in chosen}
        values = {
            i: dict(registration.fill_gaps(current[i], v))
            if split_job_ids(current[i].get(ARCHIVAL_IDS)) == [v[ARCHIVAL_IDS]]
            else v
            for i, v in values.items()
        }
    await catalogue.set_archival("Datafile", values)
    # The dataset's state over all its files as they now stand: SUBMITTED while the retried
    # ones are in flight, and on a late redelivery whatever they reached since.
    states = [
        values.get(f.datafile_id, {}).get(ARCHIVAL_STATE) or f.archival.get(ARCHIVAL_STATE)
        for f in files
    ]
    dataset_values: dict[str, str | None] = {
        ARCHIVAL_STATE: aggregate_dataset_state(s for s in states if s is not None),
        ARCHIVAL_ENDPOINT: endpoint,
    }
    await catalogue.set_archival("Dataset", {retry.dataset_id: dataset_values})
    await publisher.publish(
        ArchiveRegistered(request_id=retry.request_id, jobs=jobs),
        correlation_id=envelope.correlation_id,
        user=envelope.user,
    )
    log.info(
        "archive_retry_registered",
        request_id=retry.request_id,
        dataset_id=retry.dataset_id,
        jobs=job_ids,
        datafiles=len(values),
        redelivered=standing.ours,
    )


async def _with_sources_described(jobs: Sequence[PlannedJob], storage: Storage) -> list[PlannedJob]:
    """The jobs with each transfer's size and checksum as the instrument data cache has them
    now; InvalidRequestError naming the sources it does not have."""
    sources = [t.source for job in jobs for t in job.transfers]
    described = await storage.describe_many(sources)
    missing = [source for source in sources if described.get(source) is None]
    if missing:
        raise InvalidRequestError(
            f"cannot retry: {registration.SOURCE_NOT_FOUND}: {', '.join(missing[:20])}"
            + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        )
    return [
        job.model_copy(
            update={
                "transfers": [
                    t.model_copy(update={"checksum": found.checksum, "filesize": found.size})
                    for t in job.transfers
                    if (found := described[t.source]) is not None
                ]
            }
        )
        for job in jobs
    ]


async def set_archival_state(envelope: Envelope[ArchivalStateSet], *, catalogue: Catalogue) -> None:
    """Write the state an admin set by hand on the dataset (and every datafile of it, when
    asked), with who and why in "Archival failure" and the deletion date; the gateway has
    kept the audit trail. Setting a value again writes nothing, so a redelivery is harmless.
    Runs on the status queue: never at the same time as a status being recorded."""
    change = envelope.data
    if not await catalogue.datasets_by_id([change.dataset_id]):
        raise NotFoundError(f"cannot set the state of dataset {change.dataset_id}: not in ICAT")
    dataset_values, datafile_values = control.state_set_values(
        change.state, change.reason, set_by=change.set_by, deletion_date=change.deletion_date
    )
    written = 0
    if change.datafiles:
        files = await catalogue.datafiles_of([change.dataset_id])
        if files:
            written += await catalogue.set_archival(
                "Datafile", {f.datafile_id: datafile_values for f in files}
            )
    written += await catalogue.set_archival("Dataset", {change.dataset_id: dataset_values})
    log.warning(
        "archival_state_set_by_hand",
        change_id=change.change_id,
        dataset_id=change.dataset_id,
        state=change.state,
        datafiles=change.datafiles,
        set_by=change.set_by,
        reason=change.reason,
        written=written,
    )


async def record_transfer_status(
    envelope: Envelope[TransferStatus], *, catalogue: Catalogue, settings: DatastoreSettings
) -> None:
    """Move datafile states forward as FTS reports them; recompute the datasets' states.

    Only what a status of ours could say is recorded (``trust.check_status``): a job the
    datafile's dataset does not record, or URLs that are not the datafile's, are refused
    (UntrustedMessageError) before anything is written."""
    status = envelope.data
    if status.kind != "archive":
        return  # restores change no ICAT metadata
    reported = await _with_datafile_ids(status.files, catalogue)
    if not reported:
        return
    current = {
        d.datafile_id: d for d in await catalogue.datafiles_by_id(progress.datafile_ids(reported))
    }
    moved = progress.progress(status, reported, current)
    await _check_status(status, reported, current, moved, catalogue, settings)
    for datafile_id in moved.unknown:
        log.warning(
            "transfer_status_unknown_datafile", datafile_id=datafile_id, job_id=status.job_id
        )
    if moved.updates:
        await catalogue.set_archival("Datafile", moved.updates)
    # Datasets are recomputed even when no file moved: a first delivery may have stopped
    # between writing its files and its datasets.
    touched = sorted({d.dataset_id for d in current.values()})
    changed = await _recompute_datasets(catalogue, touched)
    if changed:
        await catalogue.update_totals(changed)
    log.info(
        "transfer_status_recorded",
        job_id=status.job_id,
        job_state=status.job_state,
        datafiles_moved=len(moved.updates),
        datasets_changed=changed,
    )


async def _check_status(
    status: TransferStatus,
    reported: Sequence[FileState],
    current: Mapping[int, CatalogueDatafile],
    moved: progress.Progress,
    catalogue: Catalogue,
    settings: DatastoreSettings,
) -> None:
    dataset_of = {i: d.dataset_id for i, d in current.items()}
    datasets = await catalogue.datasets_by_id(sorted({d.dataset_id for d in current.values()}))
    trust.check_status(
        status,
        [f for f in reported if f.datafile_id in current],
        {i: d.location for i, d in current.items()},
        dataset_of,
        {d.dataset_id: d.archival.get(ARCHIVAL_IDS) for d in datasets},
        sorted(moved.updates),
        roots=_archive_roots(settings),
    )


async def _with_datafile_ids(files: Sequence[FileState], catalogue: Catalogue) -> list[FileState]:
    """The files with an ICAT id: those reported by key only (a request given up during
    registration) get theirs where the datafile exists; the others are not in ICAT."""
    keys = progress.lookup_keys(files)
    found = await catalogue.find_datafiles(keys) if keys else {}
    return progress.identified(files, found)


async def _recompute_datasets(catalogue: Catalogue, dataset_ids: Sequence[int]) -> list[int]:
    """Write each dataset's aggregated state when it moves forward; the ids that changed.

    A second pass re-reads the files after writing: a replica recording another job of the
    same dataset at the same moment may have read older file states than ours.
    """
    changed: list[int] = []
    for _ in range(2):
        files, datasets = await asyncio.gather(
            catalogue.datafiles_of(dataset_ids), catalogue.datasets_by_id(dataset_ids)
        )
        writes = progress.dataset_writes(files, datasets)
        if not writes:
            break
        await catalogue.set_archival("Dataset", writes)
        changed += [i for i in writes if i not in changed]
    return changed
