"""Progress: what the icat-writer writes to ICAT for an FTS status event.

Pure, like registration: ``lookup_keys`` and ``identified`` (which reported files are in ICAT),
``progress`` (which datafile states move forward, ``file_update`` for one) and
``dataset_writes`` (which dataset states follow). States only move forward, and an event of a
job that is not the file's current one (a late event of an earlier attempt) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datastore_common.domain.archival import (
    ARCHIVAL_FAILURE,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
    failure_text,
    split_job_ids,
)
from datastore_common.domain.registration import RecordedDatafile, RecordedDataset, Values
from datastore_common.domain.states import (
    FAILED,
    aggregate_dataset_state,
    classify_failure,
    may_advance,
    normalise,
)
from datastore_common.messages import DatafileKey, FileState, TransferStatus


def lookup_keys(files: Sequence[FileState]) -> list[DatafileKey]:
    """The keys of the files reported without an ICAT id (a request given up during
    registration names its files by key): their ids are to be looked up."""
    return [f.datafile for f in files if f.datafile_id is None and f.datafile is not None]


def identified(files: Sequence[FileState], found: Mapping[DatafileKey, int]) -> list[FileState]:
    """The files with an ICAT id: those reported by key get theirs where the datafile was
    ``found``; the others are not in ICAT."""
    with_ids: list[FileState] = []
    for file in files:
        if file.datafile_id is None and file.datafile is not None and file.datafile in found:
            file = file.model_copy(update={"datafile_id": found[file.datafile]})
        if file.datafile_id is not None:
            with_ids.append(file)
    return with_ids


def datafile_ids(files: Sequence[FileState]) -> list[int]:
    """The ICAT ids the files name, each once, ascending."""
    return sorted({f.datafile_id for f in files if f.datafile_id})


@dataclass(frozen=True)
class Progress:
    """What an FTS status event changes in ICAT's datafiles."""

    updates: Mapping[int, Values]  # by datafile id
    unknown: tuple[int, ...]  # reported ids ICAT does not have (any more)


def progress(
    status: TransferStatus,
    files: Sequence[FileState],
    current: Mapping[int, RecordedDatafile],
) -> Progress:
    """The datafile states ``status`` moves forward, from the datafiles as ICAT has them
    (``current``, by id); a file reported twice in one event counts its first move."""
    states = {i: d.archival.get(ARCHIVAL_STATE) for i, d in current.items()}
    updates: dict[int, Values] = {}
    unknown: list[int] = []
    for file in files:
        datafile_id = file.datafile_id
        if datafile_id is None:
            continue  # not in ICAT (``identified`` leaves none)
        if datafile_id not in current:
            unknown.append(datafile_id)
            continue
        recorded_ids = current[datafile_id].archival.get(ARCHIVAL_IDS)
        values = file_update(status, file, recorded_ids=recorded_ids, state=states[datafile_id])
        if values is not None:
            states[datafile_id] = values[ARCHIVAL_STATE]
            updates.setdefault(datafile_id, {}).update(values)
    return Progress(updates, tuple(unknown))


def file_update(
    status: TransferStatus,
    file: FileState,
    *,
    recorded_ids: str | None,
    state: str | None,
) -> Values | None:
    """The values one reported file moves to, or None when the report changes nothing."""
    if recorded_ids is not None and status.job_id not in split_job_ids(recorded_ids):
        return None  # a late event of an earlier attempt: the file is another job's now
    new_state = normalise(file.state)
    if not may_advance(state, new_state):
        return None  # stale or duplicate: terminal states are final, no step back
    values: Values = {ARCHIVAL_STATE: new_state}
    if new_state == FAILED:
        reason = file.reason or status.reason or "FTS gave no reason"
        values[ARCHIVAL_FAILURE] = failure_text(
            file.failure_class or classify_failure(reason), reason
        )
    return values


def dataset_writes(
    files: Sequence[RecordedDatafile], datasets: Sequence[RecordedDataset]
) -> dict[int, Values]:
    """Each dataset's state aggregated over its files, where that moves it forward; a dataset
    none of whose files records a state (none is being archived by us) is left alone."""
    writes: dict[int, Values] = {}
    for dataset in {d.dataset_id: d for d in datasets}.values():
        file_states = _file_states(files, dataset.dataset_id)
        if not file_states:
            continue
        new_state = aggregate_dataset_state(file_states)
        old_state = dataset.archival.get(ARCHIVAL_STATE)
        if old_state != new_state and may_advance(old_state, new_state):
            writes[dataset.dataset_id] = {ARCHIVAL_STATE: new_state}
    return writes


def _file_states(files: Sequence[RecordedDatafile], dataset_id: int) -> list[str]:
    return [
        state
        for f in files
        if f.dataset_id == dataset_id and (state := f.archival.get(ARCHIVAL_STATE)) is not None
    ]
