"""How much ``IcatSelections`` reads, and for how long: a restore selection stops one datafile
past its size limit, and any read stops at its deadline. On a real ``IcatClientPool`` whose
clients are scripted (no ICAT): each answers a search from the query it is given."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from datastore_common.adapters.icat.jpql import PAGE
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.icat.selections import IcatSelections
from datastore_common.errors import DeadlineExceededError, TooLargeError

WRITER = "simple/datastore"
_LIMIT = re.compile(r"LIMIT (\d+), (\d+)$")


class ScriptedClient:
    """A python-icat client as ``raw_call`` uses it: ``service.search`` answers ``answer(query)``
    after ``delay`` seconds; every query asked is kept."""

    def __init__(self, answer: Callable[[str], list[Any]], *, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.queries: list[str] = []
        self.rows_returned = 0
        self.service = self
        self.lock = threading.Lock()

    def search(self, session_id: str, query: str) -> list[Any]:
        with self.lock:
            self.queries.append(query)
        time.sleep(self.delay)
        rows = self.answer(query)
        self.rows_returned += len(rows)
        return rows

    def getUserName(self, session_id: str) -> str:
        return "simple/root"

    def getEntity(self, row: Any) -> Any:
        return row


class ScriptedPool(IcatClientPool):
    def __init__(self, client: ScriptedClient, size: int = 2) -> None:
        super().__init__("http://icat.invalid", size=size)
        self.client = client

    def _build(self) -> Any:
        return self.client


def page(query: str, rows: list[Any]) -> list[Any]:
    """The rows a ``LIMIT start, size`` query gets of ``rows``."""
    found = _LIMIT.search(query)
    if found is None:
        return rows
    start, size = int(found[1]), int(found[2])
    return rows[start : start + size]


def datafile_row(datafile_id: int) -> tuple[Any, ...]:
    return (
        datafile_id,
        10,
        f"instrument/20XX/ABC123-1/scan/scan_0000/f{datafile_id}.nxs",
        1024,
        None,
        f"f{datafile_id}.nxs",
        "scan_0000",
        "scan",
        1,
        "ABC123",
        "1",
    )


def one_investigation(datafiles: int) -> Callable[[str], list[Any]]:
    """ICAT holding investigation 1 with dataset 10 of ``datafiles`` datafiles (ids from
    100), every one FINISHED by the functional account."""
    rows = [datafile_row(100 + i) for i in range(datafiles)]

    def answer(query: str) -> list[Any]:
        if query.startswith("SELECT o.id FROM Investigation"):
            return [1]
        if query.startswith("SELECT o.id FROM Dataset"):
            return [10]
        if "FROM Datafile o JOIN o.dataset ds JOIN ds.type dt" in query:
            return page(query, rows)
        if "FROM DatafileParameter" in query:
            return page(query, [(row[0], "FINISHED", WRITER) for row in rows])
        if "InvestigationInstrument" in query:
            return page(query, [(1, "instrument")])
        if "InvestigationFacilityCycle" in query:
            return page(query, [(1, "20XX")])
        raise AssertionError(f"unexpected query: {query}")

    return answer


async def test_a_selection_over_the_limit_is_refused_having_read_one_datafile_past_it() -> None:
    client = ScriptedClient(one_investigation(datafiles=12_000))
    selections = IcatSelections(ScriptedPool(client), archival_writer=WRITER)
    with pytest.raises(TooLargeError, match="more than 3 datafiles"):
        await selections.resolve("sid", [], [10], [], max_datafiles=3)
    datafile_queries = [q for q in client.queries if "JOIN ds.type dt" in q]
    assert [q.rsplit(" LIMIT ", 1)[1] for q in datafile_queries] == ["0, 4"]
    assert client.rows_returned == 1 + 4  # the dataset's id, then 4 datafiles
    assert not any("DatafileParameter" in q for q in client.queries)  # states not read


async def test_without_a_limit_every_page_is_read() -> None:
    client = ScriptedClient(one_investigation(datafiles=PAGE + 2))
    selections = IcatSelections(ScriptedPool(client), archival_writer=WRITER)
    items = await selections.resolve("sid", [], [10], [])
    assert len(items) == PAGE + 2


async def test_overlapping_ids_within_the_limit_resolve_whole() -> None:
    """Rows named twice (through the investigation and the dataset) do not count twice: the
    dataset's read goes on past them, a page the size of what is left at a time."""
    client = ScriptedClient(one_investigation(datafiles=4))
    selections = IcatSelections(ScriptedPool(client), archival_writer=WRITER)
    items = await selections.resolve("sid", [1], [10], [103], max_datafiles=4)
    assert sorted(item.datafile_id for item in items) == [100, 101, 102, 103]
    with pytest.raises(TooLargeError):
        await selections.resolve("sid", [1], [10], [103], max_datafiles=3)


def endless(query: str) -> list[Any]:
    """An ICAT whose datafile query always has another full page (or a huge dataset)."""
    if "FROM Dataset o" in query:
        return [(10, 1, "scan_0000")]
    found = _LIMIT.search(query)
    start, size = (int(found[1]), int(found[2])) if found else (0, PAGE)
    return [(i, 10, f"f{i}", None) for i in range(start, start + size)]


async def test_a_read_past_its_deadline_is_refused_and_stops_asking_icat() -> None:
    client = ScriptedClient(endless, delay=0.2)
    selections = IcatSelections(ScriptedPool(client), archival_writer=WRITER, deadline_seconds=1)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError, match=r"icat.selection_deadline_seconds"):
        await selections.dataset_archival("sid", 10)
    assert time.monotonic() - started < 3
    await asyncio.sleep(0.6)  # the thread's search in flight ends; it asks no more
    asked = len(client.queries)
    await asyncio.sleep(0.6)
    assert len(client.queries) == asked
    assert asked < 12


async def test_a_hung_icat_call_and_the_reads_waiting_for_a_client_end_at_the_deadline() -> None:
    """Both selection clients stuck in a call: their reads and a third one waiting for a
    client are all refused at the deadline, none hangs."""
    release = threading.Event()

    def blocked(query: str) -> list[Any]:
        release.wait(5)
        return []

    client = ScriptedClient(blocked)
    selections = IcatSelections(
        ScriptedPool(client, size=2), archival_writer=WRITER, deadline_seconds=0.5
    )
    try:
        results = await asyncio.gather(
            *(selections.find_datasets("sid", "ABC123", "1") for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, DeadlineExceededError) for r in results)
    finally:
        release.set()
