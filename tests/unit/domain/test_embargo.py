"""The release date of a new Investigation (the original API's embargo rule)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datastore_common.domain.embargo import add_years, release_date
from datastore_common.messages import InvestigationSpec
from datastore_common.testing.fake_catalogue import FakeCatalogue
from tests.support.factories import seed_investigation

TODAY = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
START = datetime(2024, 6, 5, 10, 53, tzinfo=UTC)
END = datetime(2024, 7, 1, 9, 0, tzinfo=UTC)
GIVEN = datetime(2030, 1, 1, tzinfo=UTC)


def spec(**fields: object) -> InvestigationSpec:
    base = seed_investigation("ABC123")
    values = {"startDate": None, "endDate": None, "releaseDate": None, **fields}
    return base.model_copy(update=values)


def released(
    investigation: InvestigationSpec, years: int = 2, types: tuple[str, ...] = ()
) -> object:
    return release_date(investigation, embargo_years=years, embargo_types=types, today=TODAY)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"releaseDate": GIVEN, "startDate": START, "endDate": END}, GIVEN),
        ({"startDate": START, "endDate": END}, datetime(2026, 7, 1, 9, 0, tzinfo=UTC)),
        ({"startDate": START}, datetime(2026, 6, 5, 10, 53, tzinfo=UTC)),
        ({}, datetime(2028, 3, 10, 12, 0, tzinfo=UTC)),
    ],
    ids=["given", "from-end", "from-start", "from-today"],
)
def test_release_date_is_given_or_the_end_start_or_today_plus_the_embargo(
    fields: dict[str, object], expected: datetime
) -> None:
    assert released(spec(**fields)) == expected


def test_the_embargo_period_is_configurable() -> None:
    assert released(spec(startDate=START), years=5) == datetime(2029, 6, 5, 10, 53, tzinfo=UTC)
    assert released(spec(startDate=START), years=0) == START


def test_an_embargo_type_gets_no_release_date_even_when_one_is_given() -> None:
    investigation = spec(releaseDate=GIVEN, startDate=START)
    assert investigation.investigationType.name == "type"
    assert released(investigation, types=("type",)) is None
    assert released(investigation, types=("other",)) == GIVEN


def test_29_february_becomes_28_february_in_a_common_year() -> None:
    leap = datetime(2024, 2, 29, tzinfo=UTC)
    assert add_years(leap, 2) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_years(leap, 4) == leap.replace(year=2028)


async def test_the_fake_catalogue_creates_with_the_embargo_and_keeps_it_on_redelivery() -> None:
    catalogue = FakeCatalogue(today=TODAY)
    investigation = spec(startDate=START)
    first = await catalogue.ensure_investigation(investigation)
    again = await catalogue.ensure_investigation(
        investigation.model_copy(update={"startDate": END})
    )
    assert first == again
    assert catalogue.investigations[first].release_date == datetime(2026, 6, 5, 10, 53, tzinfo=UTC)


async def test_the_fake_catalogue_leaves_embargo_types_without_release_date() -> None:
    catalogue = FakeCatalogue(today=TODAY, embargo_types=("type",))
    investigation_id = await catalogue.ensure_investigation(spec(releaseDate=GIVEN))
    assert catalogue.investigations[investigation_id].release_date is None
