"""The JPQL icat.server 6.2 passes on to the database beyond python-icat's Query: subqueries
in WHERE (IN, EXISTS, ANY/ALL, scalar), GROUP BY with HAVING, CASE and arithmetic."""

from __future__ import annotations

import icat
import pytest

from .conftest import login


@pytest.fixture(scope="module")
def invs(root, make_investigation):
    """Three investigations with 1, 2 and 3 datasets of 4 files each (sizes 0, 10, 20, 30),
    plus one larger file (size 35) in the last dataset of the last one."""
    import uuid

    prefix = f"J-{uuid.uuid4().hex[:8]}"
    made = [make_investigation(f"{prefix}-{n}", n_datasets=n, n_files=4) for n in (1, 2, 3)]
    [last] = root.search(
        f"SELECT o FROM Dataset o WHERE o.investigation.id = {made[-1].id} AND o.name = 'scan_0002'"
    )
    root.new("Datafile", name="big.nxs", dataset=last, fileSize=35).create()
    return prefix, made


def test_group_by_with_having_returns_field_sets(root, invs):
    prefix, made = invs
    rows = root.search(
        "SELECT i.name, COUNT(d) FROM Investigation i JOIN i.datasets d "
        f"WHERE i.name LIKE '{prefix}%' GROUP BY i.name HAVING COUNT(d) > 1 ORDER BY i.name"
    )
    assert [tuple(r) for r in rows] == [(f"{prefix}-2", 2), (f"{prefix}-3", 3)]
    # Entities grouped, filtered on an aggregate.
    found = root.search(
        "SELECT i FROM Investigation i JOIN i.datasets d JOIN d.datafiles f "
        f"WHERE i.name LIKE '{prefix}%' GROUP BY i HAVING MAX(f.fileSize) > 30"
    )
    assert [i.id for i in found] == [made[2].id]
    sizes = root.search(
        "SELECT SUM(f.fileSize) FROM Datafile f JOIN f.dataset d JOIN d.investigation i "
        f"WHERE i.name LIKE '{prefix}%' GROUP BY i.name ORDER BY SUM(f.fileSize) DESC"
    )
    assert sizes == [3 * 60 + 35, 2 * 60, 60]


def test_subqueries_in_where(root, invs):
    prefix, made = invs
    in_scope = f"i.name LIKE '{prefix}%'"
    assert root.search(
        f"SELECT i.name FROM Investigation i WHERE {in_scope} AND EXISTS (SELECT d FROM "
        "Dataset d WHERE d.investigation = i AND d.name = 'scan_0002')"
    ) == [f"{prefix}-3"]
    assert root.search(
        f"SELECT i.name FROM Investigation i WHERE {in_scope} AND NOT EXISTS (SELECT d FROM "
        "Dataset d WHERE d.investigation = i AND d.name = 'scan_0001')"
    ) == [f"{prefix}-1"]
    assert root.search(
        f"SELECT i.name FROM Investigation i WHERE {in_scope} AND i.id IN "
        "(SELECT d2.investigation.id FROM Dataset d2 WHERE d2.name = 'scan_0001') ORDER BY i.name"
    ) == [f"{prefix}-2", f"{prefix}-3"]
    # Scalar and quantified subqueries, correlated with the outer query.
    largest = root.search(
        "SELECT f.fileSize FROM Datafile f JOIN f.dataset d JOIN d.investigation i "
        f"WHERE {in_scope} AND f.fileSize = (SELECT MAX(g.fileSize) FROM Datafile g "
        "WHERE g.dataset = f.dataset) ORDER BY f.fileSize"
    )
    assert largest == [30] * 5 + [35]
    assert root.search(
        f"SELECT f.name FROM Datafile f WHERE f.dataset.investigation.id = {made[2].id} "
        "AND f.fileSize >= ALL (SELECT g.fileSize FROM Datafile g WHERE g.dataset = f.dataset) "
        "ORDER BY f.id"
    ) == ["file_0003.nxs", "file_0003.nxs", "big.nxs"]
    assert root.search(
        f"SELECT COUNT(f) FROM Datafile f WHERE f.dataset.investigation.id = {made[0].id} "
        "AND f.fileSize > ANY (SELECT g.fileSize FROM Datafile g WHERE g.dataset = f.dataset)"
    ) == [3]


def test_case_and_arithmetic(root, invs):
    _, made = invs
    scope = f"f.dataset.investigation.id = {made[0].id}"
    assert root.search(
        f"SELECT f.name FROM Datafile f WHERE {scope} AND CASE WHEN f.fileSize >= 20 "
        "THEN 'large' ELSE 'small' END = 'large' ORDER BY f.name"
    ) == ["file_0002.nxs", "file_0003.nxs"]
    assert root.search(
        f"SELECT f.fileSize FROM Datafile f WHERE {scope} "
        "ORDER BY CASE f.name WHEN 'file_0002.nxs' THEN 0 ELSE 1 END, f.fileSize DESC"
    ) == [20, 30, 10, 0]
    assert root.search(
        f"SELECT f.fileSize FROM Datafile f WHERE {scope} AND (f.fileSize + 5) * 2 > 40 "
        "AND f.fileSize-1 < 25"
    ) == [20]
    # Parentheses: nested conditions, a parenthesised CASE, an arithmetic group.
    assert root.search(
        f"SELECT f.fileSize FROM Datafile f WHERE {scope} AND ((f.fileSize = 0) OR "
        "(f.fileSize = 30)) AND (CASE WHEN f.fileSize = 0 THEN 5 ELSE 50 END) > 1 "
        "AND ((f.fileSize + 1) * 2 > 0) ORDER BY f.fileSize"
    ) == [0, 30]


def test_group_by_counts_only_what_the_rules_let_a_user_read(seeded, root, invs):
    prefix, made = invs
    alice = root.search("User [name='db/alice']") or [root.new("User", name="db/alice")]
    if alice[0].id is None:
        alice[0].create()
    root.new("InvestigationUser", user=alice[0], investigation=made[1], role="PI").create()
    alice_client = login(seeded.url, "db", "alice", "alice-pw")
    query = (
        "SELECT i.name, COUNT(d) FROM Investigation i JOIN i.datasets d "
        f"WHERE i.name LIKE '{prefix}%' GROUP BY i.name"
    )
    assert [tuple(r) for r in alice_client.search(query)] == [(f"{prefix}-2", 2)]
    assert len(root.search(query)) == 3


def test_what_icat_refuses(root):
    with pytest.raises(icat.ICATParameterError):  # CASE in SELECT: not in icat.server either
        root.search("SELECT CASE WHEN f.fileSize > 1 THEN 1 ELSE 0 END FROM Datafile f")
    with pytest.raises(icat.ICATParameterError):  # a subquery selects one item
        root.search("SELECT f FROM Datafile f WHERE f.id IN (SELECT g.id, g.name FROM Datafile g)")
    with pytest.raises(icat.ICATParameterError, match="only have SELECT, FROM and WHERE"):
        root.new(
            "Rule",
            crudFlags="R",
            what="SELECT d FROM Dataset d JOIN d.datafiles f GROUP BY d HAVING COUNT(f) > 1",
        ).create()
