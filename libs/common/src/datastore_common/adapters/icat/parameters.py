"""The archival parameters (``domain.archival``) of Datasets and Datafiles in ICAT: read many
at once, written with createMany, deleteMany and updates, and the dataset claim."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import icat.exception as icat_errors

from datastore_common.adapters.icat.jpql import IN_CHUNK, chunks, in_list, optional_text
from datastore_common.adapters.icat.pool import IcatClient
from datastore_common.adapters.icat.references import FacilityReferences
from datastore_common.adapters.icat.wire import CREATE_CHUNK, Bean, BeanShape, wire_of, xml_text
from datastore_common.domain.archival import ARCHIVAL_IDS
from datastore_common.ports import ArchivalEntity

#: Up to this many updates go in the same pooled call as the reads.
INLINE_UPDATES = 8


class ArchivalParameters:
    """Archival parameters through the SOAP wire of a pooled client; their types come from
    ``references``."""

    def __init__(self, references: FacilityReferences) -> None:
        self._references = references

    def rows(
        self,
        client: IcatClient,
        entity: ArchivalEntity,
        ids: Sequence[int],
        *,
        of_datasets: bool = False,
    ) -> list[tuple[int, int, str, int, str | None]]:
        """(parameter id, entity id, type name, type id, value) of archival parameters of
        the entities ``ids`` (or, ``of_datasets``, of the Datafiles of the Datasets ``ids``)."""
        if not ids:
            return []
        types = self._references.parameter_type_ids(client)
        relation = entity.lower()
        join, key = (" JOIN e.dataset ds", "ds.id") if of_datasets else ("", "e.id")
        rows = []
        for chunk in chunks(sorted(set(ids)), IN_CHUNK):
            query = (
                f"SELECT p.id, e.id, t.name, t.id, p.stringValue FROM {entity}Parameter p "
                f"JOIN p.{relation} e{join} JOIN p.type t WHERE {key} IN ({in_list(chunk)}) "
                f"AND t.id IN ({in_list(sorted(types.values()))})"
            )
            rows += [
                (int(p), int(e), str(n), int(t), optional_text(v))
                for p, e, n, t, v in wire_of(client).search(query)
            ]
        return rows

    def values_of(
        self,
        client: IcatClient,
        entity: ArchivalEntity,
        ids: Sequence[int],
        *,
        of_datasets: bool = False,
    ) -> dict[int, dict[str, str]]:
        """{entity id: {parameter name: value}} of the parameters with a value."""
        values: dict[int, dict[str, str]] = {}
        rows = self.rows(client, entity, ids, of_datasets=of_datasets)
        for _, entity_id, name, _, value in rows:
            if value is not None:
                values.setdefault(entity_id, {})[name] = value
        return values

    def write(
        self,
        client: IcatClient,
        entity: ArchivalEntity,
        values: Mapping[int, Mapping[str, str | None]],
    ) -> tuple[int, list[Bean]]:
        """Creates and deletes of archival parameters; (count written, the updates still to
        send) unless only a few updates are needed, which are sent here."""
        wire = wire_of(client)
        types = self._references.parameter_type_ids(client)
        relation = entity.lower()
        existing = {
            (entity_id, name): (parameter_id, value)
            for parameter_id, entity_id, name, _, value in self.rows(client, entity, list(values))
        }
        new = BeanShape(
            f"{entity}Parameter",
            ("stringValue",),
            (("type", "ParameterType"), (relation, entity)),
        )
        changed = replace(new, with_id=True)

        def row(entity_id: int, name: str, value: str) -> list[str]:
            return [xml_text(value), str(types[name]), str(entity_id)]

        creates: list[tuple[int, str, str]] = []
        updates: list[Bean] = []
        deletes: list[int] = []
        for entity_id, wanted in values.items():
            for name, value in wanted.items():
                current = existing.get((entity_id, name))
                if current is None:
                    if value is not None:
                        creates.append((entity_id, name, value))
                elif value is None:
                    deletes.append(current[0])
                elif current[1] != value:
                    updates.append((changed, [str(current[0]), *row(entity_id, name, value)]))
        for chunk in chunks(creates, CREATE_CHUNK):
            try:
                wire.create_many([(new, row(*c)) for c in chunk])
            except icat_errors.ICATObjectExistsError:
                # Another replica wrote some of them meanwhile: go one by one, last write wins.
                for entity_id, name, value in chunk:
                    try:
                        wire.create(new, row(entity_id, name, value))
                    except icat_errors.ICATObjectExistsError:
                        rows = self.rows(client, entity, [entity_id])
                        parameter_id = next(p for p, _, n, _, _ in rows if n == name)
                        wire.update(changed, [str(parameter_id), *row(entity_id, name, value)])
        for id_chunk in chunks(deletes, CREATE_CHUNK):
            wire.delete_many(f"{entity}Parameter", id_chunk)
        written = len(creates) + len(updates) + len(deletes)
        if len(updates) <= INLINE_UPDATES:
            for shape, values_row in updates:
                wire.update(shape, values_row)
            return written, []
        return written, updates

    def claim(
        self, client: IcatClient, dataset_id: int, job_ids: str, replacing: str | None
    ) -> str | None:
        """Create the dataset's "Archival ids" as ``job_ids``: None when created, else the
        value there instead. ICAT's uniqueness of (dataset, type) on DatasetParameter makes
        the create the claim: of two requests creating it at once, exactly one succeeds.

        ``replacing`` (an ended archive's ids) is first deleted by its parameter's id: of
        two requests deleting it at once exactly one succeeds, the other finds it gone."""
        wire = wire_of(client)
        if replacing is not None:
            current = self._archival_ids(client, dataset_id)
            if current is not None:
                parameter_id, value = current
                if value != replacing:
                    return value  # another request swapped it already
                try:
                    wire.delete_many("DatasetParameter", [parameter_id])
                except icat_errors.ICATNoObjectError:
                    return self._holder(client, dataset_id)
        types = self._references.parameter_type_ids(client)
        shape = BeanShape(
            "DatasetParameter",
            ("stringValue",),
            (("type", "ParameterType"), ("dataset", "Dataset")),
        )
        try:
            wire.create(shape, [xml_text(job_ids), str(types[ARCHIVAL_IDS]), str(dataset_id)])
            return None
        except icat_errors.ICATObjectExistsError:
            return self._holder(client, dataset_id)

    def _archival_ids(self, client: IcatClient, dataset_id: int) -> tuple[int, str] | None:
        rows = self.rows(client, "Dataset", [dataset_id])
        return next(((p, v or "") for p, _, n, _, v in rows if n == ARCHIVAL_IDS), None)

    def _holder(self, client: IcatClient, dataset_id: int) -> str:
        """Whose claim won: its ids, or "" while the winner is between delete and create."""
        current = self._archival_ids(client, dataset_id)
        return "" if current is None else current[1]
