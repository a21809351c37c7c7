"""Ordinary users read only their investigations (InvestigationUser.user.name == 'db/<user>')."""

from __future__ import annotations

import icat
import pytest

from .conftest import login


@pytest.fixture(scope="module")
def alice_inv(root, make_investigation):
    import uuid

    inv = make_investigation(f"A-{uuid.uuid4().hex[:8]}", n_datasets=2, n_files=2)
    found = root.search("SELECT o FROM User o WHERE o.name = 'db/alice'")
    user = found[0] if found else root.new("User", name="db/alice")
    if not found:
        user.create()
    root.new("InvestigationUser", user=user, investigation=inv, role="PI").create()
    return inv


def test_user_names_carry_the_authenticator(seeded):
    assert login(seeded.url, "db", "alice", "alice-pw").getUserName() == "db/alice"
    assert (
        login(seeded.url, "simple", "datastore", "datastore-pw").getUserName() == "simple/datastore"
    )


def test_member_reads_investigation_datasets_and_files(seeded, alice_inv):
    alice = login(seeded.url, "db", "alice", "alice-pw")
    invs = alice.search(
        f"SELECT o FROM Investigation o WHERE o.id = {alice_inv.id} INCLUDE o.datasets.datafiles"
    )
    assert len(invs) == 1 and sum(len(d.datafiles) for d in invs[0].datasets) == 4
    assert alice.search(
        f"SELECT COUNT(o) FROM Datafile o WHERE o.dataset.investigation.id = {alice_inv.id}"
    ) == [4]
    assert alice.get("Investigation", alice_inv.id).id == alice_inv.id
    assert alice.search("SELECT o.name FROM Facility o") == ["facility"]  # public catalogue


def test_non_member_sees_nothing_silently(seeded, alice_inv):
    bob = login(seeded.url, "db", "bob", "bob-pw")
    assert bob.search(f"SELECT o FROM Investigation o WHERE o.id = {alice_inv.id}") == []
    assert bob.search(
        f"SELECT COUNT(o) FROM Datafile o WHERE o.dataset.investigation.id = {alice_inv.id}"
    ) == [0]
    # Included relations are filtered too.
    (facility,) = bob.search(
        "SELECT o FROM Facility o WHERE o.name = 'facility' INCLUDE o.investigations"
    )
    assert alice_inv.id not in [i.id for i in facility.investigations]
    with pytest.raises(icat.ICATPrivilegesError):
        bob.get("Investigation", alice_inv.id)


def test_ordinary_users_write_nothing(seeded, alice_inv):
    alice = login(seeded.url, "db", "alice", "alice-pw")
    inv = alice.get("Investigation INCLUDE 1", alice_inv.id)
    inv.title = "changed"
    with pytest.raises(icat.ICATPrivilegesError):
        inv.update()
    with pytest.raises(icat.ICATPrivilegesError):
        alice.delete(inv)
    assert alice.isAccessAllowed(inv, "READ") is True
    assert alice.isAccessAllowed(inv, "UPDATE") is False
    bob = login(seeded.url, "db", "bob", "bob-pw")
    assert bob.isAccessAllowed(inv, "READ") is False


def test_functional_account_writes(seeded, unique):
    datastore = login(seeded.url, "simple", "datastore", "datastore-pw")
    user = datastore.new("User", name=f"db/u-{unique}")
    user.create()
    assert datastore.get("User", user.id).createId == "simple/datastore"
