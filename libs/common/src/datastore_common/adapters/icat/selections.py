"""``Selections`` on ICAT: a restore selection resolved with the *user's* session.

Every query runs on the shared :class:`~datastore_common.adapters.icat.pool.IcatClientPool` through
``raw_call(client, "search", session_id, query)``, so one pooled client serves every user and
ICAT's authorization (what this user may read) applies to every row. Few calls whatever the
size: ids go in ``IN`` lists (chunked), datafiles (with their place in the hierarchy) and their
"Archival state" come back in multi-column selects paged with ``LIMIT``: at most two existence
checks, two queries per kind of id named (investigations, datasets, datafiles), then the
instruments and facility cycles of the investigations found, for selections up to the page
size.

What a restore trusts is what Datastore wrote: each datafile's place (instrument and facility
cycle links, investigation name and visitId, dataset type and name, datafile name), from which
the planner rebuilds its location; and an "Archival state" only when ICAT says the functional
account wrote it (the parameter's ``modId``, set by ICAT itself, equals
``icat.functional_user``). A state someone else wrote, by hand or with a user's rights, does
not count: the datafile is "not archived" (409) until Datastore writes it again.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from datastore_common.adapters.icat.jpql import IN_CHUNK, PAGE, chunks, in_list, jpql_literal
from datastore_common.adapters.icat.pool import IcatClient, IcatClientPool, raw_call
from datastore_common.adapters.icat.sessions import as_the_user
from datastore_common.domain.archival import ARCHIVAL_STATE, PARAMETER_UNITS
from datastore_common.domain.paths import DatafilePlace
from datastore_common.domain.plan import RestoreItem
from datastore_common.domain.states import FINISHED
from datastore_common.errors import NotArchivedError, NotFoundError, SessionRefusedError
from datastore_common.logging import get_logger
from datastore_common.ports import Selections, describe_ids

log = get_logger(__name__)

# How each kind of id reaches a datafile row ``o`` (Datafile o JOIN o.dataset ds
# JOIN ds.investigation i).
_KEYS = (("Investigation", "i.id"), ("Dataset", "ds.id"), ("Datafile", "o.id"))


class IcatSelections(Selections):
    """Resolves restore selections in ICAT as the requesting user; ``archival_writer`` is the
    functional account as ICAT names it (``IcatSettings.functional_user``)."""

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
        if not session_id:
            raise SessionRefusedError("icat search: empty session id")
        named = {
            "Investigation": sorted(set(investigation_ids)),
            "Dataset": sorted(set(dataset_ids)),
            "Datafile": sorted(set(datafile_ids)),
        }
        return await as_the_user(
            lambda: self._pool.call(
                "resolve_selection", lambda client: self._resolve(client, session_id, named)
            )
        )

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
        joins = "FROM Datafile o JOIN o.dataset ds JOIN ds.type dt JOIN ds.investigation i"
        parameter_joins = (
            "FROM DatafileParameter p JOIN p.type t JOIN p.datafile o JOIN o.dataset ds "
            "JOIN ds.investigation i"
        )
        state_type = (
            f"t.name = {jpql_literal(ARCHIVAL_STATE)} AND t.units = {jpql_literal(PARAMETER_UNITS)}"
        )
        rows: dict[int, _Row] = {}
        states: dict[int, tuple[str, str | None]] = {}
        for entity, key in _KEYS:
            for chunk in chunks(named[entity], IN_CHUNK):
                where = f"{key} IN ({in_list(chunk)})"
                query = (
                    "SELECT o.id, ds.id, o.location, o.fileSize, o.checksum, o.name, ds.name, "
                    f"dt.name, i.id, i.name, i.visitId {joins} WHERE {where} ORDER BY o.id"
                )
                for row in self._paged(client, session_id, query):
                    df_id, ds_id, location, size, checksum, *names = row
                    rows[int(df_id)] = _Row(
                        dataset_id=int(ds_id),
                        location=None if location is None else str(location),
                        filesize=None if size is None else int(size),
                        checksum=None if checksum is None else str(checksum),
                        datafile=str(names[0]),
                        dataset=str(names[1]),
                        dataset_type=str(names[2]),
                        investigation_id=int(names[3]),
                        investigation=str(names[4]),
                        visit_id=str(names[5]),
                    )
                query = (
                    f"SELECT o.id, p.stringValue, p.modId {parameter_joins} "
                    f"WHERE {state_type} AND {where} ORDER BY p.id"
                )
                for df_id, value, written_by in self._paged(client, session_id, query):
                    if value is not None:
                        writer = None if written_by is None else str(written_by)
                        states[int(df_id)] = (str(value), writer)
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
                place = DatafilePlace(
                    instruments=tuple(instruments.get(row.investigation_id, ())),
                    facility_cycles=tuple(cycles.get(row.investigation_id, ())),
                    investigation=row.investigation,
                    visit_id=row.visit_id,
                    dataset_type=row.dataset_type,
                    dataset=row.dataset,
                    datafile=row.datafile,
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


@dataclass(frozen=True)
class _Row:
    """A datafile row of the selection: its values and its place in the hierarchy."""

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
