"""Transfer planning: which files go into which FTS job, and what each job is called.

Files of one dataset stay together: datasets are packed whole into jobs of at most
``max_files_per_job`` transfers, and only a dataset larger than that is split. Each job gets a
deterministic ``sid`` and FTS job id, so the plan can be answered to the client before any FTS
call and resubmitting it can never create a second job.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.domain.paths import (
    DatafilePlace,
    UnsafeLocationError,
    archive_urls,
    datafile_location,
    dataset_location,
    storage_url,
    trusted_location,
)
from datastore_common.errors import UntrustedLocationError
from datastore_common.messages import (
    DatafileKey,
    InvestigationSpec,
    PlannedJob,
    PlannedTransfer,
    TransferKind,
)

T = TypeVar("T")


def pack_groups(groups: Sequence[Sequence[T]], max_per_job: int) -> list[list[T]]:
    """Pack groups into bins of at most ``max_per_job`` items, never splitting a group that fits.

    Groups are taken in order (first fit into the current bin); a group larger than a bin is
    cut into full bins plus a remainder that packs like any other group.
    """
    if max_per_job < 1:
        raise ValueError("max_per_job must be >= 1")
    bins: list[list[T]] = []
    current: list[T] = []
    for group in groups:
        items = list(group)
        while len(items) > max_per_job:
            bins.append(items[:max_per_job])
            items = items[max_per_job:]
        if len(current) + len(items) > max_per_job:
            bins.append(current)
            current = []
        current.extend(items)
    if current:
        bins.append(current)
    return bins


def _jobs(
    request_id: str, kind: TransferKind, vo: str, batches: list[list[PlannedTransfer]]
) -> list[PlannedJob]:
    jobs = []
    for index, transfers in enumerate(batches):
        sid = job_sid(request_id, index)
        jobs.append(PlannedJob(job_id=fts_job_id(vo, sid), sid=sid, kind=kind, transfers=transfers))
    return jobs


def plan_archive(
    request_id: str,
    investigations: Sequence[InvestigationSpec],
    *,
    instrument_data_cache: str,
    tape_archive: str,
    tape_root_dir: str,
    vo: str,
    max_files_per_job: int,
) -> list[PlannedJob]:
    """Archive plan: every datafile from the instrument data cache to its place on tape."""
    groups: list[list[PlannedTransfer]] = []
    for investigation in investigations:
        for dataset in investigation.datasets:
            group = []
            # Checked and joined once per dataset, not per datafile (a request's cost).
            folder = dataset_location(investigation, dataset) if dataset.datafiles else ""
            for datafile in dataset.datafiles:
                urls = archive_urls(
                    datafile_location(folder, datafile),
                    instrument_data_cache=instrument_data_cache,
                    tape_archive=tape_archive,
                    tape_root_dir=tape_root_dir,
                )
                group.append(
                    PlannedTransfer(
                        source=urls.source,
                        destination=urls.destination,
                        datafile=DatafileKey(
                            investigation=investigation.name,
                            visit_id=investigation.visitId,
                            dataset=dataset.name,
                            datafile=datafile.name,
                        ),
                        checksum=_real_checksum(datafile.checksum),
                        filesize=datafile.fileSize or None,
                    )
                )
            groups.append(group)
    return _jobs(request_id, "archive", vo, pack_groups(groups, max_files_per_job))


@dataclass(frozen=True)
class RestoreItem:
    """An archived datafile as ICAT knows it: its stored ``location`` and its ``place`` in the
    investigation/dataset/datafile hierarchy, which the location must match (its names there,
    ``key``, are read from the place too)."""

    datafile_id: int
    dataset_id: int
    location: str
    checksum: str | None = None
    filesize: int | None = None
    place: DatafilePlace = field(kw_only=True)

    @property
    def key(self) -> DatafileKey:
        """Its ICAT names (investigation, visitId, dataset, datafile), from its place: a
        restored file travels named by them as an archived one does (the ledger shows them)."""
        place = self.place
        return DatafileKey(
            investigation=place.investigation,
            visit_id=place.visit_id,
            dataset=place.dataset,
            datafile=place.datafile,
        )


def trusted_locations(items: Sequence[RestoreItem]) -> dict[int, str]:
    """Each item's location to restore from, by datafile id: the one Datastore wrote, rebuilt
    from its place in ICAT's hierarchy (``paths.trusted_location``). UntrustedLocationError
    (422) naming every item whose stored location is unsafe or not that one, with why."""
    trusted: dict[int, str] = {}
    refused: dict[int, str] = {}
    for item in items:
        try:
            trusted[item.datafile_id] = trusted_location(item.location, item.place)
        except UnsafeLocationError as exc:
            refused[item.datafile_id] = str(exc)
    if refused:
        raise UntrustedLocationError(refused)
    return trusted


def restore_transfers(
    items: Sequence[RestoreItem],
    *,
    tape_archive: str,
    user_data_cache: str,
    tape_root_dir: str,
) -> list[PlannedTransfer]:
    """Each datafile from tape to the same relative place on the user cache, named by its
    ICAT keys as an archive's are (the request ledger shows them), by (dataset, location).

    Only from where Datastore archived it: a location that is unsafe or not the one its place
    in ICAT's hierarchy gives refuses them all (UntrustedLocationError, naming each)."""
    locations = trusted_locations(items)
    return [
        PlannedTransfer(
            source=storage_url(tape_archive, locations[item.datafile_id], prefix=tape_root_dir),
            destination=storage_url(user_data_cache, locations[item.datafile_id]),
            datafile=item.key,
            datafile_id=item.datafile_id,
            dataset_id=item.dataset_id,
            checksum=_real_checksum(item.checksum),
            filesize=item.filesize,
        )
        for item in sorted(items, key=lambda i: (i.dataset_id, locations[i.datafile_id]))
    ]


def plan_restore_jobs(
    request_id: str,
    transfers: Sequence[PlannedTransfer],
    *,
    vo: str,
    max_files_per_job: int,
    replace: Collection[str] = (),
) -> list[PlannedJob]:
    """Restore jobs for these transfers, a dataset's kept together. A job overwrites only
    when it carries a destination in ``replace`` (a different file is there): the others
    leave FTS to refuse a file that appeared unasked."""
    by_dataset: dict[int | None, list[PlannedTransfer]] = {}
    for transfer in transfers:
        by_dataset.setdefault(transfer.dataset_id, []).append(transfer)
    jobs = _jobs(
        request_id, "restore", vo, pack_groups(list(by_dataset.values()), max_files_per_job)
    )
    return [
        job.model_copy(update={"overwrite": True})
        if any(t.destination in replace for t in job.transfers)
        else job
        for job in jobs
    ]


def plan_restore(
    request_id: str,
    items: Sequence[RestoreItem],
    *,
    tape_archive: str,
    tape_root_dir: str,
    user_data_cache: str,
    vo: str,
    max_files_per_job: int,
) -> list[PlannedJob]:
    """Restore plan of every item (``restore_transfers`` packed by ``plan_restore_jobs``),
    nothing overwritten."""
    transfers = restore_transfers(
        items,
        tape_archive=tape_archive,
        tape_root_dir=tape_root_dir,
        user_data_cache=user_data_cache,
    )
    return plan_restore_jobs(request_id, transfers, vo=vo, max_files_per_job=max_files_per_job)


def _real_checksum(value: str | None) -> str | None:
    """Keep a checksum only when it is a real ``adler32:<8 hex>`` (the seed sends "string")."""
    if value is None:
        return None
    algorithm, _, digest = value.partition(":")
    if algorithm.lower() != "adler32" or len(digest) != 8:
        return None
    try:
        int(digest, 16)
    except ValueError:
        return None
    return f"adler32:{digest.lower()}"


def is_real_checksum(value: str | None) -> bool:
    return _real_checksum(value) is not None
