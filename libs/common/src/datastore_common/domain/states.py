"""FTS states as ICAT records them: ordering, aggregation to a dataset, how far a set of
files has come, failure classes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

SUBMITTED: Final = "SUBMITTED"
FINISHED: Final = "FINISHED"
FAILED: Final = "FAILED"
CANCELED: Final = "CANCELED"
FINISHEDDIRTY: Final = "FINISHEDDIRTY"
UNKNOWN: Final = "UNKNOWN"

#: Active states, earliest first: a dataset shows the earliest its files are in.
ACTIVE_ORDER: Final = ("STAGING", "SUBMITTED", "READY", "ACTIVE", "ARCHIVING")
TERMINAL: Final = frozenset({FINISHED, FAILED, FINISHEDDIRTY, CANCELED})
# File states FTS also reports while a file waits or runs; they count as their nearest
# active state for ordering.
_ALIASES: Final = {
    "STARTED": "ACTIVE",
    "ON_HOLD": "SUBMITTED",
    "ON_HOLD_STAGING": "STAGING",
    "NOT_USED": "SUBMITTED",
    "FORCE_START": "SUBMITTED",
    "TOKEN_PREP": "SUBMITTED",
    "DELETE": "ACTIVE",
    "QOS_TRANSITION": "ARCHIVING",
    "QOS_REQUEST_SUBMITTED": "ARCHIVING",
    # File states the original Datastore API recorded from FTS (its TransferState) that we
    # do not: NEW before a file is scheduled; DEFUNCT, a transfer FTS gave up as stalled.
    "NEW": "SUBMITTED",
    "DEFUNCT": FAILED,
}
_RANK: Final = {state: rank for rank, state in enumerate(ACTIVE_ORDER)} | {
    state: len(ACTIVE_ORDER) for state in TERMINAL
}


def normalise(state: str) -> str:
    state = state.upper()
    return _ALIASES.get(state, state)


def is_terminal(state: str) -> bool:
    return normalise(state) in TERMINAL


def may_advance(current: str | None, new: str) -> bool:
    """Whether ``new`` may replace ``current``: terminal states are final, no step back.

    Stale or duplicate events (polls overtaking each other, redeliveries) are thus harmless.
    """
    if current is None:
        return True
    current, new = normalise(current), normalise(new)
    if current in TERMINAL or current not in _RANK:
        return current not in TERMINAL and new in _RANK
    if new not in _RANK:
        return False
    return _RANK[new] > _RANK[current]


def aggregate_dataset_state(file_states: Iterable[str]) -> str:
    """A dataset's state from its files' (rules of the original Datastore API, anchors.md).

    Any unknown state -> UNKNOWN; else the earliest active state present; else all FINISHED ->
    FINISHED, all CANCELED -> CANCELED, all FAILED -> FAILED; any other mix -> FINISHEDDIRTY.
    """
    states = {normalise(s) for s in file_states}
    if not states:
        return UNKNOWN
    if any(s not in _RANK for s in states):
        return UNKNOWN
    for active in ACTIVE_ORDER:
        if active in states:
            return active
    if len(states) == 1:
        return states.pop()
    return FINISHEDDIRTY


def ended_percentage(ended: int, total: int) -> float:
    """How far a job, dataset or investigation has come: files whose transfer ended (any
    terminal state, failures included) / all files x 100, to 2 decimals; 100 when there are
    no files (nothing is left to do). It reaches 100 exactly when every file has ended."""
    if ended >= total:
        return 100.0
    # 99,999 of 100,000 must not round up to "done".
    return min(round(100.0 * max(ended, 0) / total, 2), 99.99)


FailureClass = Literal["user", "system"]
_USER_ERROR_MARKERS: Final = (
    "no such file",
    "not found",
    "does not exist",
    "enoent",
    "source missing",
    "no source",
    "user checksum",
    "user-provided checksum",
    "permission denied",
)


def classify_failure(reason: str | None) -> FailureClass:
    """User error (bad input, e.g. a missing source) or system error (time-outs, faults)."""
    text = (reason or "").lower()
    return "user" if any(marker in text for marker in _USER_ERROR_MARKERS) else "system"
