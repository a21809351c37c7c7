"""Where a datafile lives on each storage, relative to that storage's root.

The layout is the original Datastore API's:
``{instrument}/{facilityCycle}/{investigation}-{visitId}/{datasetType}/{dataset}/{datafile}``,
under the instrument data cache root, the tape root (plus ``tape_root_dir``) and the user data
cache root alike. Names are checked as safe path components before they get here.
"""

from __future__ import annotations

from typing import NamedTuple

from datastore_common.messages import DatafileSpec, DatasetSpec, InvestigationSpec


def archive_location(
    investigation: InvestigationSpec, dataset: DatasetSpec, datafile: DatafileSpec
) -> str:
    """The relative path of a datafile: also its ICAT ``Datafile.location``."""
    return "/".join(
        (
            investigation.instrument.name,
            investigation.facilityCycle.name,
            f"{investigation.name}-{investigation.visitId}",
            dataset.datasetType.name,
            dataset.name,
            datafile.name,
        )
    )


def storage_url(root: str, location: str, *, prefix: str = "") -> str:
    """Join a storage root (``root://host:port//``), an optional prefix and a location."""
    if ".." in location.split("/"):
        raise ValueError(f"unsafe location {location!r}")
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
