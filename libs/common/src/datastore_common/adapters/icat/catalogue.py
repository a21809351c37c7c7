"""``Catalogue`` on ICAT: what the icat-writer registers and the status-poller reads back,
as the functional account, within one facility."""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from datastore_common.adapters.icat.get_or_create import (
    get_or_create,
    get_or_create_many,
    ids_by_name,
)
from datastore_common.adapters.icat.jpql import (
    IN_CHUNK,
    PAGE,
    chunks,
    in_list,
    jpql_literal,
    optional_int,
    optional_text,
)
from datastore_common.adapters.icat.metadata import RichMetadata
from datastore_common.adapters.icat.parameters import ArchivalParameters
from datastore_common.adapters.icat.pool import (
    FunctionalSession,
    IcatClient,
    IcatClientPool,
    pool_from_settings,
)
from datastore_common.adapters.icat.references import FacilityReferences
from datastore_common.adapters.icat.wire import Bean, BeanShape, wire_of, wire_value
from datastore_common.domain.archival import (
    ARCHIVAL_PARAMETERS,
    ARCHIVAL_STATE,
    ArchivalJob,
    CatalogueDatafile,
    CatalogueDataset,
    active_jobs_of,
)
from datastore_common.domain.embargo import release_date
from datastore_common.domain.metadata import has_dataset_metadata
from datastore_common.domain.states import FINISHED, TERMINAL
from datastore_common.errors import InvalidRequestError
from datastore_common.messages import DatafileKey, DatasetSpec, InvestigationSpec
from datastore_common.ports import ArchivalEntity, Catalogue, NewDatafile
from datastore_common.settings import IcatSettings

T = TypeVar("T")

#: Below this many updates per client, another client is not worth a thread hop.
UPDATES_PER_CALL_MIN = 25


class IcatCatalogue(Catalogue):
    """The ``Catalogue`` port on ICAT, as the functional account of ``settings.icat``, scoped
    to the facility ``settings.icat.facility``.

    Few ICAT calls per request: names and ids are searched many at once (``IN`` lists,
    multi-column selects), new entities go in with ``createMany``, reference entities
    (facility, types, instrument, cycle, parameter types) are looked up once per process.
    """

    def __init__(self, settings: IcatSettings, *, pool: IcatClientPool | None = None) -> None:
        self._settings = settings
        self._pool = pool or pool_from_settings(settings)
        self._session = FunctionalSession(settings)
        self._references = FacilityReferences(settings.facility, settings.archival_parameter_units)
        self._archival = ArchivalParameters(self._references)
        self._metadata = RichMetadata(self._references)

    @property
    def facility(self) -> str:
        return self._settings.facility

    async def close(self) -> None:
        await self._pool.call("logout", self._session.logout)
        await self._pool.close()

    async def _call(self, operation: str, work: Callable[[IcatClient], T]) -> T:
        return await self._pool.call(operation, self._session.bind(work))

    # ------------------------------------------------------------ investigations

    async def ensure_investigation(self, investigation: InvestigationSpec) -> int:
        if investigation.facility.name != self.facility:
            raise InvalidRequestError(
                f"investigation {investigation.name}-{investigation.visitId} names facility "
                f"{investigation.facility.name!r}; this Datastore serves {self.facility!r}"
            )
        return await self._call(
            "ensure_investigation", lambda c: self._investigation(c, investigation)
        )

    def _investigation(self, client: IcatClient, spec: InvestigationSpec) -> int:
        facility_id = self._references.id_of(client, "Facility")
        type_id = self._references.id_of(
            client, "InvestigationType", name=spec.investigationType.name
        )
        instrument_id = self._references.id_of(client, "Instrument", name=spec.instrument.name)
        cycle_id = self._references.id_of(client, "FacilityCycle", name=spec.facilityCycle.name)
        query = (
            f"SELECT o.id FROM Investigation o JOIN o.facility f WHERE f.id = {facility_id} "
            f"AND o.name = {jpql_literal(spec.name)} AND o.visitId = {jpql_literal(spec.visitId)}"
        )

        def new_investigation() -> Any:
            fields = {
                k: getattr(spec, k)
                for k in ("summary", "doi", "startDate", "endDate")
                if getattr(spec, k) is not None
            }
            released = release_date(
                spec,
                embargo_years=self._settings.embargo_period_years,
                embargo_types=self._settings.embargo_types,
                today=datetime.now(UTC),
            )
            if released is not None:
                fields["releaseDate"] = released
            return client.new(
                "Investigation",
                name=spec.name,
                visitId=spec.visitId,
                title=spec.title,
                facility=client.new("Facility", id=facility_id),
                type=client.new("InvestigationType", id=type_id),
                **fields,
            )

        investigation_id, created = get_or_create(client, query, new_investigation)
        investigation = client.new("Investigation", id=investigation_id)
        links = (
            ("InvestigationInstrument", "instrument", "Instrument", instrument_id),
            ("InvestigationFacilityCycle", "facilityCycle", "FacilityCycle", cycle_id),
        )
        for bean, relation, target, target_id in links:
            link_query = (
                f"SELECT o.id FROM {bean} o JOIN o.investigation i JOIN o.{relation} r "
                f"WHERE i.id = {investigation_id} AND r.id = {target_id}"
            )
            link = client.new(
                bean, investigation=investigation, **{relation: client.new(target, id=target_id)}
            )
            # A new investigation has no links yet: no need to look for them first.
            get_or_create(
                client, link_query, functools.partial(_same, link), search_first=not created
            )
        return investigation_id

    # ------------------------------------------------------------ datasets

    async def ensure_datasets(
        self, investigation_id: int, datasets: Sequence[DatasetSpec]
    ) -> dict[str, CatalogueDataset]:
        return await self._call(
            "ensure_datasets", lambda c: self._datasets_in(c, investigation_id, datasets)
        )

    def _datasets_in(
        self, client: IcatClient, investigation_id: int, specs: Sequence[DatasetSpec]
    ) -> dict[str, CatalogueDataset]:
        search = functools.partial(
            ids_by_name,
            client.search,
            "SELECT o.id, o.name FROM Dataset o JOIN o.investigation i "
            f"WHERE i.id = {investigation_id}",
        )

        def new_dataset(spec: DatasetSpec) -> Any:
            type_id = self._references.id_of(client, "DatasetType", name=spec.datasetType.name)
            fields = {
                k: getattr(spec, k)
                for k in ("description", "doi", "location", "startDate", "endDate")
                if getattr(spec, k) is not None
            }
            return client.new(
                "Dataset",
                name=spec.name,
                complete=spec.complete,
                investigation=client.new("Investigation", id=investigation_id),
                type=client.new("DatasetType", id=type_id),
                **fields,
            )

        ids = get_or_create_many(
            specs,
            lambda s: s.name,
            search,
            new_dataset,
            create_many=client.createMany,
            create=client.create,
        )
        # The rich metadata of every dataset named, new or not: a redelivery (or a request
        # after an interrupted one) fills what is missing and creates nothing twice.
        rich = {ids[spec.name]: spec for spec in specs if has_dataset_metadata(spec)}
        if rich:
            self._metadata.write_parameters(client, "Dataset", rich)
            self._metadata.write_dataset_links(client, investigation_id, rich)
        archival = self._archival.values_of(client, "Dataset", list(ids.values()))
        return {
            name: CatalogueDataset(dataset_id, investigation_id, name, archival.get(dataset_id, {}))
            for name, dataset_id in ids.items()
        }

    async def datasets_by_id(self, dataset_ids: Sequence[int]) -> list[CatalogueDataset]:
        def work(client: IcatClient) -> list[CatalogueDataset]:
            rows: list[tuple[int, int, str]] = []
            for chunk in chunks(sorted(set(dataset_ids)), IN_CHUNK):
                query = (
                    "SELECT o.id, i.id, o.name FROM Dataset o JOIN o.investigation i "
                    f"WHERE o.id IN ({in_list(chunk)})"
                )
                rows += [(int(d), int(i), str(n)) for d, i, n in client.search(query)]
            archival = self._archival.values_of(client, "Dataset", [r[0] for r in rows])
            return [CatalogueDataset(d, i, n, archival.get(d, {})) for d, i, n in rows]

        return await self._call("datasets_by_id", work)

    # ------------------------------------------------------------ datafiles

    async def ensure_datafiles(
        self, dataset_id: int, datafiles: Sequence[NewDatafile]
    ) -> dict[str, CatalogueDatafile]:
        return await self._call(
            "ensure_datafiles", lambda c: self._datafiles_in(c, dataset_id, datafiles)
        )

    def _datafiles_in(
        self, client: IcatClient, dataset_id: int, items: Sequence[NewDatafile]
    ) -> dict[str, CatalogueDatafile]:
        wire = wire_of(client)
        search = functools.partial(
            ids_by_name,
            wire.search,
            f"SELECT o.id, o.name FROM Datafile o JOIN o.dataset ds WHERE ds.id = {dataset_id}",
        )

        def new_datafile(item: NewDatafile) -> Bean:
            spec = item.spec
            fields: dict[str, Any] = {
                "checksum": item.checksum,
                "datafileCreateTime": spec.datafileCreateTime,
                "datafileModTime": spec.datafileModTime,
                "description": spec.description,
                "doi": spec.doi,
                "fileSize": item.file_size,
                "location": item.location,
                "name": spec.name,
            }
            present = {k: v for k, v in fields.items() if v is not None}
            relations = [("dataset", "Dataset", dataset_id)]
            if spec.datafileFormat is not None:
                format_id = self._references.id_of(
                    client,
                    "DatafileFormat",
                    name=spec.datafileFormat.name,
                    version=spec.datafileFormat.version,
                )
                relations.append(("datafileFormat", "DatafileFormat", format_id))
            shape = BeanShape(
                "Datafile", tuple(present), tuple((name, bean) for name, bean, _ in relations)
            )
            row = [wire_value(v) for v in present.values()] + [str(i) for _, _, i in relations]
            return shape, row

        ids = get_or_create_many(
            items,
            lambda i: i.spec.name,
            search,
            new_datafile,
            create_many=wire.create_many,
            create=lambda bean: wire.create(*bean),
        )
        records = {r.name: r for r in self._datafile_rows(client, "o.id", list(ids.values()))}
        # A datafile that existed keeps its id; what we now know of its bytes replaces stale
        # values (e.g. the placeholder size and checksum of a first, failed attempt).
        for item in items:
            record = records[item.spec.name]
            wanted = {
                "location": item.location,
                "fileSize": item.file_size,
                "checksum": item.checksum,
            }
            current = {
                "location": record.location,
                "fileSize": record.file_size,
                "checksum": record.checksum,
            }
            changed = {k: v for k, v in wanted.items() if v is not None and current[k] != v}
            if changed:
                bean = client.get("Datafile INCLUDE 1", record.datafile_id)
                for name, value in changed.items():
                    setattr(bean, name, value)
                client.update(bean)
                records[item.spec.name] = replace(
                    record,
                    location=bean.location,
                    file_size=optional_int(bean.fileSize),
                    checksum=optional_text(bean.checksum),
                )
        with_parameters = {
            records[item.spec.name].datafile_id: item.spec for item in items if item.spec.parameters
        }
        if with_parameters:
            self._metadata.write_parameters(client, "Datafile", with_parameters)
        return records

    def _datafile_rows(
        self, client: IcatClient, key: str, ids: Sequence[int]
    ) -> list[CatalogueDatafile]:
        """Datafiles whose ``key`` (``o.id`` or ``ds.id``) is in ``ids``, with archival."""
        rows = []
        for chunk in chunks(sorted(set(ids)), IN_CHUNK):
            query = (
                "SELECT o.id, ds.id, o.name, o.location, o.fileSize, o.checksum "
                f"FROM Datafile o JOIN o.dataset ds WHERE {key} IN ({in_list(chunk)})"
            )
            rows += wire_of(client).search(query)
        if key == "ds.id":  # a whole dataset's parameters: one query per dataset chunk
            archival = self._archival.values_of(client, "Datafile", ids, of_datasets=True)
        else:
            archival = self._archival.values_of(client, "Datafile", [int(row[0]) for row in rows])
        return [
            CatalogueDatafile(
                datafile_id=int(df_id),
                dataset_id=int(ds_id),
                name=str(name),
                location=optional_text(location),
                file_size=optional_int(size),
                checksum=optional_text(checksum),
                archival=archival.get(int(df_id), {}),
            )
            for df_id, ds_id, name, location, size, checksum in rows
        ]

    async def datafiles_by_id(self, datafile_ids: Sequence[int]) -> list[CatalogueDatafile]:
        return await self._call(
            "datafiles_by_id", lambda c: self._datafile_rows(c, "o.id", datafile_ids)
        )

    async def find_datafiles(self, keys: Sequence[DatafileKey]) -> dict[DatafileKey, int]:
        groups: dict[tuple[str, str, str], list[DatafileKey]] = {}
        for key in keys:
            groups.setdefault((key.investigation, key.visit_id, key.dataset), []).append(key)

        def work(client: IcatClient) -> dict[DatafileKey, int]:
            found: dict[DatafileKey, int] = {}
            for (investigation, visit_id, dataset), group in groups.items():
                by_name = {key.datafile: key for key in group}
                for chunk in chunks(sorted(by_name), IN_CHUNK):
                    query = (
                        "SELECT o.id, o.name FROM Datafile o JOIN o.dataset ds "
                        "JOIN ds.investigation i JOIN i.facility f "
                        f"WHERE f.name = {jpql_literal(self.facility)} "
                        f"AND i.name = {jpql_literal(investigation)} "
                        f"AND i.visitId = {jpql_literal(visit_id)} "
                        f"AND ds.name = {jpql_literal(dataset)} AND o.name IN ({in_list(chunk)})"
                    )
                    for datafile_id, name in client.search(query):
                        found[by_name[str(name)]] = int(datafile_id)
            return found

        return await self._call("find_datafiles", work)

    async def datafiles_of(self, dataset_ids: Sequence[int]) -> list[CatalogueDatafile]:
        return await self._call(
            "datafiles_of", lambda c: self._datafile_rows(c, "ds.id", dataset_ids)
        )

    # ------------------------------------------------------------ archival parameters

    async def set_archival(
        self, entity: ArchivalEntity, values: Mapping[int, Mapping[str, str | None]]
    ) -> int:
        unknown = {n for v in values.values() for n in v} - set(ARCHIVAL_PARAMETERS)
        if unknown:
            raise ValueError(f"not archival parameters: {sorted(unknown)}")
        written, updates = await self._call(
            "set_archival", lambda c: self._archival.write(c, entity, values)
        )
        await self._update_concurrently("set_archival", updates)
        return written

    async def _update_concurrently(self, operation: str, updates: Sequence[Bean]) -> None:
        """ICAT's SOAP API has no bulk update: independent updates go out on up to the pool's
        size of clients at once. Every group runs to its end; the first failure is raised."""
        if not updates:
            return
        groups = max(1, min(self._pool.size, len(updates) // UPDATES_PER_CALL_MIN))
        size = math.ceil(len(updates) / groups)

        def work(group: Sequence[Bean]) -> Callable[[Any], None]:
            def run(client: IcatClient) -> None:
                wire = wire_of(client)
                for shape, row in group:
                    wire.update(shape, row)

            return run

        results = await asyncio.gather(
            *(self._call(operation, work(chunk)) for chunk in chunks(updates, size)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def claim_dataset(
        self, dataset_id: int, job_ids: str, *, replacing: str | None = None
    ) -> str | None:
        return await self._call(
            "claim_dataset", lambda c: self._archival.claim(c, dataset_id, job_ids, replacing)
        )

    # ------------------------------------------------------------ totals

    async def update_totals(self, dataset_ids: Sequence[int]) -> None:
        await self._call("update_totals", lambda c: self._update_totals(c, dataset_ids))

    def _update_totals(self, client: IcatClient, dataset_ids: Sequence[int]) -> None:
        investigation_ids: set[int] = set()
        for dataset_id in sorted(set(dataset_ids)):
            where = f"FROM Datafile o JOIN o.dataset ds WHERE ds.id = {dataset_id}"
            dataset = client.get("Dataset INCLUDE 1", dataset_id)
            investigation_ids.add(int(dataset.investigation.id))
            _write_totals(client, dataset, where)
        for investigation_id in sorted(investigation_ids):
            where = (
                "FROM Datafile o JOIN o.dataset ds JOIN ds.investigation i "
                f"WHERE i.id = {investigation_id}"
            )
            _write_totals(client, client.get("Investigation INCLUDE 1", investigation_id), where)

    # ------------------------------------------------------------ audit

    async def archived_datafiles(
        self, *, under: str = "", after: int = 0, limit: int = 1000
    ) -> list[CatalogueDatafile]:
        return await self._call(
            "archived_datafiles", lambda c: self._archived(c, under, after, limit)
        )

    def _archived(
        self, client: IcatClient, under: str, after: int, limit: int
    ) -> list[CatalogueDatafile]:
        state_type = self._references.parameter_type_ids(client)[ARCHIVAL_STATE]
        folder = under.strip("/")
        # LIKE narrows the search; it may match more ("_" is a wildcard, and some databases
        # compare without case), so the exact test follows, and pages go on until ``limit``
        # exact matches are found or the search is exhausted.
        inside = f"AND df.location LIKE {jpql_literal(folder + '/%')} " if folder else ""
        found: list[CatalogueDatafile] = []
        cursor = int(after)
        while len(found) < limit:
            query = (
                "SELECT df.id FROM DatafileParameter p JOIN p.datafile df JOIN p.type t "
                "JOIN df.dataset ds JOIN ds.investigation i JOIN i.facility f "
                f"WHERE t.id = {state_type} AND p.stringValue = {jpql_literal(FINISHED)} "
                f"AND p.modId = {jpql_literal(self._settings.functional_user)} "
                f"AND f.name = {jpql_literal(self.facility)} AND df.id > {cursor} {inside}"
                f"ORDER BY df.id LIMIT 0, {int(limit)}"
            )
            ids = [int(i) for i in wire_of(client).search(query)]
            rows = sorted(self._datafile_rows(client, "o.id", ids), key=lambda r: r.datafile_id)
            found += [r for r in rows if not folder or (r.location or "").startswith(folder + "/")]
            if len(ids) < limit:
                break
            cursor = max(ids)
        return found[:limit]

    # ------------------------------------------------------------ resync

    async def active_archival_jobs(self) -> list[ArchivalJob]:
        return await self._call("active_archival_jobs", self._active_jobs)

    def _active_jobs(self, client: IcatClient) -> list[ArchivalJob]:
        state_type = self._references.parameter_type_ids(client)[ARCHIVAL_STATE]
        datafile_ids: list[int] = []
        for start in itertools.count(0, PAGE):
            query = (
                "SELECT df.id FROM DatafileParameter p JOIN p.datafile df JOIN p.type t "
                f"WHERE t.id = {state_type} AND p.stringValue NOT IN "
                f"({in_list(sorted(TERMINAL))}) ORDER BY df.id LIMIT {start}, {PAGE}"
            )
            found = [int(i) for i in wire_of(client).search(query)]
            datafile_ids += found
            if len(found) < PAGE:
                break
        datafiles = self._datafile_rows(client, "o.id", datafile_ids)
        # The original Datastore API recorded "Archival ids" on the Dataset only.
        datasets = self._archival.values_of(
            client, "Dataset", sorted({d.dataset_id for d in datafiles})
        )
        return active_jobs_of(datafiles, datasets)


def _write_totals(client: IcatClient, entity: Any, where: str) -> None:
    """Set an entity's fileCount/fileSize from its datafiles; no write when unchanged."""
    count = int((client.search(f"SELECT COUNT(o) {where}") or [0])[0])
    size = int((client.search(f"SELECT SUM(o.fileSize) {where}") or [0])[0] or 0)
    if optional_int(entity.fileCount) == count and optional_int(entity.fileSize) == size:
        return
    entity.fileCount = count
    entity.fileSize = size
    client.update(entity)


def _same(value: T) -> T:
    return value
