"""What an archive request names: ICAT entities, shaped as in ICAT (and the seed's JSON).

Used by the gateway's HTTP body and by instruments publishing ``archive.requested`` directly,
so the same rules hold for both: names are safe path components, nothing is listed twice,
and every dataset has files.

Every name that becomes a path component (instrument, facility cycle, investigation name and
visit id, dataset type, dataset and datafile names) is a *safe name*: ASCII letters, digits
and ``. _ + -`` only, never ``.`` or ``..`` nor containing ``..``, so it means the same on
XRootD, in an FTS URL, in ICAT and on any file system (no ``?``, ``#``, ``%``, space, control
or invisible character, no look-alike letter). A visit id has no ``-`` either: the
investigation's folder is ``{name}-{visitId}`` (the seed's layout), which then splits at its
last ``-`` into one name and one visit id only, so (``ABC``, ``1-2``) and (``ABC-1``, ``2``)
can never share a folder. Other names (facility, investigation type, datafile format) only have
to be printable text; ICAT must know them all (the gateway asks).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from datastore_common.domain.archival import ARCHIVAL_PARAMETERS

#: The characters of a safe name (a whole-name match; ``.``/``..`` and ``..`` are refused too).
SAFE_NAME_PATTERN = r"^[A-Za-z0-9._+-]+$"
SAFE_NAME_RULE = (
    "a safe name: 1 to 255 of the ASCII letters A-Z a-z, digits 0-9 and the characters "
    "'.', '_', '+', '-' (pattern ^[A-Za-z0-9._+-]+$); not '.' or '..' and no '..' inside"
)
_SAFE_NAME = re.compile(r"[A-Za-z0-9._+-]+")
#: A visit id: a safe name without '-' (the folder ``{name}-{visitId}`` splits at its last '-').
VISIT_ID_PATTERN = r"^[A-Za-z0-9._+]+$"
VISIT_ID_RULE = (
    "a safe name without '-': 1 to 255 of the ASCII letters A-Z a-z, digits 0-9 and the "
    "characters '.', '_', '+' (pattern ^[A-Za-z0-9._+]+$); not '.' or '..' and no '..' inside. "
    "The investigation's folder is '{name}-{visitId}' and must split at its last '-' into one "
    "name and one visitId only, so that e.g. ('ABC', '1-2') and ('ABC-1', '2') cannot share "
    "a folder"
)

#: Unicode categories never allowed in any name: control, format (zero-width and direction
#: marks), surrogate, private use, unassigned, line and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def check_safe_name(value: str, what: str = "name") -> str:
    """``value`` if it is a safe name (:data:`SAFE_NAME_RULE`); else ValueError naming
    ``what`` (the field), the value and the rule."""
    if _SAFE_NAME.fullmatch(value) is None or value in {".", ".."} or ".." in value:
        raise ValueError(f"{what} {value!r} is not {SAFE_NAME_RULE}")
    return value


def check_visit_id(value: str, what: str = "visitId") -> str:
    """``value`` if it is a visit id (:data:`VISIT_ID_RULE`); else ValueError naming ``what``,
    the value and the rule."""
    if "-" in value or _SAFE_NAME.fullmatch(value) is None or value in {".", ".."} or ".." in value:
        raise ValueError(f"{what} {value!r} is not {VISIT_ID_RULE}")
    return value


def check_reference_name(value: str, what: str = "name") -> str:
    """``value`` if it is printable text without control or invisible characters and
    without white space at either end; else ValueError naming ``what`` and the value."""
    bad = next((c for c in value if unicodedata.category(c) in _INVISIBLE_CATEGORIES), None)
    if bad is not None:
        raise ValueError(
            f"{what} {value!r} contains the control or invisible character U+{ord(bad):04X}"
        )
    if value != value.strip():
        raise ValueError(f"{what} {value!r} must not start or end with white space")
    return value


def _safe(what: str) -> Callable[[str], str]:
    return lambda value: check_safe_name(value, what)


def _reference(what: str) -> Callable[[str], str]:
    return lambda value: check_reference_name(value, what)


def _safe_field(what: str, **kwargs: Any) -> Any:
    """The field of a safe name, with the rule in its JSON schema (and the OpenAPI document)."""
    return Field(
        min_length=1,
        max_length=255,
        description=f"The {what}; becomes a path component, so it must be {SAFE_NAME_RULE}.",
        json_schema_extra={"pattern": SAFE_NAME_PATTERN},
        **kwargs,
    )


SafeName = Annotated[str, _safe_field("name"), AfterValidator(_safe("name"))]
InvestigationName = Annotated[
    str,
    _safe_field("investigation name", examples=["ABC123"]),
    AfterValidator(_safe("investigation name")),
]
VisitId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        description=f"The investigation's visitId; becomes part of the path component "
        f"'{{name}}-{{visitId}}', so it must be {VISIT_ID_RULE}.",
        json_schema_extra={"pattern": VISIT_ID_PATTERN},
        examples=["1"],
    ),
    AfterValidator(check_visit_id),
]
DatasetName = Annotated[
    str,
    _safe_field("dataset name", examples=["scan_0000"]),
    AfterValidator(_safe("dataset name")),
]
DatafileName = Annotated[
    str,
    _safe_field("datafile name", examples=["file_0000.nxs"]),
    AfterValidator(_safe("datafile name")),
]
_REFERENCE_RULE = "printable text, no control or invisible characters, no white space at either end"
ReferenceName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        description=f"A name ICAT knows in the facility: {_REFERENCE_RULE}.",
    ),
    AfterValidator(_reference("name")),
]
FormatVersion = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        description=f"The format's version as ICAT knows it: {_REFERENCE_RULE}.",
    ),
    AfterValidator(_reference("version")),
]


class _Entity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NamedRef(_Entity):
    """A reference to an existing ICAT entity by its name within the facility."""

    name: ReferenceName


class PathRef(_Entity):
    """A reference to an existing ICAT entity by its name within the facility, where the name
    is also a path component (instrument, facility cycle, dataset type): a safe name."""

    name: SafeName


class DatafileFormatRef(_Entity):
    name: ReferenceName
    version: FormatVersion


class ParameterTypeRef(_Entity):
    """An existing ParameterType of the facility, by its ICAT key (name and units)."""

    name: ReferenceName
    units: ReferenceName


class ParameterSpec(_Entity):
    """A DatasetParameter or DatafileParameter, as the original API's later versions take it:
    its type (which must exist in ICAT) and exactly one of its three values."""

    parameter_type: ParameterTypeRef
    stringValue: str | None = Field(default=None, max_length=4000)
    numericValue: float | None = Field(default=None, allow_inf_nan=False)
    dateTimeValue: datetime | None = None
    error: float | None = Field(default=None, allow_inf_nan=False)
    rangeBottom: float | None = Field(default=None, allow_inf_nan=False)
    rangeTop: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_value(self) -> ParameterSpec:
        kind = self.parameter_type
        given = [
            name
            for name in ("stringValue", "numericValue", "dateTimeValue")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"parameter {kind.name!r} ({kind.units}) needs exactly one of stringValue, "
                f"numericValue, dateTimeValue; got {given or 'none'}"
            )
        numeric_only = [
            n for n in ("error", "rangeBottom", "rangeTop") if getattr(self, n) is not None
        ]
        if numeric_only and given != ["numericValue"]:
            raise ValueError(
                f"parameter {kind.name!r}: {', '.join(numeric_only)} only go with numericValue"
            )
        if kind.name in ARCHIVAL_PARAMETERS:
            raise ValueError(
                f"parameter {kind.name!r} is Datastore's own (it records archival there): "
                "a request cannot set it"
            )
        return self

    @property
    def type_key(self) -> tuple[str, str]:
        return (self.parameter_type.name, self.parameter_type.units)


def _unique_parameter_types(parameters: Iterable[ParameterSpec], owner: str) -> None:
    """ICAT keeps one parameter per entity and type (DatasetParameter UNIQUE[dataset, type])."""
    _reject_duplicates(
        (f"{p.parameter_type.name} ({p.parameter_type.units})" for p in parameters),
        f"parameter type of {owner}",
    )


class SampleTypeRef(_Entity):
    """An existing SampleType of the facility, by its ICAT key."""

    name: ReferenceName
    molecularFormula: ReferenceName


class SampleSpec(_Entity):
    """The dataset's Sample: found by name in the investigation, created when missing (with
    its SampleType, which must exist), as the original API does."""

    name: str = Field(min_length=1, max_length=255)
    pid: str | None = Field(default=None, max_length=255)
    sample_type: SampleTypeRef
    parameters: list[ParameterSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _printable(self) -> SampleSpec:
        check_reference_name(self.name, "sample name")
        _unique_parameter_types(self.parameters, f"sample {self.name!r}")
        return self


class DatafileSpec(_Entity):
    name: DatafileName
    description: str | None = Field(default=None, max_length=255)
    doi: str | None = Field(default=None, max_length=255)
    fileSize: int | None = Field(default=None, ge=0)
    checksum: str | None = Field(default=None, max_length=255)
    datafileCreateTime: datetime | None = None
    datafileModTime: datetime | None = None
    datafileFormat: DatafileFormatRef | None = None
    parameters: list[ParameterSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_parameters(self) -> DatafileSpec:
        if len(self.parameters) > 1:  # run per datafile: 10,000 of them in a large request
            _unique_parameter_types(self.parameters, f"datafile {self.name!r}")
        return self


class DatasetSpec(_Entity):
    name: DatasetName
    complete: bool = False
    description: str | None = Field(default=None, max_length=255)
    doi: str | None = Field(default=None, max_length=255)
    location: str | None = Field(default=None, max_length=255)
    startDate: datetime | None = None
    endDate: datetime | None = None
    datasetType: PathRef
    datafiles: list[DatafileSpec] = Field(min_length=1)
    parameters: list[ParameterSpec] = Field(default_factory=list)
    sample: SampleSpec | None = None
    datasetTechniques: list[NamedRef] = Field(
        default_factory=list, description="Existing Techniques (by name) the dataset used."
    )
    datasetInstruments: list[NamedRef] = Field(
        default_factory=list,
        description="Existing Instruments of the facility (by name) the dataset came from.",
    )

    @model_validator(mode="after")
    def _unique_datafiles(self) -> DatasetSpec:
        _reject_duplicates((f.name for f in self.datafiles), f"datafile in dataset {self.name!r}")
        _unique_parameter_types(self.parameters, f"dataset {self.name!r}")
        _reject_duplicates(
            (t.name for t in self.datasetTechniques), f"technique of dataset {self.name!r}"
        )
        _reject_duplicates(
            (i.name for i in self.datasetInstruments), f"instrument of dataset {self.name!r}"
        )
        return self


class InvestigationSpec(_Entity):
    facility: NamedRef
    investigationType: NamedRef
    instrument: PathRef
    facilityCycle: PathRef
    name: InvestigationName
    visitId: VisitId
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
