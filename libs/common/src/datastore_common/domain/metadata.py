"""The rich metadata of an archive request (the original API's later body): which ICAT
entities to create so that every dataset and datafile ends with the parameters, sample,
techniques and instruments it names, and never one twice.

Pure: the adapters (``adapters/icat/metadata.py``, the in-memory fake) read what ICAT holds,
ask these functions what is missing, and create exactly that. A redelivered request finds
everything in place and creates nothing; one interrupted half way creates the rest.

ICAT's keys: DatasetParameter (dataset, type), DatafileParameter (datafile, type),
DatasetTechnique (dataset, technique), DatasetInstrument (dataset, instrument), Sample
(investigation, name). Parameter types, sample types, techniques and instruments are looked up,
never created (as in the original): the gateway refuses unknown ones with a 422 first.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

from datastore_common.messages import DatafileSpec, DatasetSpec, ParameterSpec, SampleSpec

K = TypeVar("K", bound=Hashable)
TypeKey = tuple[str, str]  # a ParameterType's (name, units)
#: The entities a request's parameters go on ({entity}Parameter in ICAT).
ParameterOwner = Literal["Dataset", "Datafile", "Sample"]

#: The value fields of a parameter ICAT stores, in the order they are written.
PARAMETER_FIELDS = (
    "stringValue",
    "numericValue",
    "dateTimeValue",
    "error",
    "rangeBottom",
    "rangeTop",
)


def missing_links(
    wanted: Iterable[tuple[int, K]], existing: Iterable[tuple[int, K]]
) -> list[tuple[int, K]]:
    """The (owner id, key) pairs of ``wanted`` not in ``existing``, in order, each once."""
    seen = set(existing)
    missing = []
    for link in wanted:
        if link not in seen:
            seen.add(link)
            missing.append(link)
    return missing


def parameter_values(parameter: ParameterSpec) -> dict[str, str | float | datetime]:
    """The fields of the ICAT parameter: its one value and, for a number, its error and range."""
    values = {name: getattr(parameter, name) for name in PARAMETER_FIELDS}
    return {name: value for name, value in values.items() if value is not None}


def wanted_parameters(
    specs: Mapping[int, DatasetSpec] | Mapping[int, DatafileSpec] | Mapping[int, SampleSpec],
) -> dict[tuple[int, TypeKey], ParameterSpec]:
    """Every parameter asked for, by (owner id, type key)."""
    return {
        (owner_id, parameter.type_key): parameter
        for owner_id, spec in specs.items()
        for parameter in spec.parameters
    }


@dataclass(frozen=True)
class DatasetLinks:
    """What a set of datasets asks for beyond their own fields."""

    techniques: list[tuple[int, str]]  # (dataset id, technique name)
    instruments: list[tuple[int, str]]  # (dataset id, instrument name)
    samples: dict[int, str]  # dataset id -> sample name (in the dataset's investigation)


def dataset_links(specs: Mapping[int, DatasetSpec]) -> DatasetLinks:
    return DatasetLinks(
        techniques=[(i, t.name) for i, s in specs.items() for t in s.datasetTechniques],
        instruments=[(i, n.name) for i, s in specs.items() for n in s.datasetInstruments],
        samples={i: s.sample.name for i, s in specs.items() if s.sample is not None},
    )


def samples_by_name(specs: Mapping[int, DatasetSpec]) -> dict[str, SampleSpec]:
    """The samples the datasets name, one per name (ICAT's key in an investigation): the first
    dataset naming it describes it."""
    found: dict[str, SampleSpec] = {}
    for spec in specs.values():
        if spec.sample is not None:
            found.setdefault(spec.sample.name, spec.sample)
    return found


def samples_to_set(wanted: Mapping[int, str], with_sample: Iterable[int]) -> dict[int, str]:
    """Datasets to link to their sample: those asking for one that have none yet (a sample
    already set, by an earlier delivery or by hand, is left as it is)."""
    already = set(with_sample)
    return {dataset_id: name for dataset_id, name in wanted.items() if dataset_id not in already}


def has_dataset_metadata(spec: DatasetSpec) -> bool:
    """Whether the dataset itself asks for more than its own fields (its datafiles aside)."""
    return bool(spec.parameters or spec.sample or spec.datasetTechniques or spec.datasetInstruments)
