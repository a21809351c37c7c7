"""``Selections`` on ICAT: restore selections, the archival of datasets and investigations,
and look-ups by name, all with the *user's* session.

Every query runs on the shared :class:`~datastore_common.adapters.icat.pool.IcatClientPool` through
``raw_call(client, "search", session_id, query)``, so one pooled client serves every user and
ICAT's authorization (what this user may read) applies to every row. Few calls whatever the
size: ids go in ``IN`` lists (chunked), datafiles (with their place in the hierarchy) and
their archival parameters come back in multi-column selects paged with ``LIMIT``: for a
restore, at most two existence checks, two queries per kind of id named (investigations,
datasets, datafiles), then the instruments and facility cycles of the investigations found,
for selections up to the page size; for a dataset's or an investigation's archival, three or
four; for a look-up, two.

What a restore trusts is what Datastore wrote: each datafile's place (instrument and facility
cycle links, investigation name and visitId, dataset type and name, datafile name), from which
the planner rebuilds its location; and an "Archival state" only when ICAT says the functional
account wrote it (the parameter's ``modId``, set by ICAT itself, equals
``icat.functional_user``). A state someone else wrote, by hand or with a user's rights, does
not count: the datafile is "not archived" (409) until Datastore writes it again.

Every call is made with a user's session (``as_the_user``): ICAT refusing it is the caller's
``SessionRefusedError`` (401), not a peer refusing Datastore.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from datastore_common.adapters.icat.jpql import (
    IN_CHUNK,
    PAGE,
    chunks,
    in_list,
    jpql_literal,
    optional_int,
    optional_text,
)
from datastore_common.adapters.icat.pool import IcatClient, IcatClientPool, raw_call
from datastore_common.adapters.icat.sessions import as_the_user
from datastore_common.domain.archival import (
    ARCHIVAL_FAILURE,
    ARCHIVAL_STATE,
    PARAMETER_UNITS,
    ArchivalRecords,
    CatalogueDatafile,
    CatalogueDataset,
    CatalogueInvestigation,
)
from datastore_common.domain.paths import DatafilePlace
from datastore_common.domain.plan import RestoreItem
from datastore_common.domain.states import FINISHED
from datastore_common.errors import NotArchivedError, NotFoundError, SessionRefusedError
from datastore_common.logging import get_logger
from datastore_common.ports import Selections, describe_ids

log = get_logger(__name__)
T = TypeVar("T")

# How each kind of id reaches a datafile row ``o`` (Datafile o JOIN o.dataset ds
# JOIN ds.investigation i).
_KEYS = (("Investigation", "i.id"), ("Dataset", "ds.id"), ("Datafile", "o.id"))
_DATAFILES = "FROM Datafile o JOIN o.dataset ds JOIN ds.investigation i"
# ... and with the dataset's type, for a datafile's place.
_PLACED_DATAFILES = "FROM Datafile o JOIN o.dataset ds JOIN ds.type dt JOIN ds.investigation i"
_DATAFILE_PARAMETERS = (
    "FROM DatafileParameter p JOIN p.type t JOIN p.datafile o JOIN o.dataset ds "
    "JOIN ds.investigation i"
)
_DATASET_PARAMETERS = (
    "FROM DatasetParameter p JOIN p.type t JOIN p.dataset ds JOIN ds.investigation i"
)


def _types(*names: str) -> str:
    """The condition on ``t`` that selects these archival parameter types."""
    return f"t.name IN ({in_list(names)}) AND t.units = {jpql_literal(PARAMETER_UNITS)}"


def _not_found(entity: str, entity_id: int) -> NotFoundError:
    return NotFoundError(
        "not found, or not readable with your ICAT session: " + describe_ids({entity: [entity_id]})
    )


class IcatSelections(Selections):
    """Reads ICAT as the requesting user: restore selections, archival, look-ups;
    ``archival_writer`` is the functional account as ICAT names it
    (``IcatSettings.functional_user``)."""

    def __init__(self, pool: IcatClientPool, *, archival_writer: str) -> None:
        self._pool = pool
        self.archival_writer = archival_writer
        self.searches = 0  # ICAT search calls made (tests assert few)

    async def resolve(
        self,
        session_id: str,
        investigation_ids: Sequence[int],
        dataset_ids: Sequence[int],
        datafile_ids: Sequence[int],
    ) -> list[RestoreItem]:
        _check(session_id)
        named = {
            "Investigation": sorted(set(investigation_ids)),
            "Dataset": sorted(set(dataset_ids)),
            "Datafile": sorted(set(datafile_ids)),
        }
        return await self._as_the_user(
            "resolve_selection", lambda client: self._resolve(client, session_id, named)
        )

    async def dataset_archival(self, session_id: str, dataset_id: int) -> ArchivalRecords:
        _check(session_id)
        return await self._as_the_user(
            "dataset_archival", lambda client: self._dataset(client, session_id, dataset_id)
        )

    async def investigation_archival(
        self, session_id: str, investigation_id: int
    ) -> tuple[CatalogueInvestigation, ArchivalRecords]:
        _check(session_id)
        return await self._as_the_user(
            "investigation_archival",
            lambda client: self._investigation(client, session_id, investigation_id),
        )

    async def find_investigations(
        self, session_id: str, name: str, visit_id: str | None = None
    ) -> list[CatalogueInvestigation]:
        _check(session_id)
        return await self._as_the_user(
            "find_investigations",
            lambda client: self._find_investigations(client, session_id, name, visit_id),
        )

    async def find_datasets(
        self, session_id: str, investigation: str, visit_id: str, name: str | None = None
    ) -> list[CatalogueDataset]:
        _check(session_id)
        return await self._as_the_user(
            "find_datasets",
            lambda client: self._find_datasets(client, session_id, investigation, visit_id, name),
        )

    async def _as_the_user(self, name: str, work: Callable[[IcatClient], T]) -> T:
        """``work`` on a pooled client with a user's session: ICAT refusing the session is
        the caller's SessionRefusedError (``sessions.as_the_user``)."""
        return await as_the_user(lambda: self._pool.call(name, work))

    def _search(self, client: IcatClient, session_id: str, query: str) -> list[Any]:
        self.searches += 1
        # client.getEntity only converts (a fieldSet to a tuple); no ICAT call.
        return [client.getEntity(row) for row in raw_call(client, "search", session_id, query)]

    def _paged(self, client: IcatClient, session_id: str, query: str) -> Iterator[Any]:
        for start in itertools.count(0, PAGE):
            rows = self._search(client, session_id, f"{query} LIMIT {start}, {PAGE}")
            yield from rows
            if len(rows) < PAGE:
                return

    def _resolve(
        self, client: IcatClient, session_id: str, named: dict[str, list[int]]
    ) -> list[RestoreItem]:
        # 1. Every investigation and dataset named must be readable (a datafile is checked
        #    by finding it below): unknown and forbidden look alike, as ICAT means them to.
        missing: dict[str, list[int]] = {}
        for entity in ("Investigation", "Dataset"):
            found: set[int] = set()
            for chunk in chunks(named[entity], IN_CHUNK):
                query = f"SELECT o.id FROM {entity} o WHERE o.id IN ({in_list(chunk)})"
                found.update(int(i) for i in self._search(client, session_id, query))
            missing[entity] = [i for i in named[entity] if i not in found]

        # 2. The datafiles with their place, and 3. their "Archival state" with who wrote it,
        #    per kind of id named.
        rows: dict[int, _Row] = {}
        states: dict[int, tuple[str, str | None]] = {}
        for entity, key in _KEYS:
            for chunk in chunks(named[entity], IN_CHUNK):
                where = f"{key} IN ({in_list(chunk)})"
                query = (
                    "SELECT o.id, ds.id, o.location, o.fileSize, o.checksum, o.name, ds.name, "
                    f"dt.name, i.id, i.name, i.visitId {_PLACED_DATAFILES} "
                    f"WHERE {where} ORDER BY o.id"
                )
                for row in self._paged(client, session_id, query):
                    df_id, ds_id, location, size, checksum, *names = row
                    rows[int(df_id)] = _Row(
                        dataset_id=int(ds_id),
                        location=optional_text(location),
                        filesize=optional_int(size),
                        checksum=optional_text(checksum),
                        datafile=str(names[0]),
                        dataset=str(names[1]),
                        dataset_type=str(names[2]),
                        investigation_id=int(names[3]),
                        investigation=str(names[4]),
                        visit_id=str(names[5]),
                    )
                query = (
                    f"SELECT o.id, p.stringValue, p.modId {_DATAFILE_PARAMETERS} "
                    f"WHERE {_types(ARCHIVAL_STATE)} AND {where} ORDER BY p.id"
                )
                for df_id, value, written_by in self._paged(client, session_id, query):
                    if value is not None:
                        states[int(df_id)] = (str(value), optional_text(written_by))
        missing["Datafile"] = [i for i in named["Datafile"] if i not in rows]
        if any(missing.values()):
            raise NotFoundError(
                "not found, or not readable with your ICAT session: " + describe_ids(missing)
            )

        # 4. The instruments and facility cycles of the investigations: the top of each path.
        investigations = sorted({row.investigation_id for row in rows.values()})
        instruments = self._links(client, session_id, investigations, "instrument")
        cycles = self._links(client, session_id, investigations, "facilityCycle")

        refused: dict[int, str | None] = {}
        items = []
        for df_id, row in rows.items():
            state = self._trusted_state(states.get(df_id))
            if state != FINISHED:
                refused[df_id] = state
            elif not row.location:
                refused[df_id] = f"{state}, but no location"
            else:
                place = row.place(
                    instruments.get(row.investigation_id, ()),
                    cycles.get(row.investigation_id, ()),
                )
                items.append(
                    RestoreItem(
                        df_id, row.dataset_id, row.location, row.checksum, row.filesize, place=place
                    )
                )
        if refused:
            raise NotArchivedError(refused)
        log.info("restore_selection_resolved", datafiles=len(items))
        return sorted(items, key=lambda item: (item.dataset_id, item.location))

    def _trusted_state(self, found: tuple[str, str | None] | None) -> str | None:
        """The "Archival state" as a restore counts it: only what the functional account
        wrote (ICAT's own ``modId``); anything else is named, and never FINISHED."""
        if found is None:
            return None
        value, writer = found
        if writer == self.archival_writer:
            return value
        return f"{value} written by {writer!r}, not by Datastore: not counted"

    def _links(
        self, client: IcatClient, session_id: str, investigation_ids: list[int], relation: str
    ) -> dict[int, list[str]]:
        """Investigation id -> names of its linked instruments (``relation="instrument"``)
        or facility cycles (``"facilityCycle"``), as the user may read them."""
        bean = {
            "instrument": "InvestigationInstrument",
            "facilityCycle": "InvestigationFacilityCycle",
        }
        names: dict[int, list[str]] = {}
        for chunk in chunks(investigation_ids, IN_CHUNK):
            query = (
                f"SELECT i.id, r.name FROM {bean[relation]} l JOIN l.investigation i "
                f"JOIN l.{relation} r WHERE i.id IN ({in_list(chunk)}) ORDER BY l.id"
            )
            for investigation_id, name in self._paged(client, session_id, query):
                names.setdefault(int(investigation_id), []).append(str(name))
        return names

    # -- archival -------------------------------------------------------------------------
    def _dataset(self, client: IcatClient, session_id: str, dataset_id: int) -> ArchivalRecords:
        query = (
            "SELECT o.id, i.id, o.name FROM Dataset o JOIN o.investigation i "
            f"WHERE o.id = {dataset_id}"
        )
        datasets = self._datasets(client, session_id, query)
        if not datasets:
            raise _not_found("Dataset", dataset_id)
        return ArchivalRecords(
            tuple(datasets), self._datafiles(client, session_id, f"ds.id = {dataset_id}")
        )

    def _investigation(
        self, client: IcatClient, session_id: str, investigation_id: int
    ) -> tuple[CatalogueInvestigation, ArchivalRecords]:
        found = self._investigations(client, session_id, f"o.id = {investigation_id}")
        if not found:
            raise _not_found("Investigation", investigation_id)
        query = (
            "SELECT o.id, i.id, o.name FROM Dataset o JOIN o.investigation i "
            f"WHERE i.id = {investigation_id} ORDER BY o.id"
        )
        datasets = self._datasets(client, session_id, query)
        datafiles = self._datafiles(client, session_id, f"i.id = {investigation_id}")
        return found[0], ArchivalRecords(tuple(datasets), datafiles)

    def _datasets(self, client: IcatClient, session_id: str, query: str) -> list[CatalogueDataset]:
        """``query`` selects (o.id, i.id, o.name) of Dataset rows ``o``, ordered."""
        return [
            CatalogueDataset(int(ds_id), int(inv_id), str(name))
            for ds_id, inv_id, name in self._paged(client, session_id, query)
        ]

    def _investigations(
        self, client: IcatClient, session_id: str, where: str
    ) -> list[CatalogueInvestigation]:
        """The investigations ``o`` that ``where`` selects, by id."""
        query = (
            "SELECT o.id, o.name, o.visitId, o.title FROM Investigation o "
            f"WHERE {where} ORDER BY o.id"
        )
        return [
            CatalogueInvestigation(int(i), str(name), str(visit_id), optional_text(title))
            for i, name, visit_id, title in self._paged(client, session_id, query)
        ]

    def _datafiles(
        self, client: IcatClient, session_id: str, where: str
    ) -> tuple[CatalogueDatafile, ...]:
        """Every datafile ``where`` selects (on o, ds, i), with its "Archival state" and
        "Archival failure": two paged queries."""
        rows = self._paged(
            client,
            session_id,
            f"SELECT o.id, ds.id, o.name, o.location {_DATAFILES} WHERE {where} ORDER BY o.id",
        )
        found = {
            int(df_id): (int(ds_id), str(name), optional_text(loc))
            for df_id, ds_id, name, loc in rows
        }
        archival: dict[int, dict[str, str]] = {}
        query = (
            f"SELECT o.id, t.name, p.stringValue {_DATAFILE_PARAMETERS} "
            f"WHERE {_types(ARCHIVAL_STATE, ARCHIVAL_FAILURE)} AND {where} ORDER BY p.id"
        )
        for df_id, parameter, value in self._paged(client, session_id, query):
            if value is not None:
                archival.setdefault(int(df_id), {})[str(parameter)] = str(value)
        return tuple(
            CatalogueDatafile(df_id, ds_id, name, location, None, None, archival.get(df_id, {}))
            for df_id, (ds_id, name, location) in found.items()
        )

    # -- look-ups ---------------------------------------------------------------------------
    def _find_investigations(
        self, client: IcatClient, session_id: str, name: str, visit_id: str | None
    ) -> list[CatalogueInvestigation]:
        where = f"o.name = {jpql_literal(name)}"
        if visit_id is not None:
            where += f" AND o.visitId = {jpql_literal(visit_id)}"
        found = self._investigations(client, session_id, where)
        states: dict[int, list[str]] = {}
        ids = [investigation.investigation_id for investigation in found]
        for chunk in chunks(ids, IN_CHUNK):
            query = (
                f"SELECT i.id, p.stringValue {_DATASET_PARAMETERS} "
                f"WHERE {_types(ARCHIVAL_STATE)} AND i.id IN ({in_list(chunk)}) ORDER BY p.id"
            )
            for inv_id, value in self._paged(client, session_id, query):
                if value is not None:
                    states.setdefault(int(inv_id), []).append(str(value))
        return [
            dataclasses.replace(i, dataset_states=tuple(states.get(i.investigation_id, ())))
            for i in found
        ]

    def _find_datasets(
        self,
        client: IcatClient,
        session_id: str,
        investigation: str,
        visit_id: str,
        name: str | None,
    ) -> list[CatalogueDataset]:
        where = f"i.name = {jpql_literal(investigation)} AND i.visitId = {jpql_literal(visit_id)}"
        if name is not None:
            where += f" AND o.name = {jpql_literal(name)}"
        query = (
            "SELECT o.id, i.id, o.name FROM Dataset o JOIN o.investigation i "
            f"WHERE {where} ORDER BY o.id"
        )
        found = self._datasets(client, session_id, query)
        states: dict[int, str] = {}
        ids = [dataset.dataset_id for dataset in found]
        for chunk in chunks(ids, IN_CHUNK):
            query = (
                f"SELECT ds.id, p.stringValue {_DATASET_PARAMETERS} "
                f"WHERE {_types(ARCHIVAL_STATE)} AND ds.id IN ({in_list(chunk)}) ORDER BY p.id"
            )
            for ds_id, value in self._paged(client, session_id, query):
                if value is not None:
                    states[int(ds_id)] = str(value)
        return [
            dataclasses.replace(d, archival={ARCHIVAL_STATE: states[d.dataset_id]})
            if d.dataset_id in states
            else d
            for d in found
        ]


@dataclass(frozen=True)
class _Row:
    """A datafile row of a restore selection: its values and its place in the hierarchy."""

    dataset_id: int
    location: str | None
    filesize: int | None
    checksum: str | None
    datafile: str
    dataset: str
    dataset_type: str
    investigation_id: int
    investigation: str
    visit_id: str

    def place(self, instruments: Sequence[str], cycles: Sequence[str]) -> DatafilePlace:
        """Its place, given its investigation's instruments and facility cycles (the
        ``DatafileKey`` a restored file travels with is read from it too)."""
        return DatafilePlace(
            instruments=tuple(instruments),
            facility_cycles=tuple(cycles),
            investigation=self.investigation,
            visit_id=self.visit_id,
            dataset_type=self.dataset_type,
            dataset=self.dataset,
            datafile=self.datafile,
        )


def _check(session_id: str) -> None:
    """No session at all is the caller's: refused before ICAT is asked."""
    if not session_id:
        raise SessionRefusedError("icat search: empty session id")
