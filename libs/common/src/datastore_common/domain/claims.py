"""Claims: may a request archive a dataset, from what ICAT records of it?

Every archive, first or again, goes on only through a claim that is atomic in ICAT (done by
``Catalogue.claim_dataset``), so that of two requests archiving the same dataset at once (two
instruments, a client's retry) exactly one makes FTS jobs; the other is refused with the
winner's job ids. ``standing`` decides before the claim, ``after_claim`` reads its answer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from datastore_common.domain.archival import (
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
    join_job_ids,
    split_job_ids,
)
from datastore_common.domain.states import (
    CANCELED,
    FAILED,
    FINISHEDDIRTY,
    SUBMITTED,
    normalise,
)

#: A dataset in one of these states may be archived again by a new request; its files
#: already FINISHED (on tape) stay as they are and are not copied again.
REARCHIVABLE = frozenset({FAILED, CANCELED, FINISHEDDIRTY})

Action = Literal["claim", "register", "refuse"]


@dataclass(frozen=True)
class Standing:
    """What a request may do with a dataset it names, from what ICAT records of it.

    ``claim``: nobody is archiving it, claim it first (``replacing`` the ids of an ended
    archive, if any); ``register``: go on; ``refuse``: another request archived it or is
    archiving it (``state`` and ``job_ids`` say whose).
    """

    action: Action
    ours: bool = False  # this request's own earlier delivery got here: only fill the gaps
    state: str | None = None
    job_ids: tuple[str, ...] = ()
    replacing: str | None = None  # claim: the "Archival ids" the claim swaps for ours


def standing(archival: Mapping[str, str], request_job_ids: Collection[str]) -> Standing:
    """Where the request stands with a dataset recording ``archival``.

    Every archive, first or again, goes on only through a claim that is atomic in ICAT, so
    that of two requests archiving the same dataset at once (two instruments, a client's
    retry) exactly one makes FTS jobs; the other is refused with the winner's job ids.
    """
    state = archival.get(ARCHIVAL_STATE)
    ids = archival.get(ARCHIVAL_IDS)
    recorded = split_job_ids(ids)
    # Job ids are deterministic per request: ids all from this request's plan mean that
    # this message was delivered before (carry on), other ids mean another request owns it.
    if recorded and set(recorded) <= set(request_job_ids):
        return Standing("register", ours=True)
    if state is None and not recorded:
        return Standing("claim")
    if state is not None and normalise(state) in REARCHIVABLE:
        return Standing("claim", replacing=ids or None)
    # In flight or on tape; or ids without a state: another request's claim, its
    # registration not written yet.
    return Standing("refuse", state=state or SUBMITTED, job_ids=tuple(recorded))


def claim_ids(job_ids: Iterable[str]) -> str:
    """The "Archival ids" an archive claims the dataset with: its files' jobs."""
    return join_job_ids(sorted(set(job_ids)))


def after_claim(holder: str | None, request_job_ids: Collection[str]) -> Standing:
    """The standing once the claim is answered: ``None`` (claimed) or ids all of this request
    (a concurrent delivery of it claimed first) go on; anything else refuses, including an
    empty answer (another request is between taking the old ids away and writing its own)."""
    held_by = split_job_ids(holder)
    if holder is None:
        return Standing("register")
    if held_by and set(held_by) <= set(request_job_ids):
        return Standing("register")
    return Standing("refuse", state=SUBMITTED, job_ids=tuple(held_by))
