"""The restore queue's rules: who starts now, who waits QUEUED, and in which order. Pure: the
gateway's ledger counts what is in flight and keeps the queue; these decide.

- A user's restores recall at most ``restore.max_user_files_in_flight`` files and
  ``max_user_bytes_in_flight`` bytes at once, and the facility at most
  ``max_bytes_staging`` bytes over all users. A restore past a cap waits QUEUED and starts by
  itself when capacity frees up.
- The queue is served in priority order (higher first, ``restore.user_priorities``), then in
  arrival order. Nobody overtakes a request held back by the facility's cap (it would starve);
  a request held back by its own user's cap holds back only that user's later ones.
- A restore that could never start (it alone is past a cap) is refused at once (413).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datastore_common.domain.restore import Usage, over_quota


@dataclass(frozen=True)
class Limits:
    """The caps; None: no cap."""

    user_files: int | None = None
    user_bytes: int | None = None
    staging_bytes: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.user_files, self.user_bytes, self.staging_bytes))


@dataclass(frozen=True)
class Waiting:
    """A restore in the queue (or asking to start): what it would recall."""

    request_id: str
    owner: str
    priority: int
    queued_at: float
    asked: Usage


def queue_order(entries: Sequence[Waiting]) -> list[Waiting]:
    """Priority (higher first), then arrival, then id (a stable tie-break)."""
    return sorted(entries, key=lambda w: (-w.priority, w.queued_at, w.request_id))


def never_fits(asked: Usage, limits: Limits) -> str | None:
    """Why a restore could never start, even alone (None: it could)."""
    if limits.user_files is not None and asked.files > limits.user_files:
        return (
            f"this restore recalls {asked.files} files; one user may have at most "
            f"{limits.user_files} being recalled at once (restore.max_user_files_in_flight): "
            "split it"
        )
    if limits.user_bytes is not None and asked.bytes > limits.user_bytes:
        return (
            f"this restore recalls {asked.bytes} bytes; one user may have at most "
            f"{limits.user_bytes} being recalled at once (restore.max_user_bytes_in_flight): "
            "split it"
        )
    if limits.staging_bytes is not None and asked.bytes > limits.staging_bytes:
        return (
            f"this restore recalls {asked.bytes} bytes; at most {limits.staging_bytes} are "
            "staged at once for everyone (restore.max_bytes_staging): split it"
        )
    return None


def why_wait(owner_usage: Usage, facility: Usage, asked: Usage, limits: Limits) -> str | None:
    """Why a restore asking ``asked`` cannot start now, with its owner recalling
    ``owner_usage`` and everyone ``facility``; None when it fits."""
    mine = over_quota(owner_usage, asked, max_files=limits.user_files, max_bytes=limits.user_bytes)
    if mine is not None:
        return mine.replace("retry once some have ended", "it starts once some have ended")
    if (
        asked.files
        and limits.staging_bytes is not None
        and facility.bytes + asked.bytes > limits.staging_bytes
    ):
        return (
            f"this restore recalls {asked.bytes} bytes and {facility.bytes} are being staged "
            f"for everyone; at most {limits.staging_bytes} at once (restore.max_bytes_staging): "
            "it starts once capacity frees up"
        )
    return None


@dataclass(frozen=True)
class Turn:
    """One pass over the queue: who starts now, and why each other one waits."""

    start: tuple[str, ...]
    waiting: Mapping[str, str]


def take_turns(
    queue: Sequence[Waiting], usage: Mapping[str, Usage], facility: Usage, limits: Limits
) -> Turn:
    """Walk the queue in order, starting each restore that fits what is in flight plus what
    this pass started; a restore held back by the facility's cap stops the walk, one held
    back by its owner's cap holds back that owner's later ones only."""
    in_flight = dict(usage)
    staging = facility
    start: list[str] = []
    waiting: dict[str, str] = {}
    held: dict[str, str] = {}
    for entry in queue_order(queue):
        if entry.owner in held:
            waiting[entry.request_id] = held[entry.owner]
            continue
        mine = in_flight.get(entry.owner, Usage())
        why = why_wait(mine, staging, entry.asked, limits)
        if why is None:
            start.append(entry.request_id)
            in_flight[entry.owner] = mine + entry.asked
            staging = staging + entry.asked
            continue
        waiting[entry.request_id] = why
        if "restore.max_bytes_staging" in why:
            blocked = "an earlier restore in the queue waits for staging capacity"
            for later in queue_order(queue):
                if later.request_id not in start and later.request_id not in waiting:
                    waiting[later.request_id] = blocked
            break
        held[entry.owner] = "an earlier restore of yours in the queue waits: " + why
    return Turn(tuple(start), waiting)


def position_in(queue: Sequence[Waiting], request_id: str) -> int | None:
    """1 for the next in line; None when not queued."""
    for index, entry in enumerate(queue_order(queue), start=1):
        if entry.request_id == request_id:
            return index
    return None


#: FTS's priorities run from 1 (lowest) to 5.
FTS_PRIORITIES = range(1, 6)


def fts_priority(base: int, queue_priority: int) -> int | None:
    """The FTS priority of a restore's jobs: ``fts3.priority`` moved by its owner's priority
    in the queue, within FTS's 1-5; None (FTS's default from config) for priority 0."""
    if queue_priority == 0:
        return None
    return max(FTS_PRIORITIES.start, min(FTS_PRIORITIES.stop - 1, base + queue_priority))
