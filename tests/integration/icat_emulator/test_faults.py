"""Every ICAT fault type arrives as the python-icat exception class a real ICAT gives."""

from __future__ import annotations

import icat
import pytest

from .conftest import login


def test_object_already_exists_names_the_constraint(root, make_investigation, unique):
    inv = make_investigation(f"F-{unique}", n_datasets=1, n_files=0)
    ds_type = root.assertedSearch("SELECT o FROM DatasetType o")[0]
    dup = root.new("Dataset", name="scan_0000", complete=True, investigation=inv, type=ds_type)
    with pytest.raises(icat.ICATObjectExistsError) as err:
        dup.create()
    assert (
        str(err.value) == f"Dataset exists with investigation = 'id:{inv.id}', name = 'scan_0000'"
    )


def test_validation_on_missing_mandatory_field(root, make_investigation, unique):
    inv = make_investigation(f"V-{unique}", n_datasets=0)
    with pytest.raises(icat.ICATValidationError, match="Dataset: type cannot be null"):
        root.new("Dataset", name="x", complete=True, investigation=inv).create()


def test_no_such_object(root):
    with pytest.raises(icat.ICATNoObjectError):
        root.get("Dataset", 987654321)
    with pytest.raises(icat.ICATNoObjectError):
        root.delete(root.new("Dataset", id=987654321))


def test_bad_query_gives_bad_parameter_with_offset(root):
    with pytest.raises(icat.ICATParameterError) as err:
        root.search("SELECT o FROM Dataset o WHERE o.name == 'x'")
    assert err.value.offset == 38
    with pytest.raises(icat.ICATParameterError, match="not a field"):
        root.search("SELECT o FROM Dataset o WHERE o.nope = 'x'")
    with pytest.raises(icat.ICATParameterError) as err:
        root.search("SELECT o FROM NoSuchBean o")
    assert err.value.offset == 14
    with pytest.raises(icat.ICATParameterError):
        root.getEntityInfo("NoSuchBean")


def test_session_errors(seeded):
    client = icat.Client(seeded.url)
    with pytest.raises(icat.ICATSessionError):
        client.login("simple", {"username": "root", "password": "wrong"})
    with pytest.raises(icat.ICATSessionError):
        client.login("nope", {"username": "root", "password": "pw"})
    client.sessionId = "not-a-session"
    with pytest.raises(icat.ICATSessionError):
        client.search("SELECT o FROM Facility o")
    client.sessionId = None


def test_expired_session(tmp_path):
    from tests.support.icat_fixtures import CONFIG, IcatEmulator

    config = tmp_path / "short.yaml"
    config.write_text(
        CONFIG.read_text().replace(
            "session_lifetime_minutes: 120", "session_lifetime_minutes: 0.02"
        )
    )
    emulator = IcatEmulator(database=tmp_path / "icat.sqlite", config=config)
    emulator.start()
    try:
        client = icat.Client(emulator.url)
        client.autoLogout = False
        client.login("simple", {"username": "root", "password": "pw"})
        assert client.getRemainingMinutes() <= 0.02
        import time

        time.sleep(1.5)
        with pytest.raises(icat.ICATSessionError):
            client.search("SELECT o FROM Facility o")
    finally:
        emulator.stop()


def test_insufficient_privileges_for_ordinary_user_writes(seeded):
    alice = login(seeded.url, "db", "alice", "alice-pw")
    with pytest.raises(icat.ICATPrivilegesError):
        alice.new("Facility", name="alice-facility").create()
