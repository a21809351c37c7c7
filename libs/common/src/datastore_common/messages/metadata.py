"""What an archive request names: ICAT entities, shaped as in ICAT (and the seed's JSON).

Used by the gateway's HTTP body and by instruments publishing ``archive.requested`` directly,
so the same rules hold for both: names are safe path components, nothing is listed twice,
and every dataset has files.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _safe_name(value: str) -> str:
    if value in {".", ".."} or "/" in value or "\\" in value or "\x00" in value:
        raise ValueError("must not contain '/', '\\', NUL or be '.' or '..'")
    if ".." in value:
        raise ValueError("must not contain '..'")
    if value != value.strip():
        raise ValueError("must not start or end with white space")
    return value


SafeName = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_safe_name)]


class _Entity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NamedRef(_Entity):
    """A reference to an existing ICAT entity by its name within the facility."""

    name: SafeName


class DatafileFormatRef(_Entity):
    name: str = Field(min_length=1, max_length=255)
    version: str = Field(min_length=1, max_length=255)


class DatafileSpec(_Entity):
    name: SafeName
    description: str | None = Field(default=None, max_length=255)
    doi: str | None = Field(default=None, max_length=255)
    fileSize: int | None = Field(default=None, ge=0)
    checksum: str | None = Field(default=None, max_length=255)
    datafileCreateTime: datetime | None = None
    datafileModTime: datetime | None = None
    datafileFormat: DatafileFormatRef | None = None


class DatasetSpec(_Entity):
    name: SafeName
    complete: bool = False
    description: str | None = Field(default=None, max_length=255)
    doi: str | None = Field(default=None, max_length=255)
    location: str | None = Field(default=None, max_length=255)
    startDate: datetime | None = None
    endDate: datetime | None = None
    datasetType: NamedRef
    datafiles: list[DatafileSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_datafiles(self) -> DatasetSpec:
        _reject_duplicates((f.name for f in self.datafiles), f"datafile in dataset {self.name!r}")
        return self


class InvestigationSpec(_Entity):
    facility: NamedRef
    investigationType: NamedRef
    instrument: NamedRef
    facilityCycle: NamedRef
    name: SafeName
    visitId: SafeName
    title: str = Field(min_length=1, max_length=255)
    summary: str | None = Field(default=None, max_length=4000)
    doi: str | None = Field(default=None, max_length=255)
    startDate: datetime | None = None
    endDate: datetime | None = None
    releaseDate: datetime | None = None
    datasets: list[DatasetSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_datasets(self) -> InvestigationSpec:
        _reject_duplicates(
            (d.name for d in self.datasets),
            f"dataset in investigation {self.name}-{self.visitId}",
        )
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.facility.name, self.name, self.visitId)


def _reject_duplicates(names: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what}: {name!r}")
        seen.add(name)


def check_unique_investigations(investigations: list[InvestigationSpec]) -> None:
    """The same investigation twice in one request is ambiguous: refuse it."""
    seen: set[tuple[str, str, str]] = set()
    for inv in investigations:
        if inv.key in seen:
            raise ValueError(f"duplicate investigation: {inv.name}-{inv.visitId}")
        seen.add(inv.key)
