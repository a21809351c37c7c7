"""Controlling requests and datasets: may a request be cancelled, may a dataset's archive be
retried and which of its files, may an admin set a state by hand. Pure: the gateway and the
icat-writer ask these, then do what they say.

- **Cancel**: a restore in flight is its owner's (or an admin's) to cancel; an archive is not,
  as the original Datastore refuses it (its files may be half on tape, and ICAT records them),
  unless an admin forces it, and then ICAT records CANCELED for its files as FTS reports them.
  A request that has ended is not cancelled again (409 with its state).
- **Retry**: only an archive that has ended without every file on tape (FAILED, CANCELED,
  FINISHEDDIRTY) is retried, and only its files FAILED or CANCELED (or never given a state) are
  sent again; a dataset in flight or FINISHED is refused with why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from datastore_common.domain.states import (
    CANCELED,
    FAILED,
    FINISHED,
    FINISHEDDIRTY,
    TERMINAL,
    aggregate_dataset_state,
    normalise,
)

#: Dataset states whose archive may be retried: ended, and not every file on tape.
RETRYABLE_DATASET_STATES = frozenset({FAILED, CANCELED, FINISHEDDIRTY})
#: File states a retry sends again.
RETRIED_FILE_STATES = frozenset({FAILED, CANCELED})
#: States an admin may set by hand (``PUT /datasets/{id}/status``).
SETTABLE_STATES = frozenset({FINISHED, FAILED, CANCELED, FINISHEDDIRTY})

CancelAction = Literal["cancel", "refuse", "ended"]


@dataclass(frozen=True)
class CancelDecision:
    """``cancel``: cancel its FTS jobs; ``refuse`` and ``ended``: 409 with ``reason``."""

    action: CancelAction
    reason: str | None = None


def cancel_decision(
    kind: str, state: str, *, admin: bool, force: bool, what: str = "request"
) -> CancelDecision:
    """Whether a request (or one job of it, ``what``) of ``kind`` in ``state`` is cancelled
    for a caller already allowed to see it (its owner or an admin)."""
    state = normalise(state)
    if state in TERMINAL:
        return CancelDecision("ended", f"the {what} has ended {state}: nothing to cancel")
    if kind == "archive" and not (admin and force):
        why = (
            "pass force=true to cancel it anyway (ICAT then records its files CANCELED)"
            if admin
            else "only an admin may force it"
        )
        return CancelDecision(
            "refuse",
            f"an archive {what} is not cancelled: its files may already be on tape and ICAT "
            f"records them; {why}",
        )
    return CancelDecision("cancel")


@dataclass(frozen=True)
class RetryDecision:
    """``datafile_ids``: what to send again (ascending); ``reason`` when refused."""

    datafile_ids: tuple[int, ...] = ()
    reason: str | None = None

    @property
    def refused(self) -> bool:
        return self.reason is not None


def retry_decision(
    file_states: Mapping[int, str | None], dataset: str = "dataset"
) -> RetryDecision:
    """Which datafiles (id -> "Archival state", None when none) of a dataset a retry sends
    again, or why it is refused (``dataset`` names it in the reason)."""
    if not file_states:
        return RetryDecision(reason=f"{dataset} has no datafiles to archive")
    missing = sorted(i for i, s in file_states.items() if s is None)
    if missing and len(missing) == len(file_states):
        return RetryDecision(reason=f"{dataset} was never archived: archive it instead")
    state = aggregate_dataset_state(normalise(s) for s in file_states.values() if s is not None)
    if state == FINISHED and not missing:
        return RetryDecision(reason=f"{dataset} is FINISHED: every file is on tape")
    if state not in RETRYABLE_DATASET_STATES and state != FINISHED:
        return RetryDecision(
            reason=f"{dataset} is {state}: its archive is still in flight; cancel it or "
            "wait for it to end"
        )
    again = sorted(
        i for i, s in file_states.items() if s is None or normalise(s) in RETRIED_FILE_STATES
    )
    if not again:
        return RetryDecision(reason=f"{dataset} has no FAILED or CANCELED files to retry")
    return RetryDecision(datafile_ids=tuple(again))


def retry_sid(request_id: str, batch_index: int) -> str:
    """The ``sid`` of batch ``batch_index`` of retry request ``request_id``: the retry is its
    own request (attempt), so a redelivery of it names the same jobs and another retry of the
    same dataset names new ones."""
    if not request_id:
        raise ValueError("request_id must not be empty")
    if batch_index < 0:
        raise ValueError(f"batch_index must be >= 0, got {batch_index}")
    return f"{request_id}:retry:{batch_index}"


def check_settable(state: str) -> str:
    """The state an admin sets by hand, normalised; ValueError naming the allowed ones."""
    wanted = normalise(state)
    if wanted not in SETTABLE_STATES:
        raise ValueError(
            f"state {state!r} cannot be set by hand; one of {', '.join(sorted(SETTABLE_STATES))}"
        )
    return wanted
