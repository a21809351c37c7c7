"""Trust: a worker re-checks what a message asks of it against what the system would have asked.

Anyone who can publish on the broker can forge or alter a message, so a worker does not take a
plan, a job id or a URL on the message's word. Pure, like the rest of ``domain``: the checks
compare a message with what our own rules give (``plan.plan_archive``, ``paths.archive_urls``,
the storage roots of the settings) and say, in words, what differs.

- ``check_archive_plan``: the jobs an ``archive.requested`` carries are exactly the ones the
  planner gives for its investigations (the icat-writer, before anything is written to ICAT);
- ``status_problems``: a ``transfer.status`` writes only to datafiles of datasets whose
  "Archival ids" hold its job, and names every datafile by the URLs its ICAT location gives
  (the icat-writer, before recording it);
- ``transfer_problem``: an FTS transfer goes from and to where its kind may go, under the
  configured storage roots (the fts-submitter, before submitting).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datastore_common.domain.archival import ARCHIVAL_IDS, split_job_ids
from datastore_common.domain.paths import archive_urls, location_problem
from datastore_common.errors import PermanentError
from datastore_common.messages import (
    DatafileKey,
    FileState,
    PlannedJob,
    PlannedTransfer,
    TransferKind,
    TransferStatus,
)
from datastore_common.messages.metadata import check_safe_name

#: How many differences a refusal names (the rest are counted).
SHOWN = 5


class UntrustedMessageError(PermanentError):
    """A message asks for something the system itself would not have asked: forged, altered
    in transit, or planned with other settings than this worker's. Never retried; the
    message is dead-lettered with this reason."""


def _refusal(what: str, problems: Sequence[str]) -> UntrustedMessageError:
    shown = "; ".join(problems[:SHOWN])
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return UntrustedMessageError(f"{what}: {shown}{more}")


# ---------------------------------------------------------------- archive.requested


def _key_text(key: DatafileKey | None) -> str:
    if key is None:
        return "(no datafile)"
    return f"{key.investigation}-{key.visit_id}/{key.dataset}/{key.datafile}"


def _transfer_differences(job: str, expected: PlannedTransfer, given: PlannedTransfer) -> list[str]:
    name = _key_text(expected.datafile)
    return [
        f"{job} datafile {name}: {field} {getattr(given, field)!r}, the plan says "
        f"{getattr(expected, field)!r}"
        for field in ("source", "destination", "checksum", "filesize", "datafile_id", "dataset_id")
        if getattr(given, field) != getattr(expected, field)
    ]


def _job_differences(expected: PlannedJob, given: PlannedJob, *, check_job_ids: bool) -> list[str]:
    job = f"job {expected.sid}"
    found: list[str] = []
    if check_job_ids and given.job_id != expected.job_id:
        found.append(f"{job}: id {given.job_id}, the plan says {expected.job_id}")
    if given.kind != expected.kind:
        found.append(f"{job}: kind {given.kind}, the plan says {expected.kind}")
    wanted = {_key_text(t.datafile): t for t in expected.transfers}
    have: dict[str, PlannedTransfer] = {}
    for transfer in given.transfers:
        name = _key_text(transfer.datafile)
        if name in have:
            found.append(f"{job}: datafile {name} twice")
        have[name] = transfer
    found += [f"{job}: datafile {n} missing" for n in wanted if n not in have]
    found += [f"{job}: datafile {n} not in the plan" for n in have if n not in wanted]
    for name, transfer in wanted.items():
        if name in have:
            found += _transfer_differences(job, transfer, have[name])
    return found


def archive_plan_differences(
    expected: Sequence[PlannedJob], given: Sequence[PlannedJob], *, check_job_ids: bool = True
) -> list[str]:
    """How ``given`` (the jobs a message carries) differs from ``expected`` (our own plan of
    the same request), in words; empty when they are the same. Jobs are matched by ``sid``
    (``{request_id}:{index}``); ``check_job_ids`` False compares everything but the FTS ids
    (a worker that does not know the VO the ids derive from)."""
    by_sid: dict[str, PlannedJob] = {}
    found: list[str] = []
    for job in given:
        if job.sid in by_sid:
            found.append(f"job {job.sid} twice")
        by_sid[job.sid] = job
    wanted = {job.sid: job for job in expected}
    found += [
        f"job {sid} ({job.job_id}) missing" for sid, job in wanted.items() if sid not in by_sid
    ]
    found += [
        f"job {sid} ({job.job_id}) not in the plan"
        for sid, job in by_sid.items()
        if sid not in wanted
    ]
    for sid, job in wanted.items():
        if sid in by_sid:
            found += _job_differences(job, by_sid[sid], check_job_ids=check_job_ids)
    return found


def check_archive_plan(
    expected: Sequence[PlannedJob], given: Sequence[PlannedJob], *, check_job_ids: bool = True
) -> None:
    """UntrustedMessageError naming the differences unless ``given`` is our own plan."""
    differences = archive_plan_differences(expected, given, check_job_ids=check_job_ids)
    if differences:
        raise _refusal("the archive request's jobs are not the ones its plan gives", differences)


# ---------------------------------------------------------------- transfer.status


@dataclass(frozen=True)
class ArchiveRoots:
    """Where archive transfers go: the instrument data cache, the tape root and its folder."""

    instrument_data_cache: str
    tape_archive: str
    tape_root_dir: str


def status_problems(
    status: TransferStatus,
    files: Sequence[FileState],
    locations: Mapping[int, str | None],
    dataset_of: Mapping[int, int],
    dataset_ids: Mapping[int, str | None],
    written: Sequence[int],
    *,
    roots: ArchiveRoots,
) -> list[str]:
    """Why an archive status event must not be recorded, in words; empty when it may.

    ``files``: the reported files that are in ICAT (with their datafile ids); ``locations``:
    each one's ``Datafile.location``; ``dataset_of``: its dataset; ``dataset_ids``: each
    dataset's "Archival ids"; ``written``: the datafiles the event would move.

    - every file in ICAT must be named by the URLs its location gives (``archive_urls``);
    - a datafile it would move must belong to a dataset whose "Archival ids" hold the job:
      only a job the icat-writer recorded for the dataset may write its files' states. An
      event that moves nothing (a late event of an earlier attempt, a duplicate) is left alone.
    """
    found: list[str] = []
    for file in files:
        if file.datafile_id is None:
            continue  # not in ICAT: nothing of it is recorded
        location = locations.get(file.datafile_id)
        if location is None or location_problem(location) is not None:
            found.append(
                f"datafile {file.datafile_id}: ICAT holds no location Datastore writes "
                f"({location!r})"
            )
            continue
        urls = archive_urls(
            location,
            instrument_data_cache=roots.instrument_data_cache,
            tape_archive=roots.tape_archive,
            tape_root_dir=roots.tape_root_dir,
        )
        if file.source != urls.source:
            found.append(
                f"datafile {file.datafile_id}: source {file.source!r}, its place gives "
                f"{urls.source!r}"
            )
        if file.destination != urls.destination:
            found.append(
                f"datafile {file.datafile_id}: destination {file.destination!r}, its place "
                f"gives {urls.destination!r}"
            )
    for datafile_id in written:
        dataset_id = dataset_of[datafile_id]
        held = split_job_ids(dataset_ids.get(dataset_id))
        if status.job_id not in held:
            found.append(
                f"datafile {datafile_id}: job {status.job_id} is not one its dataset "
                f"{dataset_id} records in {ARCHIVAL_IDS!r} ({', '.join(held) or 'none'})"
            )
    return found


def check_status(
    status: TransferStatus,
    files: Sequence[FileState],
    locations: Mapping[int, str | None],
    dataset_of: Mapping[int, int],
    dataset_ids: Mapping[int, str | None],
    written: Sequence[int],
    *,
    roots: ArchiveRoots,
) -> None:
    """UntrustedMessageError naming each problem ``status_problems`` finds."""
    problems = status_problems(
        status, files, locations, dataset_of, dataset_ids, written, roots=roots
    )
    if problems:
        raise _refusal(f"status of job {status.job_id} refused", problems)


# ---------------------------------------------------------------- FTS transfers


@dataclass(frozen=True)
class StorageRoots:
    """The configured storage roots (``root://host:port//``) and the tape folder."""

    instrument_data_cache: str
    tape_archive: str
    tape_root_dir: str
    user_data_cache: str


def _split(url: str) -> tuple[str, str, str] | None:
    """``scheme://authority/rest`` -> (scheme, authority, rest after the first ``/``)."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return None
    authority, slash, path = rest.partition("/")
    if not slash:
        return None
    return scheme.lower(), authority.lower(), path


def _below(url: str, root: str, prefix: str) -> tuple[str | None, str | None]:
    """(the path of ``url`` below ``root`` + ``prefix``, None) or (None, why not)."""
    bad = next(
        (c for c in url if c.isspace() or unicodedata.category(c).startswith(("C", "Z"))), None
    )
    if bad is not None:
        return None, f"it contains the control, invisible or space character U+{ord(bad):04X}"
    for char, what in (("?", "a query string"), ("#", "a fragment"), ("%", "percent-encoding")):
        if char in url:
            return None, f"it has {what}"
    if "\\" in url:
        return None, "it contains a backslash"
    parts, root_parts = _split(url), _split(root)
    if parts is None or root_parts is None:
        return None, "it is not a URL scheme://host:port//path"
    scheme, authority, path = parts
    root_scheme, root_authority, root_path = root_parts
    if scheme != root_scheme:
        return None, f"scheme {scheme!r}, the storage's is {root_scheme!r}"
    if authority != root_authority:
        return None, f"server {authority!r}, the storage's is {root_authority!r}"
    base = root_path + prefix  # e.g. "/" + "archive/" for root://host:port//archive/
    if not path.startswith(base):
        return None, f"its path is not below {base!r}"
    below = path[len(base) :]
    components = below.split("/")
    for component in components:
        try:
            check_safe_name(component, "path component")
        except ValueError as exc:
            return None, str(exc) if component else "it has an empty path component"
    return below, None


def transfer_problem(
    kind: TransferKind, source: str, destination: str, *, roots: StorageRoots
) -> str | None:
    """Why FTS must not be asked for this transfer, in words naming the offending URL; None
    when it goes where its kind goes: an archive from the instrument data cache to the same
    path under the tape root's folder, a restore from there to the same path on the user
    data cache. Only safe path components are accepted (no ``..``, no empty component), and
    only the storage's own scheme, host and port; no query string, fragment or encoding."""
    if kind == "archive":
        ends = (
            ("source", source, roots.instrument_data_cache, "", "the instrument data cache"),
            ("destination", destination, roots.tape_archive, roots.tape_root_dir, "tape"),
        )
    else:
        ends = (
            ("source", source, roots.tape_archive, roots.tape_root_dir, "tape"),
            ("destination", destination, roots.user_data_cache, "", "the user data cache"),
        )
    paths = []
    for end, url, root, prefix, storage in ends:
        below, why = _below(url, root, prefix)
        if below is None:
            return f"{kind} {end} {url!r} is not on {storage} ({root}{prefix}): {why}"
        paths.append(below)
    if paths[0] != paths[1]:
        return (
            f"{kind} destination {destination!r} is not the source's place "
            f"({paths[0]!r}) on the other storage"
        )
    return None


def check_transfers(jobs: Sequence[PlannedJob], *, kind: TransferKind, roots: StorageRoots) -> None:
    """UntrustedMessageError naming every job that is not of ``kind`` (what the message is
    for) and every transfer ``transfer_problem`` refuses."""
    problems = [
        f"job {job.job_id} is a {job.kind} job, not {kind}" for job in jobs if job.kind != kind
    ]
    problems += [
        f"job {job.job_id}: {problem}"
        for job in jobs
        if job.kind == kind
        for transfer in job.transfers
        if (problem := transfer_problem(kind, transfer.source, transfer.destination, roots=roots))
    ]
    if problems:
        raise _refusal("transfers outside the storage roots refused", problems)
