"""``Selections`` on ICAT: restore selections, the archival of datasets and investigations,
and look-ups by name, all with the *user's* session.

Every query runs on a :class:`~datastore_common.adapters.icat.pool.IcatClientPool` (the
gateway gives selections their own, so they never starve logins) through
``raw_call(client, "search", session_id, query)``, so one pooled client serves every user and
ICAT's authorization (what this user may read) applies to every row. Few calls whatever the
size: ids go in ``IN`` lists (chunked), datafiles (with their place in the hierarchy) and
their archival parameters come back in multi-column selects paged with ``LIMIT``: for a
restore, at most two existence checks, one query per kind of id named (investigations,
datasets, datafiles), one for the states of the datafiles found, then the instruments and
facility cycles of the investigations found, for selections up to the page size; for a
dataset's or an investigation's archival, three or four; for a look-up, two. A restore
selection reads at most one datafile past its size limit, and every read stops at its
deadline (``icat.selection_deadline_seconds``) rather than hold a pooled client longer.

What a restore trusts is what Datastore wrote: each datafile's place (instrument and facility
cycle links, investigation name and visitId, dataset type and name, datafile name), from which
the planner rebuilds its location; and an "Archival state" only when ICAT says the functional
account wrote it (the parameter's ``modId``, set by ICAT itself, equals
``icat.functional_user``). A state someone else wrote, by hand or with a user's rights, does
not count: the datafile is "not archived" (409) until Datastore writes it again. The status
and look-ups read the same way: an "Archival state" or "Archival failure" someone else wrote
counts as none (never archived, not ended). Look-ups by name see only ``icat.facility``.

Every call is made with a user's session (``as_the_user``): ICAT refusing it is the caller's
``SessionRefusedError`` (401), not a peer refusing Datastore.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
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
from datastore_common.errors import (
    DeadlineExceededError,
    NotArchivedError,
    NotFoundError,
    SessionRefusedError,
    TooLargeError,
)
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


def _not_found(entity: str, entity_id: int) -> NotFoundError:
    return NotFoundError(
        "not found, or not readable with your ICAT session: " + describe_ids({entity: [entity_id]})
    )


class IcatSelections(Selections):
    """Reads ICAT as the requesting user: restore selections, archival, look-ups.

    ``archival_writer`` is the functional account as ICAT names it
    (``IcatSettings.functional_user``): the only writer whose archival parameters count,
    with ``trusted_writers`` (``icat.trusted_writers``: the original Datastore API's
    account, after taking over from it); ``parameter_units`` are the units of the archival
    ParameterTypes (``icat.archival_parameter_units``); ``facility`` the facility look-ups
    are limited to; ``deadline_seconds`` how long one read may take
    (``IcatSettings.selection_deadline_seconds``): past it the read stops at its next ICAT
    call and the caller gets ``DeadlineExceededError``."""

    def __init__(
        self,
        pool: IcatClientPool,
        *,
        archival_writer: str,
        trusted_writers: Sequence[str] = (),
        parameter_units: str = PARAMETER_UNITS,
        facility: str = "facility",
        deadline_seconds: float = 60.0,
    ) -> None:
        self._pool = pool
        self.archival_writer = archival_writer
        self.writers = frozenset((archival_writer, *trusted_writers))
        self.parameter_units = parameter_units
        self.facility = facility
        self.deadline_seconds = deadline_seconds
        self.searches = 0  # ICAT search calls made (tests assert few)

    async def resolve(
        self,
        session_id: str,
        investigation_ids: Sequence[int],
        dataset_ids: Sequence[int],
        datafile_ids: Sequence[int],
        *,
        max_datafiles: int | None = None,
    ) -> list[RestoreItem]:
        named = {
            "Investigation": sorted(set(investigation_ids)),
            "Dataset": sorted(set(dataset_ids)),
            "Datafile": sorted(set(datafile_ids)),
        }
        return await self._as_the_user(
            "resolve_selection",
            session_id,
            lambda reader: self._resolve(reader, named, max_datafiles),
        )

    async def dataset_archival(self, session_id: str, dataset_id: int) -> ArchivalRecords:
        return await self._as_the_user(
            "dataset_archival", session_id, lambda reader: self._dataset(reader, dataset_id)
        )

    async def investigation_archival(
        self, session_id: str, investigation_id: int
    ) -> tuple[CatalogueInvestigation, ArchivalRecords]:
        return await self._as_the_user(
            "investigation_archival",
            session_id,
            lambda reader: self._investigation(reader, investigation_id),
        )

    async def find_investigations(
        self,
        session_id: str,
        name: str,
        visit_id: str | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[CatalogueInvestigation]:
        return await self._as_the_user(
            "find_investigations",
            session_id,
            lambda reader: self._find_investigations(reader, name, visit_id, after, limit),
        )

    async def find_datasets(
        self,
        session_id: str,
        investigation: str,
        visit_id: str,
        name: str | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[CatalogueDataset]:
        return await self._as_the_user(
            "find_datasets",
            session_id,
            lambda reader: self._find_datasets(reader, investigation, visit_id, name, after, limit),
        )

    async def _as_the_user(
        self, operation: str, session_id: str, work: Callable[[_Reader], T]
    ) -> T:
        """``work`` on a pooled client with a user's session, within the deadline: ICAT
        refusing the session is the caller's SessionRefusedError (``sessions.as_the_user``);
        the deadline counts the wait for a client too, and the work itself stops at its next
        ICAT call once it has passed (a thread cannot be cancelled, but it can stop asking)."""
        _check(session_id)
        deadline = time.monotonic() + self.deadline_seconds
        late = DeadlineExceededError(
            f"icat {operation}: not done within {self.deadline_seconds:g} s "
            "(icat.selection_deadline_seconds); ICAT is read no further: select less, or "
            "retry later"
        )

        def on_a_client(client: IcatClient) -> T:
            return work(_Reader(self, client, session_id, deadline, late))

        try:
            return await asyncio.wait_for(
                as_the_user(lambda: self._pool.call(operation, on_a_client)),
                timeout=self.deadline_seconds,
            )
        except TimeoutError:
            raise late from None

    def _resolve(
        self, reader: _Reader, named: dict[str, list[int]], max_datafiles: int | None
    ) -> list[RestoreItem]:
        # 1. Every investigation and dataset named must be readable (a datafile is checked
        #    by finding it below): unknown and forbidden look alike, as ICAT means them to.
        missing: dict[str, list[int]] = {}
        for entity in ("Investigation", "Dataset"):
            found: set[int] = set()
            for chunk in chunks(named[entity], IN_CHUNK):
                query = f"SELECT o.id FROM {entity} o WHERE o.id IN ({in_list(chunk)})"
                found.update(int(i) for i in reader.search(query))
            missing[entity] = [i for i in named[entity] if i not in found]

        # 2. The datafiles with their place, per kind of id named: no more than one past
        #    the limit (each page asks for what is left of it), so an oversized selection is
        #    refused having read max_datafiles + 1 rows, not all of them.
        rows: dict[int, _Row] = {}

        def left() -> int:
            return PAGE if max_datafiles is None else max_datafiles + 1 - len(rows)

        for entity, key in _KEYS:
            for chunk in chunks(named[entity], IN_CHUNK):
                query = (
                    "SELECT o.id, ds.id, o.location, o.fileSize, o.checksum, o.name, ds.name, "
                    f"dt.name, i.id, i.name, i.visitId {_PLACED_DATAFILES} "
                    f"WHERE {key} IN ({in_list(chunk)}) ORDER BY o.id"
                )
                for row in reader.paged(query, page_size=left):
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
                if max_datafiles is not None and len(rows) > max_datafiles:
                    raise TooLargeError(
                        f"the selection holds more than {max_datafiles} datafiles; the limit "
                        f"is {max_datafiles}"
                    )
        missing["Datafile"] = [i for i in named["Datafile"] if i not in rows]
        if any(missing.values()):
            raise NotFoundError(
                "not found, or not readable with your ICAT session: " + describe_ids(missing)
            )

        # 3. Their "Archival state" with who wrote it, for the datafiles found only.
        states: dict[int, tuple[str, str | None]] = {}
        for chunk in chunks(sorted(rows), IN_CHUNK):
            query = (
                f"SELECT o.id, p.stringValue, p.modId {_DATAFILE_PARAMETERS} "
                f"WHERE {self._types(ARCHIVAL_STATE)} AND o.id IN ({in_list(chunk)}) ORDER BY p.id"
            )
            for df_id, value, written_by in reader.paged(query):
                if value is not None:
                    states[int(df_id)] = (str(value), optional_text(written_by))

        # 4. The instruments and facility cycles of the investigations: the top of each path.
        investigations = sorted({row.investigation_id for row in rows.values()})
        instruments = self._links(reader, investigations, "instrument")
        cycles = self._links(reader, investigations, "facilityCycle")

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
        if refused:  # with what could be restored, for a partial restore
            raise NotArchivedError(
                refused, sorted(items, key=lambda item: (item.dataset_id, item.location))
            )
        log.info("restore_selection_resolved", datafiles=len(items))
        return sorted(items, key=lambda item: (item.dataset_id, item.location))

    def _trusted_state(self, found: tuple[str, str | None] | None) -> str | None:
        """The "Archival state" as a restore counts it: only what the functional account
        wrote (ICAT's own ``modId``); anything else is named, and never FINISHED."""
        if found is None:
            return None
        value, writer = found
        if writer in self.writers:
            return value
        return f"{value} written by {writer!r}, not by Datastore: not counted"

    def _types(self, *names: str) -> str:
        """The condition on ``t`` that selects these archival parameter types."""
        return f"t.name IN ({in_list(names)}) AND t.units = {jpql_literal(self.parameter_units)}"

    def _ours(self, writer: Any) -> bool:
        """Whether ICAT says the functional account (or a trusted writer) wrote a parameter
        (its ``modId``)."""
        return optional_text(writer) in self.writers

    def _links(
        self, reader: _Reader, investigation_ids: list[int], relation: str
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
            for investigation_id, name in reader.paged(query):
                names.setdefault(int(investigation_id), []).append(str(name))
        return names

    # -- archival -------------------------------------------------------------------------
    def _dataset(self, reader: _Reader, dataset_id: int) -> ArchivalRecords:
        query = (
            "SELECT o.id, i.id, o.name FROM Dataset o JOIN o.investigation i "
            f"WHERE o.id = {dataset_id}"
        )
        datasets = self._datasets(reader, query)
        if not datasets:
            raise _not_found("Dataset", dataset_id)
        return ArchivalRecords(tuple(datasets), self._datafiles(reader, f"ds.id = {dataset_id}"))

    def _investigation(
        self, reader: _Reader, investigation_id: int
    ) -> tuple[CatalogueInvestigation, ArchivalRecords]:
        found = self._investigations(reader, f"o.id = {investigation_id}")
        if not found:
            raise _not_found("Investigation", investigation_id)
        query = (
            "SELECT o.id, i.id, o.name FROM Dataset o JOIN o.investigation i "
            f"WHERE i.id = {investigation_id} ORDER BY o.id"
        )
        datasets = self._datasets(reader, query)
        datafiles = self._datafiles(reader, f"i.id = {investigation_id}")
        return found[0], ArchivalRecords(tuple(datasets), datafiles)

    def _datasets(
        self, reader: _Reader, query: str, limit: int | None = None
    ) -> list[CatalogueDataset]:
        """``query`` selects (o.id, i.id, o.name) of Dataset rows ``o``, ordered; the first
        ``limit`` (all without one)."""
        return [
            CatalogueDataset(int(ds_id), int(inv_id), str(name))
            for ds_id, inv_id, name in reader.first(query, limit)
        ]

    def _investigations(
        self,
        reader: _Reader,
        where: str,
        limit: int | None = None,
        *,
        in_facility: bool = False,
    ) -> list[CatalogueInvestigation]:
        """The investigations ``o`` that ``where`` selects (of our facility only when
        ``in_facility``), by id; the first ``limit`` (all without one)."""
        joined = "Investigation o"
        if in_facility:
            joined += " JOIN o.facility f"
            where = f"f.name = {jpql_literal(self.facility)} AND {where}"
        query = f"SELECT o.id, o.name, o.visitId, o.title FROM {joined} WHERE {where} ORDER BY o.id"
        return [
            CatalogueInvestigation(int(i), str(name), str(visit_id), optional_text(title))
            for i, name, visit_id, title in reader.first(query, limit)
        ]

    def _datafiles(self, reader: _Reader, where: str) -> tuple[CatalogueDatafile, ...]:
        """Every datafile ``where`` selects (on o, ds, i), with the "Archival state" and
        "Archival failure" the functional account wrote (ICAT's ``modId``; anyone else's
        count as none): two paged queries."""
        rows = reader.paged(
            f"SELECT o.id, ds.id, o.name, o.location {_DATAFILES} WHERE {where} ORDER BY o.id"
        )
        found = {
            int(df_id): (int(ds_id), str(name), optional_text(loc))
            for df_id, ds_id, name, loc in rows
        }
        archival: dict[int, dict[str, str]] = {}
        query = (
            f"SELECT o.id, t.name, p.stringValue, p.modId {_DATAFILE_PARAMETERS} "
            f"WHERE {self._types(ARCHIVAL_STATE, ARCHIVAL_FAILURE)} AND {where} ORDER BY p.id"
        )
        for df_id, parameter, value, written_by in reader.paged(query):
            if value is not None and self._ours(written_by):
                archival.setdefault(int(df_id), {})[str(parameter)] = str(value)
        return tuple(
            CatalogueDatafile(df_id, ds_id, name, location, None, None, archival.get(df_id, {}))
            for df_id, (ds_id, name, location) in found.items()
        )

    # -- look-ups ---------------------------------------------------------------------------
    def _find_investigations(
        self,
        reader: _Reader,
        name: str,
        visit_id: str | None,
        after: int | None,
        limit: int | None,
    ) -> list[CatalogueInvestigation]:
        where = f"o.name = {jpql_literal(name)}"
        if visit_id is not None:
            where += f" AND o.visitId = {jpql_literal(visit_id)}"
        if after is not None:
            where += f" AND o.id > {int(after)}"
        found = self._investigations(reader, where, limit, in_facility=True)
        states: dict[int, list[str]] = {}
        ids = [investigation.investigation_id for investigation in found]
        for chunk in chunks(ids, IN_CHUNK):
            query = (
                f"SELECT i.id, p.stringValue, p.modId {_DATASET_PARAMETERS} "
                f"WHERE {self._types(ARCHIVAL_STATE)} AND i.id IN ({in_list(chunk)}) ORDER BY p.id"
            )
            for inv_id, value, written_by in reader.paged(query):
                if value is not None and self._ours(written_by):
                    states.setdefault(int(inv_id), []).append(str(value))
        return [
            dataclasses.replace(i, dataset_states=tuple(states.get(i.investigation_id, ())))
            for i in found
        ]

    def _find_datasets(
        self,
        reader: _Reader,
        investigation: str,
        visit_id: str,
        name: str | None,
        after: int | None,
        limit: int | None,
    ) -> list[CatalogueDataset]:
        where = (
            f"f.name = {jpql_literal(self.facility)} AND i.name = {jpql_literal(investigation)} "
            f"AND i.visitId = {jpql_literal(visit_id)}"
        )
        if name is not None:
            where += f" AND o.name = {jpql_literal(name)}"
        if after is not None:
            where += f" AND o.id > {int(after)}"
        query = (
            "SELECT o.id, i.id, o.name FROM Dataset o JOIN o.investigation i "
            f"JOIN i.facility f WHERE {where} ORDER BY o.id"
        )
        found = self._datasets(reader, query, limit)
        states: dict[int, str] = {}
        ids = [dataset.dataset_id for dataset in found]
        for chunk in chunks(ids, IN_CHUNK):
            query = (
                f"SELECT ds.id, p.stringValue, p.modId {_DATASET_PARAMETERS} "
                f"WHERE {self._types(ARCHIVAL_STATE)} AND ds.id IN ({in_list(chunk)}) ORDER BY p.id"
            )
            for ds_id, value, written_by in reader.paged(query):
                if value is not None and self._ours(written_by):
                    states[int(ds_id)] = str(value)
        return [
            dataclasses.replace(d, archival={ARCHIVAL_STATE: states[d.dataset_id]})
            if d.dataset_id in states
            else d
            for d in found
        ]


class _Reader:
    """One read's searches, on one pooled client with the user's session, each refused once
    the read's deadline has passed (so a read past it stops at its next ICAT call)."""

    def __init__(
        self,
        owner: IcatSelections,
        client: IcatClient,
        session_id: str,
        deadline: float,
        late: DeadlineExceededError,
    ) -> None:
        self._owner = owner
        self._client = client
        self._session_id = session_id
        self._deadline = deadline
        self._late = late

    def search(self, query: str) -> list[Any]:
        if time.monotonic() >= self._deadline:
            raise self._late
        self._owner.searches += 1
        # client.getEntity only converts (a fieldSet to a tuple); no ICAT call.
        rows = raw_call(self._client, "search", self._session_id, query)
        return [self._client.getEntity(row) for row in rows]

    def paged(self, query: str, *, page_size: Callable[[], int] | None = None) -> Iterator[Any]:
        """Every row, a page at a time (``LIMIT start, size``); ``page_size()`` says how many
        the next page may hold (at most PAGE; none left stops)."""
        start = 0
        while True:
            size = PAGE if page_size is None else min(PAGE, page_size())
            if size <= 0:
                return
            rows = self.search(f"{query} LIMIT {start}, {size}")
            yield from rows
            if len(rows) < size:
                return
            start += size

    def first(self, query: str, limit: int | None) -> Iterator[Any]:
        """The first ``limit`` rows (every row without one)."""
        if limit is None:
            return self.paged(query)
        # islice stops asking for rows at the limit-th: no page beyond it is searched.
        return itertools.islice(self.paged(query, page_size=lambda: min(PAGE, limit)), limit)


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
