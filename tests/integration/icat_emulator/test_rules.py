"""ICAT's rule-based authorisation and its concise query syntax, with python-icat as the client.

Each test that changes rules starts its own emulator (``icat_emulator_factory``) seeded with
deploy/local/icat/example.yaml, whose rules give: root users (configuration) everything; the
``writers`` grouping (simple/datastore) CRUD on every entity; everyone the public catalogue;
investigation users and instrument scientists their investigations and what is in them.
"""

from __future__ import annotations

import icat
import pytest

from tests.support.icat_fixtures import IcatEmulator, run_icat_script

from .conftest import ingest_args, login


@pytest.fixture
def fresh(icat_emulator_factory) -> IcatEmulator:
    emulator: IcatEmulator = icat_emulator_factory()
    result = run_icat_script("icatingest.py", *ingest_args(emulator.url))
    assert result.returncode == 0, result.stderr
    return emulator


def _catalogue(root: icat.Client) -> tuple[object, object, object]:
    facility = root.assertedSearch("Facility [name='facility']")[0]
    inv_type = root.assertedSearch("InvestigationType [name='type']")[0]
    ds_type = root.assertedSearch("DatasetType [name='scan']")[0]
    return facility, inv_type, ds_type


def _user(root: icat.Client, name: str) -> icat.entity.Entity:
    found = root.search(f"User [name='{name}']")
    if found:
        return found[0]
    user = root.new("User", name=name)
    user.create()
    return user


def test_concise_queries_as_icat_rewrites_them(seeded, make_investigation, unique):
    root = login(seeded.url, "simple", "root", "pw")
    inv = make_investigation(f"C-{unique}", n_datasets=2, n_files=3)
    (facility,) = root.search("Facility [name='facility']")
    assert facility.name == "facility"
    assert [i.id for i in root.search(f"Investigation [name='{inv.name}']")] == [inv.id]
    names = root.search(f"Datafile.name <-> Dataset <-> Investigation [name='{inv.name}']")
    assert sorted(names) == sorted(["file_0000.nxs", "file_0001.nxs", "file_0002.nxs"] * 2)
    assert len(root.search(f"Dataset <-> Investigation [name = '{inv.name}']")) == 2
    assert len(root.search("0,3 User")) <= 3
    assert root.search(f"COUNT(Datafile) <-> Dataset <-> Investigation [id = {inv.id}]") == [6]
    assert root.search(
        f"MAX(Datafile.fileSize) <-> Dataset [name = 'scan_0001'] <-> Investigation [id={inv.id}]"
    ) == [20]
    assert root.search(
        f"DISTINCT Datafile.name ORDER BY name DESC <-> Dataset <-> Investigation [id={inv.id}]"
    ) == ["file_0002.nxs", "file_0001.nxs", "file_0000.nxs"]
    sizes = root.search(
        f"Datafile.fileSize [fileSize BETWEEN 5 AND 25 AND NOT (name IN ('file_0002.nxs'))]"
        f" <-> Dataset <-> Investigation [id = {inv.id}]"
    )
    assert sorted(sizes) == [10, 10]
    (got,) = root.search(f"Investigation INCLUDE Dataset, Datafile [id = {inv.id}]")
    assert sorted(len(d.datafiles) for d in got.datasets) == [3, 3]
    got = root.get("Investigation INCLUDE Dataset, Facility", inv.id)
    assert got.facility.name == "facility" and len(got.datasets) == 2
    with pytest.raises(icat.ICATParameterError, match="loop"):
        root.search("Investigation <-> Facility <-> Dataset <-> Datafile <-> DatafileFormat")
    with pytest.raises(icat.ICATParameterError):
        root.search("Investigation [nosuchfield = 1]")


def test_jpql_rule_and_concise_rule_agree(fresh):
    root = login(fresh.url, "simple", "root", "pw")
    rule = root.new("Rule", crudFlags="R", what="SELECT o FROM Grouping o WHERE o.name = 'x'")
    rule.create()
    with pytest.raises(icat.ICATParameterError):
        root.new("Rule", crudFlags="R", what="Investigation [").create()
    with pytest.raises(icat.ICATParameterError):
        root.new("Rule", crudFlags="RX", what="Investigation").create()


def test_the_example_flow_office_creates_members_add_data_each_sees_their_own(fresh):
    root = login(fresh.url, "simple", "root", "pw")
    facility, inv_type, ds_type = _catalogue(root)
    alice, bob, carol = (_user(root, n) for n in ("db/alice", "db/bob", "simple/root"))
    del carol
    # Root: a "useroffice" grouping (bob) that creates investigations and their users, and a
    # rule letting investigation users add datasets and datafiles to their investigations.
    office = root.new("Grouping", name="useroffice")
    office.create()
    root.new("UserGroup", user=bob, grouping=office).create()
    for what in ("Investigation", "InvestigationUser"):
        root.new("Rule", grouping=office, crudFlags="CRU", what=what).create()
    member_of = "<-> Investigation <-> InvestigationUser <-> User [name = :user]"
    root.new("Rule", crudFlags="CU", what=f"Dataset {member_of}").create()
    root.new("Rule", crudFlags="C", what=f"Datafile <-> Dataset {member_of}").create()

    office_client = login(fresh.url, "db", "bob", "bob-pw")
    inv_a = office_client.new(
        "Investigation", name="A", visitId="1", title="A", facility=facility, type=inv_type
    )
    inv_a.create()
    inv_b = office_client.new(
        "Investigation", name="B", visitId="1", title="B", facility=facility, type=inv_type
    )
    inv_b.create()
    office_client.new("InvestigationUser", user=alice, investigation=inv_a, role="PI").create()
    with pytest.raises(icat.ICATPrivilegesError, match="CREATE access to this Dataset"):
        office_client.new(
            "Dataset", name="d", complete=False, investigation=inv_a, type=ds_type
        ).create()

    alice_client = login(fresh.url, "db", "alice", "alice-pw")
    ds = alice_client.new("Dataset", name="d1", complete=False, investigation=inv_a, type=ds_type)
    ds.create()
    files = [alice_client.new("Datafile", name=f"f{i}", dataset=ds) for i in range(3)]
    alice_client.createMany(files)
    with pytest.raises(icat.ICATPrivilegesError) as refused:
        alice_client.createMany(
            [
                alice_client.new(
                    "Dataset", name="ok", complete=False, investigation=inv_a, type=ds_type
                ),
                alice_client.new(
                    "Dataset", name="no", complete=False, investigation=inv_b, type=ds_type
                ),
            ]
        )
    assert refused.value.offset == 1
    assert root.search("SELECT COUNT(o) FROM Dataset o") == [1]  # all or nothing

    # Each user's view is what their rules allow.
    assert [i.name for i in alice_client.search("Investigation")] == ["A"]
    assert alice_client.search("COUNT(Datafile)") == [3]
    assert alice_client.search("Facility.name") == ["facility"]  # public catalogue
    with pytest.raises(icat.ICATPrivilegesError, match="READ access to this Investigation"):
        alice_client.get("Investigation", inv_b.id)
    assert alice_client.isAccessAllowed(inv_a, "READ") is True
    assert alice_client.isAccessAllowed(inv_a, "UPDATE") is False
    new_ds = alice_client.new(
        "Dataset", name="d2", complete=False, investigation=inv_b, type=ds_type
    )
    assert alice_client.isAccessAllowed(new_ds, "CREATE") is False
    new_ds.investigation = inv_a
    assert alice_client.isAccessAllowed(new_ds, "CREATE") is True
    assert root.search("SELECT COUNT(o) FROM Dataset o") == [1]  # the check created nothing
    with pytest.raises(icat.ICATPrivilegesError, match="DELETE access"):
        alice_client.delete(ds)
    # bob (the office) reads the investigations but, not being a member, none of their data.
    assert sorted(i.name for i in office_client.search("Investigation")) == ["A", "B"]
    assert office_client.search("COUNT(Dataset)") == [0]
    (seen,) = office_client.search(f"Investigation INCLUDE Dataset [id = {inv_a.id}]")
    assert seen.datasets == []  # INCLUDEd objects are pruned too
    # ... until a PublicStep makes Investigation.datasets navigable for everyone.
    root.new("PublicStep", origin="Investigation", field="datasets").create()
    (seen,) = office_client.search(f"Investigation INCLUDE Dataset [id = {inv_a.id}]")
    assert [d.name for d in seen.datasets] == ["d1"]


def test_writers_grouping_grants_everything_and_rules_follow_membership(fresh, unique):
    root = login(fresh.url, "simple", "root", "pw")
    bob = login(fresh.url, "db", "bob", "bob-pw")
    with pytest.raises(icat.ICATPrivilegesError):
        bob.new("User", name=f"db/x-{unique}").create()
    assert bob.search("Grouping") == []  # not public
    writers = root.assertedSearch("Grouping [name='writers']")[0]
    membership = root.new("UserGroup", user=_user(root, "db/bob"), grouping=writers)
    membership.create()
    created = bob.new("User", name=f"db/x-{unique}")
    created.create()
    assert bob.get("User", created.id).createId == "db/bob"
    assert [g.name for g in bob.search("Grouping")] == ["writers"]
    root.delete(membership)
    with pytest.raises(icat.ICATPrivilegesError):
        bob.new("User", name=f"db/y-{unique}").create()


def test_login_does_not_need_the_user_table(fresh):
    root = login(fresh.url, "simple", "root", "pw")
    root.deleteMany(root.search("User"))
    assert login(fresh.url, "db", "alice", "alice-pw").getUserName() == "db/alice"
    assert login(fresh.url, "simple", "datastore", "datastore-pw").search("COUNT(User)") == [0]
