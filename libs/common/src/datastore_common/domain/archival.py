"""How archival is recorded in ICAT: the parameter types on Dataset and Datafile."""

from __future__ import annotations

from typing import Final

#: STRING parameters on Dataset and Datafile (ParameterType.units is mandatory in ICAT).
ARCHIVAL_STATE: Final = "Archival state"  # SUBMITTED, then FTS states
ARCHIVAL_IDS: Final = "Archival ids"  # comma-joined FTS job ids (provenance, kept for good)
ARCHIVAL_ENDPOINT: Final = "Archival endpoint"  # the FTS endpoint that ran the jobs
ARCHIVAL_FAILURE: Final = "Archival failure"  # "<user|system> error: <reason>" when FAILED
PARAMETER_UNITS: Final = "N/A"
ARCHIVAL_PARAMETERS: Final = (ARCHIVAL_STATE, ARCHIVAL_IDS, ARCHIVAL_ENDPOINT, ARCHIVAL_FAILURE)


def join_job_ids(job_ids: list[str] | tuple[str, ...]) -> str:
    return ",".join(dict.fromkeys(job_ids))


def split_job_ids(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]


def failure_text(failure_class: str, reason: str) -> str:
    return f"{failure_class} error: {reason}"[:255]
