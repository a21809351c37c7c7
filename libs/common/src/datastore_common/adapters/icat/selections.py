"""``Selections`` on ICAT: a restore selection resolved with the *user's* session.

Every query runs on the shared :class:`~datastore_common.adapters.icat.pool.IcatClientPool` through
``raw_call(client, "search", session_id, query)``, so one pooled client serves every user and
ICAT's authorization (what this user may read) applies to every row. Few calls whatever the
size: ids go in ``IN`` lists (chunked), datafiles and their "Archival state" come back in
multi-column selects paged with ``LIMIT``: at most two existence checks plus two queries per
kind of id named (investigations, datasets, datafiles) for selections up to the page size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from datastore_common.adapters.icat.jpql import IN_CHUNK, PAGE, chunks, in_list, jpql_literal
from datastore_common.adapters.icat.pool import IcatClient, IcatClientPool, raw_call
from datastore_common.adapters.icat.sessions import as_the_user
from datastore_common.domain.archival import ARCHIVAL_STATE, PARAMETER_UNITS
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
    """Resolves restore selections in ICAT as the requesting user."""

    def __init__(self, pool: IcatClientPool) -> None:
        self._pool = pool
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

        # 2. The datafiles, and 3. their "Archival state", per kind of id named.
        joins = "FROM Datafile o JOIN o.dataset ds JOIN ds.investigation i"
        parameter_joins = (
            "FROM DatafileParameter p JOIN p.type t JOIN p.datafile o JOIN o.dataset ds "
            "JOIN ds.investigation i"
        )
        state_type = (
            f"t.name = {jpql_literal(ARCHIVAL_STATE)} AND t.units = {jpql_literal(PARAMETER_UNITS)}"
        )
        rows: dict[int, tuple[int, str | None, int | None, str | None]] = {}
        states: dict[int, str] = {}
        for entity, key in _KEYS:
            for chunk in chunks(named[entity], IN_CHUNK):
                where = f"{key} IN ({in_list(chunk)})"
                query = (
                    "SELECT o.id, ds.id, o.location, o.fileSize, o.checksum "
                    f"{joins} WHERE {where} ORDER BY o.id"
                )
                for df_id, ds_id, location, size, checksum in self._paged(
                    client, session_id, query
                ):
                    rows[int(df_id)] = (
                        int(ds_id),
                        None if location is None else str(location),
                        None if size is None else int(size),
                        None if checksum is None else str(checksum),
                    )
                query = (
                    f"SELECT o.id, p.stringValue {parameter_joins} "
                    f"WHERE {state_type} AND {where} ORDER BY p.id"
                )
                for df_id, value in self._paged(client, session_id, query):
                    if value is not None:
                        states[int(df_id)] = str(value)
        missing["Datafile"] = [i for i in named["Datafile"] if i not in rows]
        if any(missing.values()):
            raise NotFoundError(
                "not found, or not readable with your ICAT session: " + describe_ids(missing)
            )

        refused: dict[int, str | None] = {}
        items = []
        for df_id, (ds_id, location, size, checksum) in rows.items():
            state = states.get(df_id)
            if state != FINISHED:
                refused[df_id] = state
            elif not location:
                refused[df_id] = f"{state}, but no location"
            else:
                items.append(RestoreItem(df_id, ds_id, location, checksum, size))
        if refused:
            raise NotArchivedError(refused)
        log.info("restore_selection_resolved", datafiles=len(items))
        return sorted(items, key=lambda item: (item.dataset_id, item.location))
