"""Restart keeps data; createMany is atomic; deletes cascade; concurrent get-or-create."""

from __future__ import annotations

import threading

import icat
import pytest

from datastore_common.domain.archival import ARCHIVAL_PARAMETERS
from tests.support.icat_fixtures import IcatEmulator, run_icat_script

from .conftest import ingest_args, login


def test_restart_keeps_data_and_sessions(icat_emulator_factory):
    emulator: IcatEmulator = icat_emulator_factory()
    assert run_icat_script("icatingest.py", *ingest_args(emulator.url)).returncode == 0
    client = icat.Client(emulator.url)
    client.login("simple", {"username": "root", "password": "pw"})
    session_id = client.sessionId
    client.autoLogout = False
    emulator.restart()
    again = login(emulator.url, "simple", "root", "pw")
    assert again.search("SELECT o.name FROM Facility o") == ["facility"]
    # example.yaml's: one per archival parameter (state, ids, endpoint, failure, deletion date)
    assert len(again.search("SELECT o FROM ParameterType o")) == len(ARCHIVAL_PARAMETERS)
    resumed = icat.Client(emulator.url)
    resumed.sessionId = session_id
    assert resumed.getUserName() == "simple/root"
    resumed.logout()


def test_create_many_is_all_or_nothing(root, make_investigation, unique):
    inv = make_investigation(f"M-{unique}", n_datasets=1, n_files=0)
    (ds,) = root.search(f"SELECT o FROM Dataset o WHERE o.investigation.id = {inv.id}")
    files = [root.new("Datafile", name=f"f{i}", dataset=ds) for i in range(5)]
    files.append(root.new("Datafile", name="f2", dataset=ds))  # duplicate of the third
    with pytest.raises(icat.ICATObjectExistsError) as err:
        root.createMany(files)
    assert err.value.offset == 5
    assert root.search(f"SELECT COUNT(o) FROM Datafile o WHERE o.dataset.id = {ds.id}") == [0]
    ids = root.createMany(files[:5])
    assert len(set(ids)) == 5


def test_create_with_nested_children_and_cascading_delete(root, make_investigation, unique):
    inv = make_investigation(f"C-{unique}", n_datasets=0)
    ds_type = root.assertedSearch("SELECT o FROM DatasetType o")[0]
    state = root.assertedSearch("SELECT o FROM ParameterType o WHERE o.name = 'Archival state'")[0]
    ds = root.new("Dataset", name="nested", complete=True, investigation=inv, type=ds_type)
    ds.datafiles = [root.new("Datafile", name=f"n{i}") for i in range(3)]
    ds.parameters = [root.new("DatasetParameter", type=state, stringValue="QUEUED")]
    ds.create()
    got = root.get("Dataset INCLUDE datafiles, parameters", ds.id)
    assert len(got.datafiles) == 3 and got.parameters[0].stringValue == "QUEUED"
    df = got.datafiles[0]
    root.new("DatafileParameter", datafile=df, type=state, stringValue="ARCHIVED").create()

    root.delete(root.new("Dataset", id=ds.id))
    for bean in ("Datafile", "DatasetParameter"):
        assert root.search(f"SELECT COUNT(o) FROM {bean} o WHERE o.dataset.id = {ds.id}") == [0]
    assert root.search(
        f"SELECT COUNT(o) FROM DatafileParameter o WHERE o.datafile.id = {df.id}"
    ) == [0]
    assert root.search(f"SELECT COUNT(o) FROM Investigation o WHERE o.id = {inv.id}") == [1]


def test_update_replaces_fields_and_delete_many(root, make_investigation, unique):
    inv = make_investigation(f"U-{unique}", n_datasets=2, n_files=0)
    datasets = root.search(f"SELECT o FROM Dataset o WHERE o.investigation.id = {inv.id} INCLUDE 1")
    datasets[0].description = "described"
    datasets[0].update()
    assert root.get("Dataset", datasets[0].id).description == "described"
    bare = root.get("Dataset", datasets[1].id)  # relations not included -> null -> invalid
    with pytest.raises(icat.ICATValidationError):
        bare.update()
    root.deleteMany(datasets)
    assert root.search(f"SELECT COUNT(o) FROM Dataset o WHERE o.investigation.id = {inv.id}") == [0]


def test_concurrent_get_or_create_never_duplicates(seeded, make_investigation, unique):
    inv = make_investigation(f"P-{unique}", n_datasets=0)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        try:
            client = icat.Client(seeded.url)
            client.login("simple", {"username": "datastore", "password": "datastore-pw"})
            ds_type = client.assertedSearch("SELECT o FROM DatasetType o")[0]
            investigation = client.get("Investigation", inv.id)
            barrier.wait()
            for i in range(100):
                name = f"ds_{i:03d}"
                query = (
                    f"SELECT o FROM Dataset o WHERE o.investigation.id = {inv.id} "
                    f"AND o.name = '{name}'"
                )
                if client.search(query):
                    continue
                try:
                    client.new(
                        "Dataset",
                        name=name,
                        complete=False,
                        investigation=investigation,
                        type=ds_type,
                    ).create()
                except icat.ICATObjectExistsError:
                    assert len(client.search(query)) == 1
            client.logout()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not errors, errors
    assert root_count(seeded, inv.id) == 100


def root_count(seeded, inv_id: int) -> int:
    client = login(seeded.url, "simple", "root", "pw")
    names = client.search(f"SELECT o.name FROM Dataset o WHERE o.investigation.id = {inv_id}")
    assert len(names) == len(set(names))
    return len(names)


def test_create_many_of_1000_datafiles_creates_them_all(root, make_investigation, unique):
    # How long it takes (target: under a second server-side) is measured by bench/icat_bench.py.
    inv = make_investigation(f"S-{unique}", n_datasets=1, n_files=0)
    (ds,) = root.search(f"SELECT o FROM Dataset o WHERE o.investigation.id = {inv.id}")
    files = [
        root.new("Datafile", name=f"file_{i:05d}.nxs", dataset=ds, fileSize=i) for i in range(1000)
    ]
    ids = root.createMany(files)
    assert len(set(ids)) == 1000
    assert root.search(f"SELECT COUNT(o) FROM Datafile o WHERE o.dataset.id = {ds.id}") == [1000]
