"""The shared ICAT emulator with the seed's high-level entities, and a catalogue on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
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
