"""Where a datafile lives on each storage, relative to that storage's root.

The layout is the original Datastore API's:
``{instrument}/{facilityCycle}/{investigation}-{visitId}/{datasetType}/{dataset}/{datafile}``,
under the instrument data cache root, the tape root (plus ``tape_root_dir``) and the user data
cache root alike. Names are checked as safe path components before they get here (the
messages' models) and again here, as a second line: every component is a safe name and a
visit id holds no ``-``, so the folder ``{investigation}-{visitId}`` splits at its last ``-``
into exactly one (name, visit id) and two investigations never share a folder.
"""

from __future__ import annotations

from typing import NamedTuple

from datastore_common.errors import InvalidRequestError
from datastore_common.messages import DatafileSpec, DatasetSpec, InvestigationSpec
from datastore_common.messages.metadata import check_safe_name, check_visit_id


class UnsafeLocationError(InvalidRequestError, ValueError):
    """A location, or a name that would become part of one, that could leave its storage
    root or name the place of another datafile: the request's fault, never retried."""


def investigation_folder(name: str, visit_id: str) -> str:
    """``{name}-{visitId}``; UnsafeLocationError unless both are safe names and the visit id
    holds no ``-`` (``metadata.VISIT_ID_RULE``)."""
    try:
        check_safe_name(name, "investigation name")
        check_visit_id(visit_id)
    except ValueError as exc:
        raise UnsafeLocationError(str(exc)) from exc
    return f"{name}-{visit_id}"


def archive_location(
    investigation: InvestigationSpec, dataset: DatasetSpec, datafile: DatafileSpec
) -> str:
    """The relative path of a datafile: also its ICAT ``Datafile.location``.

    UnsafeLocationError (a PermanentError) for a name that is not a safe path component or a
    visit id with a ``-``: models built without validation cannot get past here either."""
    folder = investigation_folder(investigation.name, investigation.visitId)
    parts = (
        ("instrument", investigation.instrument.name),
        ("facilityCycle", investigation.facilityCycle.name),
        ("datasetType", dataset.datasetType.name),
        ("dataset name", dataset.name),
        ("datafile name", datafile.name),
    )
    try:
        for what, value in parts:
            check_safe_name(value, what)
    except ValueError as exc:
        raise UnsafeLocationError(str(exc)) from exc
    instrument, cycle, dataset_type, dataset_name, datafile_name = (v for _, v in parts)
    return "/".join((instrument, cycle, folder, dataset_type, dataset_name, datafile_name))


def storage_url(root: str, location: str, *, prefix: str = "") -> str:
    """Join a storage root (``root://host:port//``), an optional prefix and a location."""
    if ".." in location.split("/"):
        raise UnsafeLocationError(f"unsafe location {location!r}")
    base = root if root.endswith("/") else root + "/"
    return f"{base}{prefix}{location.lstrip('/')}"


class ArchiveUrls(NamedTuple):
    """Where a datafile is archived from, and to."""

    source: str  # on the instrument data cache
    destination: str  # on tape


def archive_urls(
    location: str, *, instrument_data_cache: str, tape_archive: str, tape_root_dir: str
) -> ArchiveUrls:
    """The archive transfer of a datafile at ``location``: the same relative path under the
    instrument data cache root and under the tape root plus ``tape_root_dir``.

    The one place both are built: the planner lays transfers out with it, and the poller's
    resync rebuilds them from ICAT's ``Datafile.location`` with it, so the two always agree.
    """
    return ArchiveUrls(
        source=storage_url(instrument_data_cache, location),
        destination=storage_url(tape_archive, location, prefix=tape_root_dir),
    )
