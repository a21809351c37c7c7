"""The seed workflow's archive request (shared/design/seed-workflow.md), built for tests.

``seed_body()`` is the POST /archive body as a dict for HTTP; with no arguments it is the
seed's body verbatim (tests/unit/gateway/seed_archive_body.json, which the unit tests pin it
to). ``seed_investigation()`` is one investigation of that body as the pydantic spec the
workers get, under a unique name unless given one (the ICAT emulator is shared by a whole
test session).

The arguments change what a test needs and nothing else: the investigation's name and visit
id, its datasets (a count, named ``scan_0000``, ``scan_0001``, ...; or names, each with a
count of datafiles or the datafiles' names), the datafiles per dataset (``file_0000.nxs``,
...), the size and checksum every datafile claims, and any other investigation field
(``**changes``, e.g. ``title="T"``, or a field the API does not know, to see it refused).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from datastore_common.messages import InvestigationSpec

#: Every date of the seed body.
SEED_TIME = "2024-06-05T10:53:29.501Z"

#: A dataset's datafiles: how many (``file_0000.nxs``, ...), or their names.
Files = int | Sequence[str]


def file_names(files: Files) -> list[str]:
    """``file_0000.nxs``, ``file_0001.nxs``, ... for a count; the names themselves else."""
    if isinstance(files, int):
        return [f"file_{index:04d}.nxs" for index in range(files)]
    return list(files)


def spread_files(count: int, *, datasets: int = 1) -> dict[str, list[str]]:
    """``count`` datafiles ``file_00000.nxs``, ... spread over ``datasets`` datasets
    ``scan_0000``, ... in order, as evenly as whole datasets allow (a ``datasets`` layout)."""
    per_dataset = -(-count // datasets)
    return {
        f"scan_{d:04d}": [
            f"file_{i:05d}.nxs" for i in range(d * per_dataset, min(count, (d + 1) * per_dataset))
        ]
        for d in range(datasets)
    }


def _datafile(name: str, file_size: int | None, checksum: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "description": "Description",
        "doi": "10.00000/00000",
        "fileSize": file_size,
        "checksum": checksum,
        "datafileCreateTime": SEED_TIME,
        "datafileModTime": SEED_TIME,
    }


def _dataset(name: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "complete": True,
        "description": "Description",
        "doi": "10.00000/00000",
        "location": "string",
        "startDate": SEED_TIME,
        "endDate": SEED_TIME,
        "datasetType": {"name": "scan"},
        "datafiles": files,
    }


def seed_body(
    name: str = "ABC123",
    visit_id: str = "1",
    *,
    datasets: int | Mapping[str, Files] = 1,
    files: int = 4,
    file_size: int | None = 0,
    checksum: str | None = "string",
    **changes: Any,
) -> dict[str, Any]:
    """The seed's POST /archive body: one investigation ``name``-``visit_id`` with
    ``datasets`` (a count of datasets with ``files`` datafiles each, or {name: datafiles}),
    every datafile claiming ``file_size`` and ``checksum``; ``changes`` replace (or add)
    fields of the investigation."""
    layout: Mapping[str, Files] = (
        {f"scan_{d:04d}": files for d in range(datasets)} if isinstance(datasets, int) else datasets
    )
    investigation: dict[str, Any] = {
        "facility": {"name": "facility"},
        "investigationType": {"name": "type"},
        "instrument": {"name": "instrument"},
        "facilityCycle": {"name": "20XX"},
        "datasets": [
            _dataset(dataset, [_datafile(f, file_size, checksum) for f in file_names(names)])
            for dataset, names in layout.items()
        ],
        "name": name,
        "visitId": visit_id,
        "title": "Title",
        "summary": "Summary",
        "doi": "10.00000/00000",
        "startDate": SEED_TIME,
        "endDate": SEED_TIME,
        "releaseDate": SEED_TIME,
    }
    investigation.update(changes)
    return {"investigations": [investigation]}


def unique_investigation_name(prefix: str = "ABC") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def seed_investigation(
    name: str | None = None,
    visit_id: str = "1",
    *,
    datasets: int | Mapping[str, Files] = 1,
    files: int = 4,
    file_size: int | None = 0,
    checksum: str | None = "string",
    **changes: Any,
) -> InvestigationSpec:
    """The investigation of ``seed_body(...)`` as the validated spec, named ``ABC-<random>``
    unless ``name`` is given."""
    body = seed_body(
        name or unique_investigation_name(),
        visit_id,
        datasets=datasets,
        files=files,
        file_size=file_size,
        checksum=checksum,
        **changes,
    )
    return InvestigationSpec.model_validate(body["investigations"][0])


#: Reference entities the rich metadata of ``with_rich_metadata`` names (FakeVocabulary and
#: FakeCatalogue know them when given these; ICAT must hold them for the real thing).
RICH_PARAMETER_TYPES = {("temperature", "K"), ("run_number", "N/A"), ("start_time", "N/A")}
RICH_SAMPLE_TYPES = {("crystal", "NaCl")}
RICH_TECHNIQUES = {"diffraction"}


def with_rich_metadata(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (a seed body) with the original API's later metadata on its first dataset and
    first datafile: parameters of each value kind, a sample with a parameter, a technique, an
    instrument."""
    dataset = body["investigations"][0]["datasets"][0]
    dataset["parameters"] = [
        {
            "parameter_type": {"name": "temperature", "units": "K"},
            "numericValue": 4.2,
            "error": 0.1,
        },
        {"parameter_type": {"name": "start_time", "units": "N/A"}, "dateTimeValue": SEED_TIME},
    ]
    dataset["sample"] = {
        "name": "sample_1",
        "sample_type": {"name": "crystal", "molecularFormula": "NaCl"},
        "parameters": [
            {"parameter_type": {"name": "temperature", "units": "K"}, "numericValue": 293.0}
        ],
    }
    dataset["datasetTechniques"] = [{"name": "diffraction"}]
    dataset["datasetInstruments"] = [{"name": "instrument"}]
    dataset["datafiles"][0]["parameters"] = [
        {"parameter_type": {"name": "run_number", "units": "N/A"}, "stringValue": "r-0001"}
    ]
    return body
