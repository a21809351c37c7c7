"""The release date of a new Investigation, as the original Datastore API sets it.

An investigation created without ``releaseDate`` is embargoed for ``icat.embargo_period_years``
after it ended (its ``endDate``, else its ``startDate``, else the day it is created); one whose
investigation type is in ``icat.embargo_types`` gets no release date at all, even when the
request gives one (the original's rule: those types are released by other means, e.g. never
or by hand). Only applied when the Investigation is created: an existing one keeps its own.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from datastore_common.messages import InvestigationSpec


def add_years(moment: datetime, years: int) -> datetime:
    """``moment`` ``years`` later, same day and time; 29 February becomes 28 February when the
    target year has none (the original raised there)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February into a common year
        return moment.replace(year=moment.year + years, day=28)


def release_date(
    investigation: InvestigationSpec,
    *,
    embargo_years: int,
    embargo_types: Collection[str],
    today: datetime,
) -> datetime | None:
    """The ``releaseDate`` to create ``investigation`` with (None: none)."""
    if investigation.investigationType.name in embargo_types:
        return None
    if investigation.releaseDate is not None:
        return investigation.releaseDate
    ended = investigation.endDate or investigation.startDate or today
    return add_years(ended, embargo_years)
