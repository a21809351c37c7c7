"""Fixtures for the ICAT emulator tests: python-icat clients against the shared emulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import icat
import pytest

from tests.support.icat_fixtures import EXAMPLE_YAML, IcatEmulator, run_icat_script

_OPEN_CLIENTS: list[icat.Client] = []


def login(url: str, auth: str, user: str, password: str) -> icat.Client:
    """A logged-in python-icat client; logged out at the end of the test that made it."""
    client = icat.Client(url)
    client.login(auth, {"username": user, "password": password})
    _OPEN_CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
def _logout_clients():
    # Log out while the emulator still runs (python-icat would try at interpreter exit).
    yield
    while _OPEN_CLIENTS:
        _OPEN_CLIENTS.pop().cleanup()


def ingest_args(url: str, path: str = str(EXAMPLE_YAML)) -> list[str]:
    return [
        "-i",
        path,
        "-f",
        "YAML",
        "--duplicate",
        "IGNORE",
        "--url",
        url,
        "--no-check-certificate",
        "--auth",
        "simple",
        "--user",
        "root",
        "--pass",
        "pw",
    ]


@pytest.fixture(scope="session")
def seeded(icat_emulator: IcatEmulator) -> IcatEmulator:
    """The shared emulator with deploy/local/icat/example.yaml ingested (by icatingest.py)."""
    result = run_icat_script("icatingest.py", *ingest_args(icat_emulator.url))
    assert result.returncode == 0, result.stderr
    return icat_emulator


@pytest.fixture(scope="session")
def root(seeded: IcatEmulator) -> Iterator[icat.Client]:
    client = icat.Client(seeded.url)
    client.login("simple", {"username": "root", "password": "pw"})
    yield client
    client.cleanup()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def make_investigation(root: icat.Client) -> Callable[..., icat.entity.Entity]:
    """Create an investigation of the seeded facility with ``n_datasets`` x ``n_files``."""
    facility = root.assertedSearch("SELECT o FROM Facility o WHERE o.name = 'facility'")[0]
    inv_type = root.assertedSearch("SELECT o FROM InvestigationType o WHERE o.name = 'type'")[0]
    ds_type = root.assertedSearch("SELECT o FROM DatasetType o WHERE o.name = 'scan'")[0]

    def make(name: str, n_datasets: int = 2, n_files: int = 3) -> icat.entity.Entity:
        inv = root.new(
            "Investigation",
            name=name,
            visitId="1",
            title=f"Title {name}",
            facility=facility,
            type=inv_type,
        )
        inv.create()
        for d in range(n_datasets):
            ds = root.new(
                "Dataset", name=f"scan_{d:04d}", complete=False, investigation=inv, type=ds_type
            )
            ds.create()
            files = [
                root.new("Datafile", name=f"file_{f:04d}.nxs", dataset=ds, fileSize=f * 10)
                for f in range(n_files)
            ]
            root.createMany(files)
        return inv

    return make
