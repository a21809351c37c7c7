"""IcatVocabulary on the ICAT emulator with deploy/local/icat/example.yaml ingested: known
names are known, misspelt ones reported, one ICAT search per kind whatever the names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.icat.vocabulary import IcatVocabulary
from datastore_common.errors import TransientError
from datastore_common.ports import Term, VocabularyKind
from datastore_common.settings import DatastoreSettings, IcatSettings
from datastore_common.testing.fake_vocabulary import SEED_VOCABULARY
from datastore_common.testing.fakes import FakeSessions, RecordingPublisher
from datastore_gateway.main import create_app
from tests.support.factories import seed_investigation
from tests.support.icat_fixtures import IcatEmulator, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def vocabulary(icat_settings: IcatSettings) -> AsyncIterator[IcatVocabulary]:
    pool = IcatClientPool(str(icat_settings.url))
    vocabulary = IcatVocabulary(icat_settings, pool=pool)
    yield vocabulary
    await vocabulary.close()  # logs out; the pool is the caller's to close
    await pool.close()


def searches(icat: IcatEmulator) -> int:
    return int(icat.server_stats().get("search", {}).get("count", 0))


def seed_terms() -> dict[VocabularyKind, set[Term]]:
    return {kind: set(terms) for kind, terms in SEED_VOCABULARY.items()}


async def test_the_seed_names_are_all_known_with_one_search_per_kind(
    vocabulary: IcatVocabulary, seeded_icat: IcatEmulator
) -> None:
    await vocabulary.unknown({"facility": {"facility"}})  # log in and build the client first
    before, made = searches(seeded_icat), vocabulary.searches

    assert await vocabulary.unknown(seed_terms()) == {}

    # Facility, investigation type, instrument, cycle, dataset type, format: six kinds.
    assert vocabulary.searches - made == 6
    assert searches(seeded_icat) - before == 6


async def test_misspelt_names_are_reported_by_kind_among_known_ones(
    vocabulary: IcatVocabulary, seeded_icat: IcatEmulator
) -> None:
    terms = seed_terms()
    misspelt: dict[VocabularyKind, set[Term]] = {
        "facility": {"facilty"},
        "investigationType": {"typ"},
        "instrument": {"instrumnet"},
        "facilityCycle": {"20YY"},
        "datasetType": {"scann", "Scan"},  # exact names only, as the workers use them
        "datafileFormat": {("nexus", "4"), ("nexsus", "3")},
    }
    for kind, names in misspelt.items():
        terms[kind] |= names
    await vocabulary.unknown({"facility": {"facility"}})
    before = searches(seeded_icat)

    assert await vocabulary.unknown(terms) == misspelt

    # Still one search per kind; another facility than icat.facility needs no search at all.
    assert searches(seeded_icat) - before == 6


async def test_many_names_of_a_kind_take_one_search(
    vocabulary: IcatVocabulary, seeded_icat: IcatEmulator
) -> None:
    names: set[Term] = {*(f"type_{i:03d}" for i in range(200)), "scan"}
    await vocabulary.unknown({"facility": {"facility"}})
    before = searches(seeded_icat)
    unknown = await vocabulary.unknown({"datasetType": names})
    assert unknown == {"datasetType": names - {"scan"}}
    assert searches(seeded_icat) - before == 1


async def test_quotes_in_names_are_literals_not_jpql(vocabulary: IcatVocabulary) -> None:
    sneaky: set[Term] = {"scan' OR 'a' = 'a", "o'brien"}
    assert await vocabulary.unknown({"datasetType": sneaky}) == {"datasetType": sneaky}


async def test_another_facility_is_unknown_without_asking_icat(
    vocabulary: IcatVocabulary,
) -> None:
    assert await vocabulary.unknown({"facility": {"other"}}) == {"facility": {"other"}}
    assert vocabulary.searches == 0


async def test_a_facility_missing_from_icat_makes_everything_unknown(
    seeded_icat: IcatEmulator,
) -> None:
    settings = IcatSettings(url=seeded_icat.url, facility="nowhere")
    vocabulary = IcatVocabulary(settings)
    try:
        terms = seed_terms()
        terms["facility"] = {"nowhere"}
        assert await vocabulary.unknown(terms) == terms
    finally:
        await vocabulary.close()


async def test_icat_unreachable_is_a_transient_error() -> None:
    settings = IcatSettings(url=f"http://127.0.0.1:{free_port()}")
    vocabulary = IcatVocabulary(settings)
    try:
        with pytest.raises(TransientError, match="icat vocabulary"):
            await vocabulary.unknown(seed_terms())
    finally:
        await vocabulary.close()


async def test_the_gateway_checks_names_in_icat_with_the_functional_account(
    seeded_icat: IcatEmulator, tmp_path: Path
) -> None:
    settings = DatastoreSettings(
        icat={"url": seeded_icat.url},
        gateway={"state_db": f"sqlite:///{tmp_path}/gateway.sqlite"},
        fts3={"vo": "test-vo"},
    )
    publisher = RecordingPublisher()
    # Sessions and broker are fakes; the vocabulary is the lifespan's IcatVocabulary.
    app = create_app(settings, sessions=FakeSessions(), publisher=publisher, vo="test-vo")
    body = {"investigations": [seed_investigation().model_dump(mode="json")]}
    misspelt = {"investigations": [seed_investigation().model_dump(mode="json")]}
    misspelt["investigations"][0]["datasets"][0]["datasetType"]["name"] = "scann"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            login = await client.post(
                "/login", json={"auth": "simple", "username": "root", "password": "pw"}
            )
            headers = {"Authorization": f"Bearer {login.json()['sessionId']}"}
            accepted = await client.post("/archive", json=body, headers=headers)
            refused = await client.post("/archive", json=misspelt, headers=headers)
    assert accepted.status_code == 202, accepted.text
    assert refused.status_code == 422
    assert refused.json() == {"detail": "unknown datasetType 'scann' in facility 'facility'"}
    assert len(publisher.published) == 1
