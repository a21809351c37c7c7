"""``Vocabulary`` on ICAT: which facility, investigation type, instrument, facility cycle,
dataset type, datafile format, parameter type, sample type and technique names exist, asked
as the functional account.

The same look-ups as :class:`~datastore_common.adapters.icat.catalogue.IcatCatalogue` makes when it
registers a request (by name, or name and version, within ``icat.facility``), but many names
at once: one ``search`` per kind with an ``IN (...)`` list (chunked beyond 500 names), all in
one call on a pooled client. The gateway puts a TTL cache in front (``CachedVocabulary``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from datastore_common.adapters.icat.jpql import IN_CHUNK, chunks, in_list, jpql_literal
from datastore_common.adapters.icat.pool import (
    FunctionalSession,
    IcatClient,
    IcatClientPool,
    pool_from_settings,
)
from datastore_common.errors import DatastoreError
from datastore_common.logging import get_logger
from datastore_common.ports import SECOND_KEY, Term, Vocabulary, VocabularyKind
from datastore_common.settings import IcatSettings

log = get_logger(__name__)

T = TypeVar("T")

#: The ICAT entity of each kind (the facility itself is asked apart); all are scoped to the
#: facility but Technique, whose names are ICAT-wide.
_ENTITIES: dict[VocabularyKind, str] = {
    "investigationType": "InvestigationType",
    "instrument": "Instrument",
    "facilityCycle": "FacilityCycle",
    "datasetType": "DatasetType",
    "datafileFormat": "DatafileFormat",
    "parameterType": "ParameterType",
    "sampleType": "SampleType",
    "technique": "Technique",
}
_NOT_IN_A_FACILITY: frozenset[VocabularyKind] = frozenset({"technique"})


class IcatVocabulary(Vocabulary):
    """The ``Vocabulary`` port on ICAT, as the functional account of ``settings``, within the
    facility ``settings.facility``. ``searches`` counts the ICAT searches made."""

    def __init__(self, settings: IcatSettings, *, pool: IcatClientPool | None = None) -> None:
        self.facility = settings.facility
        self._owns_pool = pool is None
        self._pool = pool or pool_from_settings(settings)
        self._session = FunctionalSession(settings)
        self.searches = 0

    async def close(self) -> None:
        """Log the functional session out (if one was opened); close the pool if it is ours."""
        if self._session.session_id is not None:
            try:
                await self._pool.call("logout", self._session.logout)
            except DatastoreError as exc:  # ICAT gone: the session expires on its own
                log.warning("icat_vocabulary_logout_failed", error=str(exc))
        if self._owns_pool:
            await self._pool.close()

    async def unknown(
        self, terms: Mapping[VocabularyKind, Collection[Term]]
    ) -> dict[VocabularyKind, set[Term]]:
        asked = {kind: set(names) for kind, names in terms.items() if names}
        facilities = asked.pop("facility", set())
        unknown: dict[VocabularyKind, set[Term]] = {}
        # The workers register into icat.facility only: any other facility is unknown here.
        others = facilities - {self.facility}
        if others:
            unknown["facility"] = others
        ours = self.facility in facilities
        if asked or ours:
            found = await self._call(
                "vocabulary", lambda client: self._unknown(client, asked, ours)
            )
            unknown.update(found)
        return unknown

    async def _call(self, operation: str, work: Callable[[IcatClient], T]) -> T:
        return await self._pool.call(operation, self._session.bind(work))

    def _search(self, client: IcatClient, query: str) -> list[Any]:
        self.searches += 1
        return list(client.search(query))

    def _unknown(
        self, client: IcatClient, asked: Mapping[VocabularyKind, set[Term]], facility: bool
    ) -> dict[VocabularyKind, set[Term]]:
        unknown: dict[VocabularyKind, set[Term]] = {}
        in_facility = f"f.name = {jpql_literal(self.facility)}"
        if facility:
            query = f"SELECT o.name FROM Facility o WHERE o.name = {jpql_literal(self.facility)}"
            if self.facility not in {str(name) for name in self._search(client, query)}:
                unknown["facility"] = {self.facility}
        for kind, entity in _ENTITIES.items():
            wanted = asked.get(kind)
            if not wanted:
                continue
            second = SECOND_KEY.get(kind)
            names = sorted({term[0] if isinstance(term, tuple) else term for term in wanted})
            columns = f"o.name, o.{second}" if second else "o.name"
            scope = (
                "WHERE"
                if kind in _NOT_IN_A_FACILITY
                else f"JOIN o.facility f WHERE {in_facility} AND"
            )
            found: set[Term] = set()
            for chunk in chunks(names, IN_CHUNK):
                query = f"SELECT {columns} FROM {entity} o {scope} o.name IN ({in_list(chunk)})"
                for row in self._search(client, query):
                    if second:
                        name, value = row
                        found.add((str(name), str(value)))
                    else:
                        found.add(str(row))
            # Exact matches only: the workers use the request's names in paths as given.
            missing = wanted - found
            if missing:
                unknown[kind] = missing
        return unknown
