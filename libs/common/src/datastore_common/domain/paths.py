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

import itertools
import unicodedata
from dataclasses import dataclass
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
    return datafile_location(dataset_location(investigation, dataset), datafile)


def dataset_location(investigation: InvestigationSpec, dataset: DatasetSpec) -> str:
    """The relative path of a dataset's folder (its datafiles' ``archive_location`` less
    their names), its names checked as ``archive_location`` checks them: a planner builds it
    once per dataset and each datafile's location with ``datafile_location``."""
    folder = investigation_folder(investigation.name, investigation.visitId)
    parts = (
        ("instrument", investigation.instrument.name),
        ("facilityCycle", investigation.facilityCycle.name),
        ("datasetType", dataset.datasetType.name),
        ("dataset name", dataset.name),
    )
    try:
        for what, value in parts:
            check_safe_name(value, what)
    except ValueError as exc:
        raise UnsafeLocationError(str(exc)) from exc
    instrument, cycle, dataset_type, dataset_name = (v for _, v in parts)
    return "/".join((instrument, cycle, folder, dataset_type, dataset_name))


def datafile_location(dataset_folder: str, datafile: DatafileSpec) -> str:
    """A datafile's ``archive_location`` in its dataset's folder (``dataset_location``)."""
    try:
        check_safe_name(datafile.name, "datafile name")
    except ValueError as exc:
        raise UnsafeLocationError(str(exc)) from exc
    return f"{dataset_folder}/{datafile.name}"


@dataclass(frozen=True)
class DatafilePlace:
    """Where ICAT's own entities put a datafile, as the user's session reads them: its
    investigation's instruments and facility cycles (ICAT may link several of each), the
    investigation's name and visitId, its dataset's type and name, and its own name."""

    instruments: tuple[str, ...]
    facility_cycles: tuple[str, ...]
    investigation: str
    visit_id: str
    dataset_type: str
    dataset: str
    datafile: str


#: The layout a location must have, in words (for refusals).
LAYOUT = "{instrument}/{facilityCycle}/{name}-{visitId}/{datasetType}/{dataset}/{datafile}"


def location_problem(location: str | None) -> str | None:
    """Why ``location`` (a ``Datafile.location`` as ICAT holds it) is not a safe relative path
    in our layout, in words; None when it is one."""
    if not location:
        return "no location"
    bad = next(
        (c for c in location if unicodedata.category(c) in {"Cc", "Cf", "Cs", "Co", "Cn"}), None
    )
    if bad is not None:
        return f"it contains the control or invisible character U+{ord(bad):04X}"
    if location.startswith("/"):
        return "it is an absolute path"
    if "\\" in location:
        return "it contains a backslash"
    if "://" in location:
        return "it is a URL, not a path below a storage root"
    parts = location.split("/")
    if "" in parts:
        return "it has an empty path component ('//' or a trailing '/')"
    if any(part in {".", ".."} for part in parts):
        return "it has a '.' or '..' component"
    for part in parts:
        try:
            check_safe_name(part, "component")
        except ValueError as exc:
            return str(exc)
    if len(parts) != len(LAYOUT.split("/")):
        return f"it has {len(parts)} components, not the layout {LAYOUT}"
    return None


def place_locations(place: DatafilePlace) -> list[str]:
    """Every location Datastore may have written for a datafile at ``place`` (one per linked
    instrument and facility cycle; usually exactly one). Names that are not safe path
    components give none: Datastore never wrote such a path. A visitId with '-' (archived
    before the rule) still counts: its files were written there, and stay restorable."""
    names = (place.investigation, place.visit_id, place.dataset_type, place.dataset)
    try:
        for name in (*names, place.datafile):
            check_safe_name(name)
    except ValueError:
        return []
    folder = f"{place.investigation}-{place.visit_id}"
    tail = (folder, place.dataset_type, place.dataset, place.datafile)
    found = []
    for instrument, cycle in itertools.product(
        sorted(place.instruments), sorted(place.facility_cycles)
    ):
        candidate = "/".join((instrument, cycle, *tail))
        if location_problem(candidate) is None:
            found.append(candidate)
    return found


def trusted_location(location: str | None, place: DatafilePlace) -> str:
    """The location to restore a datafile from: the one Datastore wrote, rebuilt from ICAT's
    investigation/dataset/datafile hierarchy. The stored ``Datafile.location`` must be safe and
    equal to it; anything else (a path out of the storage root, another investigation's file)
    is UnsafeLocationError saying why."""
    problem = location_problem(location)
    if problem is not None:
        raise UnsafeLocationError(f"location {location!r}: {problem}")
    assert location is not None
    expected = place_locations(place)
    if location in expected:
        return location
    if not place.instruments or not place.facility_cycles:
        missing = "instrument" if not place.instruments else "facility cycle"
        why = f"ICAT shows no {missing} of investigation {place.investigation}-{place.visit_id}"
    elif not expected:
        why = "ICAT's names for it are not safe path components"
    else:
        shown = expected[0] if len(expected) == 1 else f"one of {', '.join(expected[:3])}"
        why = f"Datastore archives this datafile at {shown}"
    raise UnsafeLocationError(f"location {location!r} is not where it belongs: {why}")


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
