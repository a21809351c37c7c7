"""What a user following their data is told of a dataset or an investigation, from what
ICAT records of its archival: its state, how far it has come, why files failed and what it
waits for; and how an investigation is named in a look-up. Pure.

A dataset's state is its datafiles' "Archival state" aggregated (``aggregate_dataset_state``,
as the icat-writer keeps the dataset's own), over the datafiles that record one: None when
none does (never archived). An investigation's is its datasets' aggregated the same way. A
datafile that records no state counts as not ended, so a dataset is complete (100 %) once
every datafile's archival has ended, failures included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from datastore_common.domain.archival import (
    ARCHIVAL_FAILURE,
    ARCHIVAL_STATE,
    CatalogueDatafile,
    parse_failure,
)
from datastore_common.domain.ledger import waiting_for
from datastore_common.domain.states import (
    CANCELED,
    FAILED,
    FailureClass,
    aggregate_dataset_state,
    ended_percentage,
    is_terminal,
    normalise,
)
from datastore_common.errors import InvalidRequestError

#: At most this many distinct reasons are named when files failed (the rest are counted).
MAX_REASONS = 3


@dataclass(frozen=True)
class ArchivalStatus:
    """How the archival of some datafiles stands."""

    state: str | None
    files_total: int = 0
    files_ended: int = 0  # in a terminal state: FINISHED, FAILED, CANCELED
    files_failed: int = 0  # FAILED or CANCELED
    user_failed: bool = False  # some file failed through the request's own fault
    reasons: tuple[str, ...] = ()  # the first distinct reasons files FAILED for
    more_reasons: bool = False  # and other distinct reasons beyond those

    @property
    def percentage(self) -> float:
        return ended_percentage(self.files_ended, self.files_total)

    @property
    def complete(self) -> bool:
        return self.files_ended >= self.files_total

    @property
    def waiting_on(self) -> str | None:
        """What it waits for, in words; None once ended or when never archived."""
        if self.state is None or is_terminal(self.state):
            return None
        return waiting_for([self.state])

    @property
    def failure(self) -> tuple[FailureClass, str] | None:
        """(class, reason) when files failed: "user" when any failed by the request's own
        fault (fix it and archive again), else "system" (ours or a peer's)."""
        if not self.files_failed:
            return None
        said = f"{self.files_failed} of {self.files_total} datafiles failed or were canceled"
        if self.reasons:
            said += ": " + "; ".join(self.reasons) + ("; ..." if self.more_reasons else "")
        return ("user" if self.user_failed else "system"), said


def state_of(states: Iterable[str | None]) -> str | None:
    """The aggregated state of those that record one; None when none does."""
    recorded = [state for state in states if state is not None]
    return aggregate_dataset_state(recorded) if recorded else None


def file_states(datafiles: Sequence[CatalogueDatafile]) -> dict[str, str | None]:
    """{location (its name when it has none): "Archival state" or None}, by location."""
    return {
        place: None if state is None else normalise(state)
        for place, state in sorted(
            ((f.location or f.name, f.archival.get(ARCHIVAL_STATE)) for f in datafiles),
            key=lambda item: item[0],
        )
    }


def dataset_status(datafiles: Sequence[CatalogueDatafile]) -> ArchivalStatus:
    """The archival of a dataset from its datafiles' records (in location order, so the
    reasons named are those of the first files that failed)."""
    ordered = sorted(datafiles, key=lambda f: (f.location or f.name, f.datafile_id))
    states = [f.archival.get(ARCHIVAL_STATE) for f in ordered]
    ended = failed = 0
    user_failed = False
    reasons: dict[str, None] = {}
    for datafile, state in zip(ordered, states, strict=True):
        if state is None or not is_terminal(state):
            continue
        ended += 1
        if normalise(state) not in (FAILED, CANCELED):
            continue
        failed += 1
        text = datafile.archival.get(ARCHIVAL_FAILURE)
        if normalise(state) == FAILED and text:
            failure_class, reason = parse_failure(text)
            user_failed = user_failed or failure_class == "user"
            reasons.setdefault(reason)
    named = tuple(reasons)[:MAX_REASONS]
    return ArchivalStatus(
        state=state_of(states),
        files_total=len(ordered),
        files_ended=ended,
        files_failed=failed,
        user_failed=user_failed,
        reasons=named,
        more_reasons=len(reasons) > len(named),
    )


def combined_status(parts: Sequence[ArchivalStatus]) -> ArchivalStatus:
    """The archival of an investigation from its datasets' (in dataset order)."""
    reasons = list(dict.fromkeys(reason for part in parts for reason in part.reasons))
    named = tuple(reasons[:MAX_REASONS])
    return ArchivalStatus(
        state=state_of(part.state for part in parts),
        files_total=sum(part.files_total for part in parts),
        files_ended=sum(part.files_ended for part in parts),
        files_failed=sum(part.files_failed for part in parts),
        user_failed=any(part.user_failed for part in parts),
        reasons=named,
        more_reasons=len(reasons) > len(named) or any(part.more_reasons for part in parts),
    )


def split_investigation(text: str) -> tuple[str, str]:
    """``"ABC123-1"`` -> ``("ABC123", "1")``: an investigation as its folder names it,
    ``<name>-<visitId>``, split at the last '-' (a name may hold '-', a visit id may not)."""
    name, dash, visit_id = text.rpartition("-")
    if not dash or not name or not visit_id:
        raise InvalidRequestError(
            f"investigation {text!r}: give it as <name>-<visitId>, e.g. ABC123-1"
        )
    return name, visit_id
