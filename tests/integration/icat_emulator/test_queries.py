"""Searches as python-icat's Query writes them, and hand-written JPQL."""

from __future__ import annotations

import datetime

import pytest
from icat.query import Query


@pytest.fixture(scope="module")
def inv(make_investigation):
    import uuid

    return make_investigation(f"Q-{uuid.uuid4().hex[:8]}", n_datasets=3, n_files=4)


def _files(root, inv, **kwargs):
    conditions = {"dataset.investigation.id": f"= {inv.id}", **kwargs.pop("conditions", {})}
    return root.search(Query(root, "Datafile", conditions=conditions, **kwargs))


def test_conditions_order_and_limit(root, inv):
    found = _files(
        root,
        inv,
        conditions={"fileSize": ">= 20", "dataset.name": "= 'scan_0001'"},
        order=[("name", "DESC")],
        limit=(0, 1),
    )
    assert [(f.name, f.fileSize) for f in found] == [("file_0003.nxs", 30)]
    found = _files(
        root,
        inv,
        conditions={"fileSize": ["> 0", "< 30"]},
        order=["dataset.name", "name"],
        limit=(1, 3),
    )
    assert [(f.name, f.fileSize) for f in found] == [
        ("file_0002.nxs", 20),
        ("file_0001.nxs", 10),
        ("file_0002.nxs", 20),
    ]


def test_in_like_and_null_conditions(root, inv):
    assert len(_files(root, inv, conditions={"name": "IN ('file_0000.nxs', 'file_0003.nxs')"})) == 6
    assert len(_files(root, inv, conditions={"name": "LIKE '%0001.nxs'"})) == 3
    assert len(_files(root, inv, conditions={"checksum": "IS NULL"})) == 12
    assert _files(root, inv, conditions={"fileSize": "IS NOT NULL", "name": "<> 'file_0000.nxs'"})
    # LIKE is case-sensitive, as in JPQL
    assert _files(root, inv, conditions={"name": "LIKE 'FILE%'"}) == []


def test_or_and_not_in_raw_jpql(root, inv):
    query = (
        f"SELECT o FROM Datafile o JOIN o.dataset AS ds WHERE ds.investigation.id = {inv.id}"
        " AND (o.fileSize = 0 OR o.fileSize = 30) AND NOT ds.name = 'scan_0000'"
        " ORDER BY ds.name, o.name"
    )
    assert [(f.fileSize) for f in root.search(query)] == [0, 30, 0, 30]


def test_includes_nested_and_include_1(root, inv):
    (df,) = _files(
        root,
        inv,
        conditions={"name": "= 'file_0001.nxs'", "dataset.name": "= 'scan_0002'"},
        includes=["dataset.investigation.facility", "datafileFormat"],
    )
    assert df.dataset.name == "scan_0002"
    assert df.dataset.investigation.id == inv.id
    assert df.dataset.investigation.facility.name == "facility"
    assert df.datafileFormat is None

    (ds,) = root.search(
        f"SELECT o FROM Dataset o WHERE o.investigation.id = {inv.id} "
        "AND o.name = 'scan_0000' INCLUDE 1"
    )
    assert ds.investigation.name == inv.name and ds.type.name == "scan"
    assert ds.datafiles == []  # INCLUDE 1 is many-to-one relations only

    (full,) = root.search(
        Query(
            root,
            "Investigation",
            conditions={"id": f"= {inv.id}"},
            includes=["datasets.datafiles", "type"],
        )
    )
    assert sorted(d.name for d in full.datasets) == ["scan_0000", "scan_0001", "scan_0002"]
    assert all(len(d.datafiles) == 4 for d in full.datasets)
    assert full.type.name == "type"


def test_aggregates(root, inv):
    base = {"dataset.investigation.id": f"= {inv.id}"}
    assert root.search(Query(root, "Datafile", conditions=base, aggregate="COUNT")) == [12]
    assert root.search(
        Query(root, "Datafile", conditions=base, attributes="fileSize", aggregate="MAX")
    ) == [30]
    assert root.search(
        Query(root, "Datafile", conditions=base, attributes="fileSize", aggregate="MIN")
    ) == [0]
    assert root.search(
        Query(root, "Datafile", conditions=base, attributes="fileSize", aggregate="SUM")
    ) == [180]
    assert root.search(
        Query(root, "Datafile", conditions=base, attributes="fileSize", aggregate="AVG")
    ) == [15.0]
    assert sorted(
        root.search(
            Query(root, "Datafile", conditions=base, attributes="name", aggregate="DISTINCT")
        )
    ) == ["file_0000.nxs", "file_0001.nxs", "file_0002.nxs", "file_0003.nxs"]
    assert root.search(
        Query(root, "Datafile", conditions=base, attributes="name", aggregate="COUNT:DISTINCT")
    ) == [4]


def test_several_attributes_come_back_as_tuples(root, inv):
    rows = root.search(
        Query(
            root,
            "Dataset",
            conditions={"investigation.id": f"= {inv.id}"},
            attributes=["name", "complete"],
            order=["name"],
        )
    )
    assert rows == [("scan_0000", False), ("scan_0001", False), ("scan_0002", False)]


def test_get_with_include(root, inv):
    (ds,) = root.search(
        f"SELECT o FROM Dataset o WHERE o.investigation.id = {inv.id} AND o.name = 'scan_0001'"
    )
    got = root.get("Dataset ds INCLUDE ds.investigation.facility, ds.datafiles", ds.id)
    assert got.investigation.facility.name == "facility"
    assert len(got.datafiles) == 4
    assert root.get("Dataset", ds.id).investigation is None  # no INCLUDE, no relation


def test_dates_round_trip_and_compare(root, inv):
    start = datetime.datetime(2024, 6, 5, 10, 53, 29, 501000, tzinfo=datetime.UTC)
    inv_obj = root.get("Investigation INCLUDE 1", inv.id)
    inv_obj.startDate = start
    inv_obj.update()
    got = root.get("Investigation", inv.id)
    assert got.startDate == start
    assert got.createTime <= got.modTime
    assert got.createId == got.modId == "simple/root"
    later = root.search(
        f"SELECT o FROM Investigation o WHERE o.id = {inv.id} "
        "AND o.startDate > {ts 2024-06-05 10:00:00}"
    )
    assert [i.id for i in later] == [inv.id]
    assert (
        root.search(
            f"SELECT o FROM Investigation o WHERE o.id = {inv.id} "
            "AND o.startDate > '2024-06-05T11:00:00Z'"
        )
        == []
    )


def test_current_timestamp_is_the_time_the_query_runs(root, inv):
    # As in the example rules "o.releaseDate < CURRENT_TIMESTAMP": past and future dates.
    inv_obj = root.get("Investigation INCLUDE 1", inv.id)
    now = datetime.datetime.now(datetime.UTC)
    inv_obj.startDate = now - datetime.timedelta(seconds=5)
    inv_obj.endDate = now + datetime.timedelta(hours=1)
    inv_obj.update()
    where = f"SELECT o.id FROM Investigation o WHERE o.id = {inv.id} AND "
    assert root.search(where + "o.startDate < CURRENT_TIMESTAMP") == [inv.id]
    assert root.search(where + "o.endDate < CURRENT_TIMESTAMP") == []
    assert root.search(where + "o.endDate > current_timestamp AND o.endDate > CURRENT_DATE") == [
        inv.id
    ]
