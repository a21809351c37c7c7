"""An in-memory ``Catalogue`` with ICAT's semantics: uniqueness keys, references that must
exist, archival parameters per entity. Tests assert on its state and on ``writes``."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from datastore_common.domain.archival import (
    ARCHIVAL_IDS,
    ARCHIVAL_PARAMETERS,
    ARCHIVAL_STATE,
    ArchivalJob,
    CatalogueDatafile,
    CatalogueDataset,
    active_jobs_of,
)
from datastore_common.domain.embargo import release_date
from datastore_common.domain.metadata import (
    ParameterOwner,
    TypeKey,
    dataset_links,
    has_dataset_metadata,
    missing_links,
    samples_by_name,
    samples_to_set,
    wanted_parameters,
)
from datastore_common.domain.states import FINISHED
from datastore_common.errors import InvalidRequestError, NotFoundError
from datastore_common.messages import (
    DatafileKey,
    DatafileSpec,
    DatasetSpec,
    InvestigationSpec,
    ParameterSpec,
    SampleSpec,
)
from datastore_common.ports import ArchivalEntity, Catalogue, NewDatafile


@dataclass
class FakeInvestigation:
    id: int
    spec: InvestigationSpec
    instruments: set[str] = field(default_factory=set)
    facility_cycles: set[str] = field(default_factory=set)
    file_size: int | None = None
    file_count: int | None = None
    release_date: datetime | None = None


@dataclass
class FakeDataset:
    id: int
    investigation_id: int
    spec: DatasetSpec
    file_size: int | None = None
    file_count: int | None = None
    sample_id: int | None = None
    techniques: set[str] = field(default_factory=set)
    instruments: set[str] = field(default_factory=set)


@dataclass
class FakeSample:
    id: int
    investigation_id: int
    name: str
    sample_type: tuple[str, str]  # (name, molecularFormula)


@dataclass
class FakeDatafile:
    id: int
    dataset_id: int
    name: str
    location: str | None
    file_size: int | None
    checksum: str | None


class FakeCatalogue(Catalogue):
    """Reference entities are the seed's unless given; ``fail_with`` makes every call raise."""

    def __init__(
        self,
        *,
        facility: str = "facility",
        instruments: Collection[str] = ("instrument",),
        investigation_types: Collection[str] = ("type",),
        facility_cycles: Collection[str] = ("20XX",),
        dataset_types: Collection[str] = ("scan",),
        datafile_formats: Collection[tuple[str, str]] = (("nexus", "3"),),
        embargo_years: int = 2,
        embargo_types: Collection[str] = (),
        today: datetime | None = None,
        parameter_types: Collection[tuple[str, str]] = (),
        sample_types: Collection[tuple[str, str]] = (),
        techniques: Collection[str] = (),
    ) -> None:
        self.facility = facility
        self._embargo_years = embargo_years
        self._embargo_types = frozenset(embargo_types)
        self._today = today  # None: the real date, as the ICAT adapter uses
        self._references = {
            "Instrument": set(instruments),
            "InvestigationType": set(investigation_types),
            "FacilityCycle": set(facility_cycles),
            "DatasetType": set(dataset_types),
        }
        self._datafile_formats = set(datafile_formats)
        self._parameter_types = set(parameter_types)
        self._sample_types = set(sample_types)
        self._techniques = set(techniques)
        #: The request's own parameters (not the archival ones) by entity, id and type key.
        self.metadata: dict[tuple[ParameterOwner, int], dict[TypeKey, ParameterSpec]] = {}
        self.samples: dict[int, FakeSample] = {}
        self._ids = itertools.count(1)
        self.investigations: dict[int, FakeInvestigation] = {}
        self.datasets: dict[int, FakeDataset] = {}
        self.datafiles: dict[int, FakeDatafile] = {}
        self.parameters: dict[tuple[ArchivalEntity, int], dict[str, str]] = {}
        self.writes = 0  # creates, updates and deletes, as ICAT would count them
        self.fail_with: Exception | None = None
        #: Archival parameters someone other than the functional account wrote last (ICAT's
        #: ``modId``): ``write_by_hand`` adds, ``set_archival`` takes them back.
        self.written_by_others: set[tuple[ArchivalEntity, int, str]] = set()

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def _io(self) -> None:
        """Give other tasks a turn, as a real ICAT call would: concurrent handlers interleave."""
        self._check()
        await asyncio.sleep(0)

    def _reference(self, bean: str, name: str) -> None:
        if name not in self._references[bean]:
            raise NotFoundError(f"{bean} with name={name!r} not found in facility")

    # ------------------------------------------------------------ get-or-create

    async def ensure_investigation(self, investigation: InvestigationSpec) -> int:
        await self._io()
        if investigation.facility.name != self.facility:
            raise InvalidRequestError(
                f"investigation names facility {investigation.facility.name!r}; "
                f"this Datastore serves {self.facility!r}"
            )
        self._reference("InvestigationType", investigation.investigationType.name)
        self._reference("Instrument", investigation.instrument.name)
        self._reference("FacilityCycle", investigation.facilityCycle.name)
        found = next(
            (
                inv
                for inv in self.investigations.values()
                if (inv.spec.name, inv.spec.visitId) == (investigation.name, investigation.visitId)
            ),
            None,
        )
        if found is None:
            released = release_date(
                investigation,
                embargo_years=self._embargo_years,
                embargo_types=self._embargo_types,
                today=self._today or datetime.now(UTC),
            )
            found = FakeInvestigation(next(self._ids), investigation, release_date=released)
            self.investigations[found.id] = found
            self.writes += 1
        for links, name in (
            (found.instruments, investigation.instrument.name),
            (found.facility_cycles, investigation.facilityCycle.name),
        ):
            if name not in links:
                links.add(name)
                self.writes += 1
        return found.id

    async def ensure_datasets(
        self, investigation_id: int, datasets: Sequence[DatasetSpec]
    ) -> dict[str, CatalogueDataset]:
        await self._io()
        if investigation_id not in self.investigations:
            raise NotFoundError(f"Investigation[id:{investigation_id}] not found.")
        # The new ones go in at once (createMany) or not at all: their types are checked first.
        existing = {
            d.spec.name for d in self.datasets.values() if d.investigation_id == investigation_id
        }
        for spec in datasets:
            if spec.name not in existing:
                self._reference("DatasetType", spec.datasetType.name)
        result = {}
        for spec in datasets:
            found = next(
                (
                    d
                    for d in self.datasets.values()
                    if (d.investigation_id, d.spec.name) == (investigation_id, spec.name)
                ),
                None,
            )
            if found is None:
                found = FakeDataset(next(self._ids), investigation_id, spec)
                self.datasets[found.id] = found
                self.writes += 1
            result[spec.name] = self._dataset_record(found)
        rich = {result[s.name].dataset_id: s for s in datasets if has_dataset_metadata(s)}
        if rich:
            self._write_parameters("Dataset", rich)
            self._write_dataset_links(investigation_id, rich)
        await asyncio.sleep(0)  # the answer travels back: others may write meanwhile
        return result

    async def ensure_datafiles(
        self, dataset_id: int, datafiles: Sequence[NewDatafile]
    ) -> dict[str, CatalogueDatafile]:
        self._check()
        if dataset_id not in self.datasets:
            raise NotFoundError(f"Dataset[id:{dataset_id}] not found.")
        # The new ones go in at once (createMany) or not at all, before any existing one is
        # updated: their formats (looked up for new datafiles only) are checked first.
        existing = {d.name for d in self.datafiles.values() if d.dataset_id == dataset_id}
        for item in datafiles:
            form = item.spec.datafileFormat
            if item.spec.name in existing or form is None:
                continue
            if (form.name, form.version) not in self._datafile_formats:
                raise NotFoundError(
                    f"DatafileFormat with name={form.name!r}, version={form.version!r} "
                    f"not found in facility {self.facility!r}"
                )
        result = {}
        for item in datafiles:
            found = next(
                (
                    d
                    for d in self.datafiles.values()
                    if (d.dataset_id, d.name) == (dataset_id, item.spec.name)
                ),
                None,
            )
            if found is None:
                found = FakeDatafile(
                    next(self._ids),
                    dataset_id,
                    item.spec.name,
                    item.location,
                    item.file_size,
                    item.checksum,
                )
                self.datafiles[found.id] = found
                self.writes += 1
            else:
                changed = False
                for attribute, value in (
                    ("location", item.location),
                    ("file_size", item.file_size),
                    ("checksum", item.checksum),
                ):
                    if value is not None and getattr(found, attribute) != value:
                        setattr(found, attribute, value)
                        changed = True
                self.writes += changed
            result[item.spec.name] = self._datafile_record(found)
        with_parameters = {
            result[i.spec.name].datafile_id: i.spec for i in datafiles if i.spec.parameters
        }
        if with_parameters:
            self._write_parameters("Datafile", with_parameters)
        return result

    # ------------------------------------------------------------ rich metadata

    def _write_parameters(
        self,
        entity: ParameterOwner,
        specs: Mapping[int, DatasetSpec] | Mapping[int, DatafileSpec] | Mapping[int, SampleSpec],
    ) -> None:
        wanted = wanted_parameters(specs)
        # Types are looked up, never created: all are checked before any parameter is written.
        for type_key in sorted({key for _, key in wanted}):
            if type_key not in self._parameter_types:
                raise NotFoundError(
                    f"ParameterType with name={type_key[0]!r}, units={type_key[1]!r} not found "
                    f"in facility {self.facility!r}"
                )
        existing = [
            (i, key) for (e, i), found in self.metadata.items() if e == entity for key in found
        ]
        for owner_id, type_key in missing_links(wanted, existing):
            self.metadata.setdefault((entity, owner_id), {})[type_key] = wanted[
                (owner_id, type_key)
            ]
            self.writes += 1

    def _write_dataset_links(self, investigation_id: int, specs: Mapping[int, DatasetSpec]) -> None:
        links = dataset_links(specs)
        for name in sorted({n for _, n in links.techniques}):
            if name not in self._techniques:
                raise NotFoundError(f"Technique with name={name!r} not found")
        for name in sorted({n for _, n in links.instruments}):
            self._reference("Instrument", name)
        for spec in specs.values():
            if spec.sample is not None:
                kind = spec.sample.sample_type
                if (kind.name, kind.molecularFormula) not in self._sample_types:
                    raise NotFoundError(
                        f"SampleType with name={kind.name!r}, molecularFormula="
                        f"{kind.molecularFormula!r} not found in facility {self.facility!r}"
                    )
        for attribute, wanted in (
            ("techniques", links.techniques),
            ("instruments", links.instruments),
        ):
            existing = [(d, name) for d in specs for name in getattr(self.datasets[d], attribute)]
            for dataset_id, name in missing_links(wanted, existing):
                getattr(self.datasets[dataset_id], attribute).add(name)
                self.writes += 1
        if not links.samples:
            return
        by_name = samples_by_name(specs)
        samples = {name: self._sample(investigation_id, spec) for name, spec in by_name.items()}
        with_parameters = {samples[n].id: spec for n, spec in by_name.items() if spec.parameters}
        if with_parameters:
            self._write_parameters("Sample", with_parameters)
        with_sample = [d for d in links.samples if self.datasets[d].sample_id is not None]
        for dataset_id, name in samples_to_set(links.samples, with_sample).items():
            self.datasets[dataset_id].sample_id = samples[name].id
            self.writes += 1

    def _sample(self, investigation_id: int, spec: SampleSpec) -> FakeSample:
        """The investigation's sample of that name, created when missing (ICAT's key)."""
        for sample in self.samples.values():
            if (sample.investigation_id, sample.name) == (investigation_id, spec.name):
                return sample
        kind = spec.sample_type
        created = FakeSample(
            next(self._ids), investigation_id, spec.name, (kind.name, kind.molecularFormula)
        )
        self.samples[created.id] = created
        self.writes += 1
        return created

    # ------------------------------------------------------------ reads

    def archival(self, entity: ArchivalEntity, entity_id: int) -> dict[str, str]:
        return dict(self.parameters.get((entity, entity_id), {}))

    def _dataset_record(self, dataset: FakeDataset) -> CatalogueDataset:
        return CatalogueDataset(
            dataset.id,
            dataset.investigation_id,
            dataset.spec.name,
            self.archival("Dataset", dataset.id),
        )

    def _datafile_record(self, datafile: FakeDatafile) -> CatalogueDatafile:
        return CatalogueDatafile(
            datafile.id,
            datafile.dataset_id,
            datafile.name,
            datafile.location,
            datafile.file_size,
            datafile.checksum,
            self.archival("Datafile", datafile.id),
        )

    async def datafiles_of(self, dataset_ids: Sequence[int]) -> list[CatalogueDatafile]:
        self._check()
        wanted = set(dataset_ids)
        return [self._datafile_record(d) for d in self.datafiles.values() if d.dataset_id in wanted]

    async def datafiles_by_id(self, datafile_ids: Sequence[int]) -> list[CatalogueDatafile]:
        self._check()
        return [
            self._datafile_record(self.datafiles[i]) for i in datafile_ids if i in self.datafiles
        ]

    async def claim_dataset(
        self, dataset_id: int, job_ids: str, *, replacing: str | None = None
    ) -> str | None:
        await self._io()
        if dataset_id not in self.datasets:
            raise NotFoundError(f"Dataset[id:{dataset_id}] not found.")
        parameters = self.parameters.setdefault(("Dataset", dataset_id), {})
        if ARCHIVAL_IDS in parameters and parameters[ARCHIVAL_IDS] != replacing:
            return parameters[ARCHIVAL_IDS]
        parameters[ARCHIVAL_IDS] = job_ids
        self.writes += 1
        return None

    async def find_datafiles(self, keys: Sequence[DatafileKey]) -> dict[DatafileKey, int]:
        self._check()
        found: dict[DatafileKey, int] = {}
        for key in keys:
            for datafile in self.datafiles.values():
                dataset = self.datasets[datafile.dataset_id]
                investigation = self.investigations[dataset.investigation_id].spec
                names = (investigation.name, investigation.visitId, dataset.spec.name)
                if (*names, datafile.name) == (
                    key.investigation,
                    key.visit_id,
                    key.dataset,
                    key.datafile,
                ):
                    found[key] = datafile.id
        return found

    async def datasets_by_id(self, dataset_ids: Sequence[int]) -> list[CatalogueDataset]:
        self._check()
        return [self._dataset_record(self.datasets[i]) for i in dataset_ids if i in self.datasets]

    # ------------------------------------------------------------ writes

    async def set_archival(
        self, entity: ArchivalEntity, values: Mapping[int, Mapping[str, str | None]]
    ) -> int:
        self._check()
        unknown = {n for v in values.values() for n in v} - set(ARCHIVAL_PARAMETERS)
        if unknown:
            raise ValueError(f"not archival parameters: {sorted(unknown)}")
        table = self.datasets if entity == "Dataset" else self.datafiles
        # ICAT writes all of them (createMany, deleteMany) or none: the ids are checked first.
        for entity_id in values:
            if entity_id not in table:
                raise NotFoundError(f"{entity}[id:{entity_id}] not found.")
        written = 0
        for entity_id, wanted in values.items():
            current = self.parameters.setdefault((entity, entity_id), {})
            for name, value in wanted.items():
                self.written_by_others.discard((entity, entity_id, name))
                if value is None:
                    written += current.pop(name, None) is not None
                elif current.get(name) != value:
                    current[name] = value
                    written += 1
        self.writes += written
        return written

    async def update_totals(self, dataset_ids: Sequence[int]) -> None:
        self._check()
        investigation_ids = set()
        for dataset_id in dataset_ids:
            dataset = self.datasets[dataset_id]
            files = [d for d in self.datafiles.values() if d.dataset_id == dataset_id]
            self._set_totals(dataset, files)
            investigation_ids.add(dataset.investigation_id)
        for investigation_id in investigation_ids:
            mine = {d.id for d in self.datasets.values() if d.investigation_id == investigation_id}
            files = [d for d in self.datafiles.values() if d.dataset_id in mine]
            self._set_totals(self.investigations[investigation_id], files)

    def _set_totals(
        self, entity: FakeDataset | FakeInvestigation, files: Sequence[FakeDatafile]
    ) -> None:
        count, size = len(files), sum(f.file_size or 0 for f in files)
        if (entity.file_count, entity.file_size) != (count, size):
            entity.file_count, entity.file_size = count, size
            self.writes += 1

    async def active_archival_jobs(self) -> list[ArchivalJob]:
        self._check()
        datafiles = [
            self._datafile_record(d)
            for d in self.datafiles.values()
            if ARCHIVAL_STATE in self.parameters.get(("Datafile", d.id), {})
        ]
        datasets = {
            d.dataset_id: dict(self.parameters.get(("Dataset", d.dataset_id), {}))
            for d in datafiles
        }
        return active_jobs_of(datafiles, datasets)

    async def archived_datafiles(
        self, *, under: str = "", after: int = 0, limit: int = 1000
    ) -> list[CatalogueDatafile]:
        self._check()
        folder = under.strip("/") + "/" if under.strip("/") else ""
        found = [
            self._datafile_record(d)
            for d in sorted(self.datafiles.values(), key=lambda d: d.id)
            if d.id > after
            and self.parameters.get(("Datafile", d.id), {}).get(ARCHIVAL_STATE) == FINISHED
            and ("Datafile", d.id, ARCHIVAL_STATE) not in self.written_by_others
            and (d.location or "").startswith(folder)
        ]
        return found[:limit]

    # ------------------------------------------------------------ test helpers

    def write_by_hand(self, entity: ArchivalEntity, entity_id: int, name: str, value: str) -> None:
        """An archival parameter written by someone else than the functional account."""
        self.parameters.setdefault((entity, entity_id), {})[name] = value
        self.written_by_others.add((entity, entity_id, name))

    def find_dataset(self, investigation: str, dataset: str) -> FakeDataset:
        [found] = [
            d
            for d in self.datasets.values()
            if d.spec.name == dataset
            and self.investigations[d.investigation_id].spec.name == investigation
        ]
        return found

    def datafiles_in(self, dataset_id: int) -> dict[str, FakeDatafile]:
        return {d.name: d for d in self.datafiles.values() if d.dataset_id == dataset_id}
