"""The facility's reference entities (the facility, investigation and dataset types,
instruments, cycles, datafile formats) and the archival ParameterTypes, by id, looked up once
per process: they are never renamed."""

from __future__ import annotations

import contextlib

import icat.exception as icat_errors

from datastore_common.adapters.icat.jpql import in_list, jpql_literal
from datastore_common.adapters.icat.pool import IcatClient
from datastore_common.domain.archival import ARCHIVAL_PARAMETERS, PARAMETER_UNITS
from datastore_common.logging import get_logger

log = get_logger(__name__)


class FacilityReferences:
    """Ids of reference entities scoped to the facility ``facility``, cached; the archival
    ParameterTypes are those of ``units`` (``icat.archival_parameter_units``)."""

    def __init__(self, facility: str, units: str = PARAMETER_UNITS) -> None:
        self.facility = facility
        self.units = units
        self._ids: dict[tuple[str, ...], int] = {}
        self._parameter_types: dict[str, int] = {}

    def id_of(self, client: IcatClient, bean: str, **key: str) -> int:
        """Id of a facility-scoped reference entity (``Facility``: the facility itself)."""
        cache_key = (bean, *(f"{k}={v}" for k, v in sorted(key.items())))
        found = self._ids.get(cache_key)
        if found is not None:
            return found
        conditions = [f"f.name = {jpql_literal(self.facility)}"]
        conditions += [f"o.{name} = {jpql_literal(value)}" for name, value in sorted(key.items())]
        if bean == "Facility":
            query = f"SELECT o.id FROM Facility o WHERE o.name = {jpql_literal(self.facility)}"
        else:
            query = f"SELECT o.id FROM {bean} o JOIN o.facility f WHERE {' AND '.join(conditions)}"
        ids = client.search(query)
        if not ids:
            described = ", ".join(f"{k}={v!r}" for k, v in key.items())
            raise icat_errors.ICATNoObjectError(
                f"{bean} with {described or 'name'} not found in facility {self.facility!r}"
            )
        self._ids[cache_key] = int(ids[0])
        return int(ids[0])

    def parameter_type_ids(self, client: IcatClient) -> dict[str, int]:
        """The archival ParameterTypes by name, created when missing."""
        if len(self._parameter_types) == len(ARCHIVAL_PARAMETERS):
            return self._parameter_types
        facility_id = self.id_of(client, "Facility")
        query = (
            "SELECT o.id, o.name FROM ParameterType o JOIN o.facility f "
            f"WHERE f.id = {facility_id} AND o.units = {jpql_literal(self.units)} "
            f"AND o.name IN ({in_list(ARCHIVAL_PARAMETERS)})"
        )
        found = {str(name): int(type_id) for type_id, name in client.search(query)}
        missing = [name for name in ARCHIVAL_PARAMETERS if name not in found]
        for name in missing:
            bean = client.new(
                "ParameterType",
                name=name,
                units=self.units,
                valueType="STRING",
                applicableToDataset=True,
                applicableToDatafile=True,
                facility=client.new("Facility", id=facility_id),
            )
            with contextlib.suppress(icat_errors.ICATObjectExistsError):  # a replica was first
                client.create(bean)
        if missing:
            found = {str(name): int(type_id) for type_id, name in client.search(query)}
            log.info("icat_parameter_types_created", names=missing)
        self._parameter_types = found
        return found
