"""The shared ICAT emulator with the seed's high-level entities, and catalogue helpers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.messages import InvestigationSpec
from datastore_common.settings import IcatSettings
from tests.integration.icat_emulator.conftest import ingest_args
from tests.support.icat_fixtures import IcatEmulator, run_icat_script


@pytest.fixture(scope="session")
def seeded_icat(icat_emulator: IcatEmulator) -> IcatEmulator:
    """The shared emulator with deploy/local/icat/example.yaml ingested (idempotent)."""
    result = run_icat_script("icatingest.py", *ingest_args(icat_emulator.url))
    assert result.returncode == 0, result.stderr
    return icat_emulator


@pytest.fixture
def icat_settings(seeded_icat: IcatEmulator) -> IcatSettings:
    return IcatSettings(url=seeded_icat.url)  # type: ignore[arg-type]


@pytest.fixture
async def catalogue(icat_settings: IcatSettings) -> AsyncIterator[IcatCatalogue]:
    catalogue = IcatCatalogue(icat_settings, pool=IcatClientPool(str(icat_settings.url), size=2))
    yield catalogue
    await catalogue.close()


def seed_investigation(
    name: str | None = None, *, datasets: int = 1, files: int = 4
) -> InvestigationSpec:
    """The seed's archive request body for one investigation, under a unique name."""
    when = datetime(2024, 6, 5, 10, 53, 29, 501000, tzinfo=UTC)
    return InvestigationSpec.model_validate(
        {
            "facility": {"name": "facility"},
            "investigationType": {"name": "type"},
            "instrument": {"name": "instrument"},
            "facilityCycle": {"name": "20XX"},
            "name": name or f"ABC-{uuid.uuid4().hex[:10]}",
            "visitId": "1",
            "title": "Title",
            "summary": "Summary",
            "doi": "10.00000/00000",
            "startDate": when,
            "endDate": when,
            "releaseDate": when,
            "datasets": [
                {
                    "name": f"scan_{d:04d}",
                    "complete": True,
                    "description": "Description",
                    "doi": "10.00000/00000",
                    "location": "string",
                    "startDate": when,
                    "endDate": when,
                    "datasetType": {"name": "scan"},
                    "datafiles": [
                        {
                            "name": f"file_{f:04d}.nxs",
                            "description": "Description",
                            "doi": "10.00000/00000",
                            "fileSize": 0,
                            "checksum": "string",
                            "datafileCreateTime": when,
                            "datafileModTime": when,
                        }
                        for f in range(files)
                    ],
                }
                for d in range(datasets)
            ],
        }
    )
