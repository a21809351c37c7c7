"""Rich metadata in ICAT: the parameters, sample, techniques and instruments an archive
request names for its datasets and datafiles, get-or-created by ICAT's keys
(``domain.metadata`` says what is missing). Reference entities are looked up, never created;
a missing one is ICAT's NO_SUCH_OBJECT_FOUND (the gateway refused it first, as a 422)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import icat.exception as icat_errors

from datastore_common.adapters.icat.get_or_create import get_or_create_many, ids_by_name
from datastore_common.adapters.icat.jpql import IN_CHUNK, chunks, in_list, jpql_literal
from datastore_common.adapters.icat.pool import IcatClient
from datastore_common.adapters.icat.references import FacilityReferences
from datastore_common.adapters.icat.wire import CREATE_CHUNK
from datastore_common.domain.metadata import (
    ParameterOwner,
    TypeKey,
    dataset_links,
    missing_links,
    parameter_values,
    samples_by_name,
    samples_to_set,
    wanted_parameters,
)
from datastore_common.messages import DatafileSpec, DatasetSpec, SampleSpec


class RichMetadata:
    """Writes rich metadata as the functional account, within the references' facility."""

    def __init__(self, references: FacilityReferences) -> None:
        self._references = references
        self._techniques: dict[str, int] = {}  # Techniques are ICAT-wide, never renamed

    # ------------------------------------------------------------ parameters

    def write_parameters(
        self,
        client: IcatClient,
        entity: ParameterOwner,
        specs: Mapping[int, DatasetSpec] | Mapping[int, DatafileSpec] | Mapping[int, SampleSpec],
    ) -> int:
        """The missing ``{entity}Parameter``s of ``specs`` (by owner id); how many created."""
        wanted = wanted_parameters(specs)
        if not wanted:
            return 0
        type_ids: dict[TypeKey, int] = {
            key: self._references.id_of(client, "ParameterType", name=key[0], units=key[1])
            for key in {type_key for _, type_key in wanted}
        }
        keys_by_id = {type_id: key for key, type_id in type_ids.items()}
        relation = entity.lower()
        existing: list[tuple[int, TypeKey]] = []
        for chunk in chunks(sorted(specs), IN_CHUNK):
            query = (
                f"SELECT e.id, t.id FROM {entity}Parameter o JOIN o.{relation} e JOIN o.type t "
                f"WHERE e.id IN ({in_list(chunk)}) AND t.id IN ({in_list(sorted(keys_by_id))})"
            )
            existing += [(int(e), keys_by_id[int(t)]) for e, t in client.search(query)]
        beans = [
            client.new(
                f"{entity}Parameter",
                type=client.new("ParameterType", id=type_ids[type_key]),
                **{relation: client.new(entity, id=owner_id)},
                **parameter_values(wanted[(owner_id, type_key)]),
            )
            for owner_id, type_key in missing_links(wanted, existing)
        ]
        return _create_missing(client, beans)

    # ------------------------------------------------------------ dataset links

    def write_dataset_links(
        self, client: IcatClient, investigation_id: int, specs: Mapping[int, DatasetSpec]
    ) -> int:
        """The missing techniques, instruments and sample of ``specs`` (by dataset id)."""
        links = dataset_links(specs)
        created = 0
        for bean, relation, target, wanted, id_of in (
            ("DatasetTechnique", "technique", "Technique", links.techniques, self._technique_id),
            (
                "DatasetInstrument",
                "instrument",
                "Instrument",
                links.instruments,
                self._instrument_id,
            ),
        ):
            if not wanted:
                continue
            target_ids = {name: id_of(client, name) for _, name in wanted}
            names_by_id = {target_id: name for name, target_id in target_ids.items()}
            existing: list[tuple[int, str]] = []
            for chunk in chunks(sorted({i for i, _ in wanted}), IN_CHUNK):
                query = (
                    f"SELECT ds.id, r.id FROM {bean} o JOIN o.dataset ds JOIN o.{relation} r "
                    f"WHERE ds.id IN ({in_list(chunk)}) "
                    f"AND r.id IN ({in_list(sorted(names_by_id))})"
                )
                existing += [(int(d), names_by_id[int(r)]) for d, r in client.search(query)]
            beans = [
                client.new(
                    bean,
                    dataset=client.new("Dataset", id=dataset_id),
                    **{relation: client.new(target, id=target_ids[name])},
                )
                for dataset_id, name in missing_links(wanted, existing)
            ]
            created += _create_missing(client, beans)
        if links.samples:
            created += self._write_samples(client, investigation_id, specs, links.samples)
        return created

    def _write_samples(
        self,
        client: IcatClient,
        investigation_id: int,
        specs: Mapping[int, DatasetSpec],
        wanted: Mapping[int, str],
    ) -> int:
        by_name = samples_by_name(specs)

        def new_sample(sample: SampleSpec) -> Any:
            kind = sample.sample_type
            type_id = self._references.id_of(
                client, "SampleType", name=kind.name, molecularFormula=kind.molecularFormula
            )
            fields = {"pid": sample.pid} if sample.pid is not None else {}
            return client.new(
                "Sample",
                name=sample.name,
                investigation=client.new("Investigation", id=investigation_id),
                type=client.new("SampleType", id=type_id),
                **fields,
            )

        sample_ids = get_or_create_many(
            list(by_name.values()),
            lambda s: s.name,
            lambda names: ids_by_name(
                client.search,
                "SELECT o.id, o.name FROM Sample o JOIN o.investigation i "
                f"WHERE i.id = {investigation_id}",
                names,
            ),
            new_sample,
            create_many=client.createMany,
            create=client.create,
        )
        sample_parameters = {
            sample_ids[name]: sample for name, sample in by_name.items() if sample.parameters
        }
        created = self.write_parameters(client, "Sample", sample_parameters)
        with_sample: list[int] = []
        for chunk in chunks(sorted(wanted), IN_CHUNK):
            query = (
                f"SELECT ds.id FROM Dataset ds JOIN ds.sample s WHERE ds.id IN ({in_list(chunk)})"
            )
            with_sample += [int(d) for d in client.search(query)]
        linked = samples_to_set(wanted, with_sample)
        for dataset_id, name in linked.items():
            dataset = client.get("Dataset INCLUDE 1", dataset_id)
            dataset.sample = client.new("Sample", id=sample_ids[name])
            client.update(dataset)
        return created + len(linked)

    # ------------------------------------------------------------ references

    def _technique_id(self, client: IcatClient, name: str) -> int:
        found = self._techniques.get(name)
        if found is None:
            ids = client.search(f"SELECT o.id FROM Technique o WHERE o.name = {jpql_literal(name)}")
            if not ids:
                raise icat_errors.ICATNoObjectError(f"Technique with name={name!r} not found")
            found = self._techniques[name] = int(ids[0])
        return found

    def _instrument_id(self, client: IcatClient, name: str) -> int:
        return self._references.id_of(client, "Instrument", name=name)


def _create_missing(client: IcatClient, beans: Sequence[Any]) -> int:
    """Create ``beans`` (createMany by chunks); a replica having made some first is fine."""
    created = 0
    for chunk in chunks(list(beans), CREATE_CHUNK):
        try:
            created += len(client.createMany(chunk))
        except icat_errors.ICATObjectExistsError:
            for bean in chunk:
                with contextlib.suppress(icat_errors.ICATObjectExistsError):
                    client.create(bean)
                    created += 1
    return created
