"""Controlling requests and datasets: may a request be cancelled, may a dataset's archive be
retried and which of its files, may an admin set a state by hand. Pure: the gateway and the
icat-writer ask these, then do what they say.

- **Cancel**: a restore in flight is its owner's (or an admin's) to cancel; an archive is not,
  as the original Datastore refuses it (its files may be half on tape, and ICAT records them),
  unless an admin forces it, and then ICAT records CANCELED for its files as FTS reports them.
  A request that has ended is not cancelled again (409 with its state).
- **Retry**: only an archive that has ended without every file on tape (FAILED, CANCELED,
  FINISHEDDIRTY) is retried, and only its files FAILED or CANCELED (or never given a state) are
  sent again; a dataset in flight or FINISHED is refused with why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from datastore_common.domain.archival import (
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_FAILURE,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
    DELETION_DATE,
    CatalogueDatafile,
    failure_text,
)
from datastore_common.domain.job_ids import fts_job_id
from datastore_common.domain.paths import archive_urls, location_problem
from datastore_common.domain.plan import is_real_checksum, pack_groups
from datastore_common.domain.states import (
    CANCELED,
    FAILED,
    FINISHED,
    FINISHEDDIRTY,
    SUBMITTED,
    TERMINAL,
    aggregate_dataset_state,
    normalise,
)
from datastore_common.errors import InvalidRequestError
from datastore_common.messages import PlannedJob, PlannedTransfer

#: Dataset states whose archive may be retried: ended, and not every file on tape.
RETRYABLE_DATASET_STATES = frozenset({FAILED, CANCELED, FINISHEDDIRTY})
#: File states a retry sends again.
RETRIED_FILE_STATES = frozenset({FAILED, CANCELED})
#: States an admin may set by hand (``PUT /datasets/{id}/status``).
SETTABLE_STATES = frozenset({FINISHED, FAILED, CANCELED, FINISHEDDIRTY})

CancelAction = Literal["cancel", "refuse", "ended"]


@dataclass(frozen=True)
class CancelDecision:
    """``cancel``: cancel its FTS jobs; ``refuse`` and ``ended``: 409 with ``reason``."""

    action: CancelAction
    reason: str | None = None


def cancel_decision(
    kind: str, state: str, *, admin: bool, force: bool, what: str = "request"
) -> CancelDecision:
    """Whether a request (or one job of it, ``what``) of ``kind`` in ``state`` is cancelled
    for a caller already allowed to see it (its owner or an admin)."""
    state = normalise(state)
    # An archive is refused whatever its state, as the original API did; then an ended one.
    if kind == "archive" and not (admin and force):
        why = (
            "pass force=true to cancel it anyway (ICAT then records its files CANCELED)"
            if admin
            else "only an admin may force it"
        )
        return CancelDecision(
            "refuse",
            f"an archive {what} cannot be cancelled: its files may already be on tape and ICAT "
            f"records them; {why}",
        )
    if state in TERMINAL:
        return CancelDecision("ended", f"the {what} has ended {state}: nothing to cancel")
    return CancelDecision("cancel")


@dataclass(frozen=True)
class RetryDecision:
    """``datafile_ids``: what to send again (ascending); ``reason`` when refused."""

    datafile_ids: tuple[int, ...] = ()
    reason: str | None = None

    @property
    def refused(self) -> bool:
        return self.reason is not None


def retry_decision(
    file_states: Mapping[int, str | None], dataset: str = "dataset"
) -> RetryDecision:
    """Which datafiles (id -> "Archival state", None when none) of a dataset a retry sends
    again, or why it is refused (``dataset`` names it in the reason)."""
    if not file_states:
        return RetryDecision(reason=f"{dataset} has no datafiles to archive")
    missing = sorted(i for i, s in file_states.items() if s is None)
    if missing and len(missing) == len(file_states):
        return RetryDecision(reason=f"{dataset} was never archived: archive it instead")
    state = aggregate_dataset_state(normalise(s) for s in file_states.values() if s is not None)
    if state == FINISHED and not missing:
        return RetryDecision(reason=f"{dataset} is FINISHED: every file is on tape")
    if state not in RETRYABLE_DATASET_STATES and state != FINISHED:
        return RetryDecision(
            reason=f"{dataset} is {state}: its archive is still in flight; cancel it or "
            "wait for it to end"
        )
    again = sorted(
        i for i, s in file_states.items() if s is None or normalise(s) in RETRIED_FILE_STATES
    )
    if not again:
        return RetryDecision(reason=f"{dataset} has no FAILED or CANCELED files to retry")
    return RetryDecision(datafile_ids=tuple(again))


def retry_sid(request_id: str, batch_index: int) -> str:
    """The ``sid`` of batch ``batch_index`` of retry request ``request_id``: the retry is its
    own request (attempt), so a redelivery of it names the same jobs and another retry of the
    same dataset names new ones."""
    if not request_id:
        raise ValueError("request_id must not be empty")
    if batch_index < 0:
        raise ValueError(f"batch_index must be >= 0, got {batch_index}")
    return f"{request_id}:retry:{batch_index}"


def plan_retry(
    request_id: str,
    datafiles: Sequence[CatalogueDatafile],
    *,
    instrument_data_cache: str,
    tape_archive: str,
    tape_root_dir: str,
    vo: str,
    max_files_per_job: int,
) -> list[PlannedJob]:
    """The jobs of a retry: these datafiles (by id) from the instrument data cache to tape,
    where their ICAT ``location`` says, packed as an archive's are and named from
    ``request_id`` (``retry_sid``). InvalidRequestError naming every datafile whose location
    is missing or unsafe."""
    ordered = sorted(datafiles, key=lambda d: d.datafile_id)
    bad = {d.datafile_id: location_problem(d.location) for d in ordered}
    problems = {i: why for i, why in bad.items() if why is not None}
    if problems:
        listed = "; ".join(f"datafile {i}: {why}" for i, why in sorted(problems.items()))
        raise InvalidRequestError(f"cannot retry: {listed}")
    transfers = []
    for datafile in ordered:
        assert datafile.location is not None  # checked above
        urls = archive_urls(
            datafile.location,
            instrument_data_cache=instrument_data_cache,
            tape_archive=tape_archive,
            tape_root_dir=tape_root_dir,
        )
        transfers.append(
            PlannedTransfer(
                source=urls.source,
                destination=urls.destination,
                datafile_id=datafile.datafile_id,
                dataset_id=datafile.dataset_id,
                checksum=datafile.checksum if is_real_checksum(datafile.checksum) else None,
                filesize=datafile.file_size or None,
            )
        )
    jobs = []
    for index, batch in enumerate(pack_groups([transfers], max_files_per_job)):
        sid = retry_sid(request_id, index)
        # The earlier attempt may have left its copy on tape (failed while archiving,
        # cancelled): ours, never FINISHED, so it is replaced.
        jobs.append(
            PlannedJob(
                job_id=fts_job_id(vo, sid),
                sid=sid,
                kind="archive",
                transfers=batch,
                overwrite=True,
            )
        )
    return jobs


def retry_values(jobs: Sequence[PlannedJob], *, endpoint: str) -> dict[int, dict[str, str | None]]:
    """The "Archival" values of each datafile a retry sends again: SUBMITTED in its new job,
    its earlier failure cleared (as a first registration writes them)."""
    return {
        transfer.datafile_id: {
            ARCHIVAL_STATE: SUBMITTED,
            ARCHIVAL_IDS: job.job_id,
            ARCHIVAL_ENDPOINT: endpoint,
            ARCHIVAL_FAILURE: None,
        }
        for job in jobs
        for transfer in job.transfers
        if transfer.datafile_id is not None
    }


def check_settable(state: str) -> str:
    """The state an admin sets by hand, normalised; ValueError naming the allowed ones."""
    wanted = normalise(state)
    if wanted not in SETTABLE_STATES:
        raise ValueError(
            f"state {state!r} cannot be set by hand; one of {', '.join(sorted(SETTABLE_STATES))}"
        )
    return wanted


def state_set_values(
    state: str, reason: str, *, set_by: str, deletion_date: date | None = None
) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """The "Archival" values an admin's state set by hand writes: (the dataset's, each
    datafile's when asked). A state with failures says who set it and why in "Archival
    failure" (a system error: ours to explain); FINISHED clears it. The deletion date is the
    dataset's only."""
    wanted = check_settable(state)
    failure = (
        None
        if wanted == FINISHED
        else failure_text("system", f"set {wanted} by hand by {set_by}: {reason}")
    )
    datafile: dict[str, str | None] = {ARCHIVAL_STATE: wanted, ARCHIVAL_FAILURE: failure}
    dataset = dict(datafile)
    if deletion_date is not None:
        dataset[DELETION_DATE] = deletion_date.isoformat()
    return dataset, datafile
