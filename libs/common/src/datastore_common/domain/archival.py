"""How archival is recorded in ICAT: the parameter types on Dataset and Datafile, the
catalogue's records with their values, and the jobs those records show still in flight."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from datastore_common.domain.states import FailureClass, is_terminal

#: STRING parameters on Dataset and Datafile (ParameterType.units is mandatory in ICAT).
ARCHIVAL_STATE: Final = "Archival state"  # SUBMITTED, then FTS states
ARCHIVAL_IDS: Final = "Archival ids"  # comma-joined FTS job ids (provenance, kept for good)
ARCHIVAL_ENDPOINT: Final = "Archival endpoint"  # the FTS endpoint that ran the jobs
ARCHIVAL_FAILURE: Final = "Archival failure"  # "<user|system> error: <reason>" when FAILED
DELETION_DATE: Final = "Deletion date"  # ISO date an admin set (the original's later API)
PARAMETER_UNITS: Final = "N/A"
ARCHIVAL_PARAMETERS: Final = (
    ARCHIVAL_STATE,
    ARCHIVAL_IDS,
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_FAILURE,
    DELETION_DATE,
)


def join_job_ids(job_ids: list[str] | tuple[str, ...]) -> str:
    return ",".join(dict.fromkeys(job_ids))


def split_job_ids(value: str | None) -> list[str]:
    """The job ids of an "Archival ids" value: ours and the original Datastore API's are
    both comma-joined (``",".join``); blanks around an id and empty parts (the original
    creates the parameter as "" before it submits) are dropped."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def failure_text(failure_class: str, reason: str) -> str:
    return f"{failure_class} error: {reason}"[:255]


def parse_failure(text: str) -> tuple[FailureClass, str]:
    """The class and reason of an "Archival failure" (``failure_text``'s inverse); a text
    another tool wrote is a system error."""
    if text.startswith("user error: "):
        return "user", text.removeprefix("user error: ")
    return "system", text.removeprefix("system error: ")


@dataclass(frozen=True)
class CatalogueInvestigation:
    """An Investigation in ICAT; ``dataset_states``: the "Archival state" of each of its
    datasets that records one (what a look-up by name shows)."""

    investigation_id: int
    name: str
    visit_id: str
    title: str | None = None
    dataset_states: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogueDataset:
    """A Dataset in ICAT with its archival parameters (name -> value, only those present)."""

    dataset_id: int
    investigation_id: int
    name: str
    archival: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CatalogueDatafile:
    """A Datafile in ICAT with its archival parameters (name -> value, only those present)."""

    datafile_id: int
    dataset_id: int
    name: str
    location: str | None
    file_size: int | None
    checksum: str | None
    archival: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ArchivalRecords:
    """What ICAT records of the archival of some datasets: the datasets, and every datafile
    of theirs with its archival parameters."""

    datasets: tuple[CatalogueDataset, ...]
    datafiles: tuple[CatalogueDatafile, ...]


@dataclass(frozen=True)
class ArchivalJob:
    """An FTS job ICAT still records as in flight, with its datafiles not yet terminal."""

    job_id: str
    endpoint: str | None
    datafiles: tuple[CatalogueDatafile, ...]


def active_jobs_of(
    datafiles: Sequence[CatalogueDatafile],
    datasets: Mapping[int, Mapping[str, str]] | None = None,
) -> list[ArchivalJob]:
    """Group the datafiles whose "Archival state" is not terminal by the job ids they record.

    A datafile recording no "Archival ids" of its own takes its dataset's (``datasets``: the
    archival parameters by dataset id): the original Datastore API recorded job ids on the
    Dataset only, so a dataset it left in flight is adopted with each of its non-terminal
    datafiles in each of its jobs (which file is in which job is not recorded; FTS's answer
    names them). Its endpoint likewise falls back to the dataset's, else the settings'."""
    datasets = datasets or {}
    jobs: dict[str, list[CatalogueDatafile]] = {}
    endpoints: dict[str, str | None] = {}
    for datafile in datafiles:
        state = datafile.archival.get(ARCHIVAL_STATE)
        if state is None or is_terminal(state):
            continue
        archival: Mapping[str, str] = datafile.archival
        if not split_job_ids(archival.get(ARCHIVAL_IDS)):
            archival = datasets.get(datafile.dataset_id, {})
        for job_id in split_job_ids(archival.get(ARCHIVAL_IDS)):
            jobs.setdefault(job_id, []).append(datafile)
            endpoints.setdefault(job_id, archival.get(ARCHIVAL_ENDPOINT))
    return [ArchivalJob(job_id, endpoints[job_id], tuple(files)) for job_id, files in jobs.items()]
