"""Small archive requests and ICAT records for the domain's table-driven tests (plain data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from datastore_common.domain.plan import plan_archive
from datastore_common.messages import InvestigationSpec, PlannedJob
from tests.support.factories import seed_investigation

IDC = "root://idc:1094//"
TAPE = "root://tape:1094//"
TAPE_ROOT = "archive/"
VO = "test-vo"
ENDPOINT = "https://fts.test:8446/"


def investigation(
    *datasets: list[str], name: str = "ABC", checksum: str | None = None, size: int | None = None
) -> InvestigationSpec:
    """The seed investigation with one dataset ``scan_<i>`` per list of datafile names."""
    return seed_investigation(
        name,
        datasets={f"scan_{index}": files for index, files in enumerate(datasets)},
        file_size=size,
        checksum=checksum,
    )


def plan(
    investigations: list[InvestigationSpec], request_id: str = "req-1", per_job: int = 100
) -> list[PlannedJob]:
    return plan_archive(
        request_id,
        investigations,
        instrument_data_cache=IDC,
        tape_archive=TAPE,
        tape_root_dir=TAPE_ROOT,
        vo=VO,
        max_files_per_job=per_job,
    )


@dataclass(frozen=True)
class Stored:
    """A source as the cache describes it."""

    size: int
    checksum: str


@dataclass(frozen=True)
class Dataset:
    """A Dataset as ICAT records it."""

    dataset_id: int
    archival: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Datafile:
    """A Datafile as ICAT records it."""

    datafile_id: int
    dataset_id: int = 7
    archival: Mapping[str, str] = field(default_factory=dict)
