"""``datastore-ops audit`` against the ICAT emulator and the local tape XRootD server.

An investigation's datafiles are registered in ICAT as archived (FINISHED, written by the
functional account) and their bytes written straight into the tape server's data folder,
under a tape root folder of the test's own (``tape_root_dir``); then one tape file is
removed, another overwritten with other bytes of the same size, and a file ICAT does not know
is added. The audit, limited to the investigation's folder (``--under``) so that other tests'
data in the shared ICAT and on the shared tape stays out of it, must name each, and record
the corruption on its datafile in ICAT as an "Archival failure" of class fixity.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.xrootd.client import XRootDClient
from datastore_common.domain.archival import ARCHIVAL_FAILURE, ARCHIVAL_STATE
from datastore_common.domain.paths import archive_location, investigation_folder
from datastore_common.ops.cli import EXIT_DISAGREEMENTS, run_cli
from datastore_common.ports import NewDatafile
from datastore_common.settings import IcatSettings
from tests.support.factories import seed_investigation
from tests.support.icat_fixtures import IcatEmulator
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.integration


@pytest.fixture
async def catalogue(seeded_icat: IcatEmulator) -> AsyncIterator[IcatCatalogue]:
    settings = IcatSettings(url=seeded_icat.url)  # type: ignore[arg-type]
    catalogue = IcatCatalogue(settings, pool=IcatClientPool(str(settings.url), size=2))
    yield catalogue
    await catalogue.close()


def write(path: Path, content: bytes, *, mtime: float | None = None) -> None:
    """Write straight into a server's data folder, owned as the server's own files are: the
    XRootD servers run unprivileged, and a folder of root's would refuse them later writes
    (other tests share the tape)."""
    make_folders(path.parent)
    path.write_bytes(content)
    own_like_the_server(path)
    if mtime is not None:  # another mtime: a checksum the server stored is stale
        os.utime(path, (mtime, mtime))


def make_folders(folder: Path) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir()
        own_like_the_server(made)


def own_like_the_server(path: Path) -> None:
    """The owner of the data folder ``var/xrootd/<server>/data`` the path is under."""
    for parent in path.parents:
        if parent.name == "data" and parent.parent.parent.name == "xrootd":
            owner = parent.stat()
            os.chown(path, owner.st_uid, owner.st_gid)
            return


def adler32(content: bytes) -> str:
    return f"adler32:{zlib.adler32(content):08x}"


async def test_audit_names_the_removed_corrupted_and_unknown_tape_files(
    catalogue: IcatCatalogue,
    seeded_icat: IcatEmulator,
    xrootd_stack: XRootDStack,
    xrootd_test_path: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tape_root_dir = xrootd_test_path.strip("/") + "/"
    tape_data = xrootd_stack.data_dir("tape") / tape_root_dir

    # Archived: registered FINISHED in ICAT, bytes on tape.
    spec = seed_investigation(files=4)
    dataset = spec.datasets[0]
    contents = {
        archive_location(spec, dataset, f): os.urandom(1000 + i)
        for i, f in enumerate(dataset.datafiles)
    }
    investigation_id = await catalogue.ensure_investigation(spec)
    datasets = await catalogue.ensure_datasets(investigation_id, spec.datasets)
    records = await catalogue.ensure_datafiles(
        datasets[dataset.name].dataset_id,
        [
            NewDatafile(f, location, len(contents[location]), adler32(contents[location]))
            for f, location in zip(dataset.datafiles, contents, strict=True)
        ],
    )
    ids = {r.location: r.datafile_id for r in records.values()}
    await catalogue.set_archival(
        "Datafile", {i: {ARCHIVAL_STATE: "FINISHED"} for i in ids.values()}
    )
    now = time.time()
    for location, content in contents.items():
        write(tape_data / location, content, mtime=now - 60)
    # The server may keep a checksum it computed (until the file's mtime changes): look at
    # every file once, so that the corruption below must be noticed as a change.
    client = XRootDClient()
    for location in contents:
        await client.checksum(f"{xrootd_stack.tape}//{tape_root_dir}{location}")

    # Then: one removed, one corrupted (same size), one unknown to ICAT.
    removed, corrupted, *_ = sorted(contents)
    (tape_data / removed).unlink()
    write(
        tape_data / corrupted,
        bytes(b ^ 0xFF for b in contents[corrupted]),
        mtime=now - 30,
    )
    folder = "/".join(
        (spec.instrument.name, spec.facilityCycle.name, investigation_folder(spec.name, "1"))
    )
    orphan = f"{folder}/scan/stray/orphan.nxs"
    write(tape_data / orphan, b"nobody registered me")

    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "tape_archive": f"{xrootd_stack.tape}//",
                "tape_root_dir": tape_root_dir,
                "icat": {"url": seeded_icat.url},
            }
        )
    )
    reports = tmp_path / "reports"
    argv = ["audit", "--config", str(config), "--under", folder, "--sample", "100"]
    capsys.readouterr()  # what the set-up logged: the command's answer alone is read below
    code = await run_cli([*argv, "--json", "--report-dir", str(reports)], catalogue=catalogue)

    assert code == EXIT_DISAGREEMENTS, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["archived_in_icat"] == 4
    assert report["counts"]["files_on_tape"] == 4  # three of ours and the orphan
    assert report["unknown_to_icat"] == [orphan]
    assert report["missing_on_tape"] == [{"datafile_id": ids[removed], "location": removed}]
    assert report["size_mismatch"] == []
    outcomes = {check["location"]: check["outcome"] for check in report["fixity"]}
    assert outcomes == {location: "ok" for location in contents if location != removed} | {
        corrupted: "mismatch"
    }
    assert len(list(reports.glob("audit-*.json"))) == len(list(reports.glob("audit-*.txt"))) == 1

    # Recorded in ICAT, as the functional account; the state stays FINISHED.
    [record] = await catalogue.datafiles_by_id([ids[corrupted]])
    assert record.archival[ARCHIVAL_STATE] == "FINISHED"
    assert record.archival[ARCHIVAL_FAILURE].startswith("fixity error: ")
    assert adler32(contents[corrupted]) in record.archival[ARCHIVAL_FAILURE]
    others = await catalogue.datafiles_by_id([i for loc, i in ids.items() if loc != corrupted])
    assert all(ARCHIVAL_FAILURE not in other.archival for other in others)

    # Repaired on tape: the next audit checks it again and clears the failure.
    write(tape_data / corrupted, contents[corrupted], mtime=now)
    write(tape_data / removed, contents[removed])
    (tape_data / orphan).unlink()
    capsys.readouterr()
    assert await run_cli([*argv, "--json"], catalogue=catalogue) == 0
    [record] = await catalogue.datafiles_by_id([ids[corrupted]])
    assert ARCHIVAL_FAILURE not in record.archival


async def test_list_tree_walks_every_folder_with_sizes(
    xrootd_stack: XRootDStack, xrootd_test_path: str
) -> None:
    data = xrootd_stack.data_dir("tape") / xrootd_test_path.strip("/")
    layout = {"a.nxs": 1, "x/b.nxs": 22, "x/y/z/c.nxs": 333, "w/d.nxs": 0}
    for name, size in layout.items():
        write(data / "tree" / name, b"." * size)
    make_folders(data / "tree" / "empty")
    client = XRootDClient()

    listed = await client.list_tree(f"{xrootd_stack.tape}/{xrootd_test_path}/tree")

    assert listed == dict(sorted(layout.items()))
    assert await client.list_tree(f"{xrootd_stack.tape}/{xrootd_test_path}/nothing") == {}
