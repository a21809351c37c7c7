"""status-poller: follow active FTS jobs, publish what changed, keep the rest in the delay queue.

No database: every active job is one message travelling poll queue -> ``poll_batch`` -> delay
queue (TTL = poll interval) -> poll queue, carrying the states last published for it
(``TransferTracked``). A batch costs one bulk FTS status request (≤ 100 ids), so the work grows
with the number of active jobs, never with everything ever archived.

Order of effects: publish every change, then re-queue every job still active; the bus acks the
batch only when ``poll_batch`` returns. A crash in between redelivers the batch, which at worst
publishes a change twice (stale and duplicate events are ignored downstream).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datastore_common.domain.archival import ArchivalJob
from datastore_common.domain.paths import archive_urls
from datastore_common.domain.states import FAILED, classify_failure, is_terminal, normalise
from datastore_common.errors import (
    AuthenticationError,
    ForbiddenError,
    PermanentError,
    TransientError,
)
from datastore_common.logging import get_logger
from datastore_common.messages import (
    Envelope,
    FileState,
    PlannedTransfer,
    TransferStatus,
    TransferSubmitted,
    TransferTracked,
    job_failed,
)
from datastore_common.metrics import POLL_BATCHES, POLL_LAST_SUCCESS
from datastore_common.ports import (
    Catalogue,
    FileProgress,
    JobProgress,
    Publisher,
    TransferService,
)
from datastore_common.settings import DatastoreSettings
from datastore_status_poller.ports import Requeue

log = get_logger(__name__)

#: Polls a job may go unanswered by FTS (``None``) before it is declared FAILED.
UNKNOWN_GRACE_POLLS = 3


@dataclass(frozen=True)
class Observation:
    """What one poll of one job leads to: an event to publish, a job to poll again."""

    publish: TransferStatus | None
    poll_again: TransferTracked | None


def track(data: TransferSubmitted | TransferTracked) -> TransferTracked:
    """A freshly submitted job starts being tracked with nothing published yet."""
    if isinstance(data, TransferTracked):
        return data
    return TransferTracked(
        request_id=data.request_id,
        kind=data.kind,
        job_id=data.job_id,
        fts_endpoint=data.fts_endpoint,
        transfers=data.transfers,
    )


def file_state(file: FileProgress, planned: PlannedTransfer | None) -> FileState:
    """A file's state as published, with its ICAT ids from the plan (or FTS's metadata)."""
    metadata: Mapping[str, Any] = file.metadata or {}
    datafile_id = planned.datafile_id if planned else _opt_int(metadata.get("datafile_id"))
    dataset_id = planned.dataset_id if planned else _opt_int(metadata.get("dataset_id"))
    failed = normalise(file.state) == FAILED
    return FileState(
        source=planned.source if planned else file.source,
        destination=file.destination,
        datafile_id=datafile_id,
        dataset_id=dataset_id,
        state=file.state,
        reason=file.reason,
        failure_class=classify_failure(file.reason) if failed else None,
    )


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def observe(
    tracked: TransferTracked,
    progress: JobProgress | None,
    *,
    unknown_grace: int = UNKNOWN_GRACE_POLLS,
) -> Observation:
    """Compare FTS's answer with what was last published for the job (pure)."""
    polls = tracked.polls + 1
    if progress is None:
        if tracked.job_state is not None:
            # FTS knew the job last time: restart the count so it gets the same grace as a
            # new one (``polls`` then counts the polls since FTS last answered for it);
            # without job_state its state is published again should it come back.
            polls = 1
        if polls < unknown_grace:
            return Observation(None, tracked.model_copy(update={"polls": polls, "job_state": None}))
        return Observation(unknown_to_fts(tracked, polls), None)

    planned = {t.destination: t for t in tracked.transfers}
    changed = [
        file_state(f, planned.get(f.destination))
        for f in progress.files
        if tracked.file_states.get(f.destination) != f.state
    ]
    event = None
    if changed or progress.state != tracked.job_state:
        event = TransferStatus(
            request_id=tracked.request_id,
            kind=tracked.kind,
            job_id=tracked.job_id,
            fts_endpoint=tracked.fts_endpoint,
            job_state=progress.state,
            reason=progress.reason,
            files=changed,
        )
    if is_terminal(progress.state):
        return Observation(event, None)
    poll_again = tracked.model_copy(
        update={
            "job_state": progress.state,
            "file_states": {f.destination: f.state for f in progress.files},
            "polls": polls,
        }
    )
    return Observation(event, poll_again)


def unknown_to_fts(tracked: TransferTracked, polls: int) -> TransferStatus:
    return job_failed(
        request_id=tracked.request_id,
        kind=tracked.kind,
        job_id=tracked.job_id,
        fts_endpoint=tracked.fts_endpoint,
        transfers=tracked.transfers,
        reason=f"unknown to FTS {tracked.fts_endpoint} after {polls} polls",
    )


async def bulk_status(
    transfers: TransferService, job_ids: Sequence[str]
) -> Mapping[str, JobProgress | None]:
    """One bulk request; if FTS refuses the batch as a whole, ask job by job.

    A refused batch (e.g. one malformed id) must not hold up the other jobs in it: each job
    that FTS still refuses alone counts as unknown, and fails after the grace polls.
    """
    try:
        return await transfers.status(job_ids)
    except (TransientError, AuthenticationError, ForbiddenError):
        raise
    except PermanentError as exc:
        if len(job_ids) == 1:
            log.warning("fts_status_refused", job_id=job_ids[0], reason=str(exc))
            return {job_ids[0]: None}
        log.warning("fts_bulk_status_refused", jobs=len(job_ids), reason=str(exc))
    answers: dict[str, JobProgress | None] = {}
    for job_id in job_ids:
        answers.update(await bulk_status(transfers, [job_id]))
    return answers


async def _all(effects: Iterable[Awaitable[None]]) -> None:
    """Run effects concurrently; raise the first failure only after all have settled."""
    results = await asyncio.gather(*effects, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def poll_batch(
    envelopes: Sequence[Envelope[Any]],
    *,
    transfers: TransferService,
    publisher: Publisher,
    requeue: Requeue,
    unknown_grace: int = UNKNOWN_GRACE_POLLS,
) -> None:
    """Poll a batch of ``TransferSubmitted`` / ``TransferTracked`` jobs (≤ 100) once."""
    jobs: dict[str, tuple[Envelope[Any], TransferTracked]] = {}
    for envelope in envelopes:
        tracked = track(envelope.data)
        if tracked.job_id in jobs:
            # The same job twice (a redelivered submission): one copy is enough.
            log.info("duplicate_job_dropped", job_id=tracked.job_id)
            continue
        jobs[tracked.job_id] = (envelope, tracked)
    if not jobs:
        return

    try:
        answers = await bulk_status(transfers, list(jobs))
    except (TransientError, AuthenticationError, ForbiddenError) as exc:
        # FTS is down, or refuses *us*: keep every job as it is and ask again next interval.
        log.warning("fts_status_unavailable", jobs=len(jobs), error=str(exc))
        POLL_BATCHES.labels(outcome="fts_unavailable").inc()
        await _all(
            requeue.later(tracked, correlation_id=env.correlation_id, user=env.user)
            for env, tracked in jobs.values()
        )
        return
    POLL_BATCHES.labels(outcome="ok").inc()
    POLL_LAST_SUCCESS.set_to_current_time()

    outcomes = [
        (env, observe(tracked, answers.get(job_id), unknown_grace=unknown_grace))
        for job_id, (env, tracked) in jobs.items()
    ]
    await _all(
        publisher.publish(o.publish, correlation_id=env.correlation_id, user=env.user)
        for env, o in outcomes
        if o.publish is not None
    )
    await _all(
        requeue.later(o.poll_again, correlation_id=env.correlation_id, user=env.user)
        for env, o in outcomes
        if o.poll_again is not None
    )
    log.info(
        "jobs_polled",
        jobs=len(jobs),
        changed=sum(o.publish is not None for _, o in outcomes),
        active=sum(o.poll_again is not None for _, o in outcomes),
    )


def tracked_from_catalogue(
    job: ArchivalJob, settings: DatastoreSettings, *, correlation_id: str
) -> TransferTracked:
    """A job ICAT records as in flight, tracked again from nothing published.

    The transfers are rebuilt from each Datafile's ``location`` as the planner lays them out;
    should FTS name a destination differently, the ids still come back through the file
    metadata the submitter sent.
    """
    return TransferTracked(
        request_id=correlation_id,
        kind="archive",
        job_id=job.job_id,
        fts_endpoint=job.endpoint or str(settings.fts3.endpoint).rstrip("/"),
        transfers=_archive_transfers(job, settings),
    )


def _archive_transfers(job: ArchivalJob, settings: DatastoreSettings) -> list[PlannedTransfer]:
    transfers = []
    for datafile in job.datafiles:
        source, destination = archive_urls(
            datafile.location or datafile.name,
            instrument_data_cache=settings.instrument_data_cache,
            tape_archive=settings.tape_archive,
            tape_root_dir=settings.tape_root_dir,
        )
        transfers.append(
            PlannedTransfer(
                source=source,
                destination=destination,
                datafile_id=datafile.datafile_id,
                dataset_id=datafile.dataset_id,
                checksum=datafile.checksum,
                filesize=datafile.file_size,
            )
        )
    return transfers


async def resync(
    *, catalogue: Catalogue, requeue: Requeue, settings: DatastoreSettings, correlation_id: str
) -> int:
    """Put every job ICAT still shows in flight back into the poller's delay queue.

    For after a disaster (the broker's queues lost): the next poll of each job republishes its
    whole state, which ICAT takes as a duplicate where nothing moved. Returns the job count.
    """
    jobs = await catalogue.active_archival_jobs()
    await _all(
        requeue.later(
            tracked_from_catalogue(job, settings, correlation_id=correlation_id),
            correlation_id=correlation_id,
        )
        for job in jobs
    )
    log.info("resynced", jobs=len(jobs), datafiles=sum(len(j.datafiles) for j in jobs))
    return len(jobs)
