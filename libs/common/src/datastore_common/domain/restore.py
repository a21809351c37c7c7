"""What a restore recalls from tape, and what it does not. Pure: the gateway asks the user
data cache what is there (``Storage.describe_many``) and these decide.

- **Already online**: a file whose copy on the user data cache has the catalogue's size *and*
  adler32 is not recalled; the request counts it done (``already_online``). A copy can only be
  trusted when ICAT knows both: a datafile without a real checksum or size is recalled.
- **Replaced**: a different file at the destination (another size or checksum, a partial
  copy) is replaced: the job that carries it asks FTS to overwrite. Jobs with nothing to
  replace never overwrite, so FTS still refuses to clobber a file that appears there
  meanwhile unasked.
- **Already in flight**: a file another restore not yet ended is recalling to the same
  destination is not recalled again (``share_in_flight``): the request follows that one's
  transfer and its copy ends as that one's does. What sits at such a destination meanwhile is
  the other's half-written copy, never "a different file" to replace.
- **Left out** (``?partial=true``): datafiles of the selection not (yet) on tape are named
  with why, and the rest is restored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from datastore_common.domain.plan import is_real_checksum
from datastore_common.domain.states import normalise
from datastore_common.messages import LeftOutFile, PlannedTransfer, SharedTransfer


class FileFacts(Protocol):
    """What a storage says of a file (``ports.StoredFile`` is one)."""

    @property
    def size(self) -> int: ...

    @property
    def checksum(self) -> str: ...


@dataclass(frozen=True)
class OnlineCheck:
    """A restore's transfers sorted by what the user data cache holds at their destination."""

    #: The copy there has the catalogue's size and adler32: not recalled, done.
    already_online: tuple[PlannedTransfer, ...]
    #: To stage from tape and copy (absent, different, or not verifiable).
    to_recall: tuple[PlannedTransfer, ...]
    #: Destinations (among ``to_recall``) holding a different file: overwritten.
    to_replace: frozenset[str]


def copy_matches(transfer: PlannedTransfer, found: FileFacts | None) -> bool:
    """Whether ``found`` (the file at the transfer's destination) is the catalogue's file:
    same size and same adler32, both known to the catalogue."""
    if found is None or transfer.filesize is None or not is_real_checksum(transfer.checksum):
        return False
    assert transfer.checksum is not None
    return found.size == transfer.filesize and (found.checksum.lower() == transfer.checksum.lower())


def sort_by_destination(
    transfers: Sequence[PlannedTransfer], found: Mapping[str, FileFacts | None]
) -> OnlineCheck:
    """Sort ``transfers`` by what ``found`` (destination URL -> the file there, None when
    absent; a destination not asked about counts as absent) says of their destinations."""
    online: list[PlannedTransfer] = []
    recall: list[PlannedTransfer] = []
    replace: set[str] = set()
    for transfer in transfers:
        there = found.get(transfer.destination)
        if copy_matches(transfer, there):
            online.append(transfer)
            continue
        recall.append(transfer)
        if there is not None:
            replace.add(transfer.destination)
    return OnlineCheck(tuple(online), tuple(recall), frozenset(replace))


@dataclass(frozen=True)
class Sharing:
    """What a restore recalls itself, and what it follows of other restores in flight."""

    #: To stage from tape and copy in this request's own jobs.
    to_recall: tuple[PlannedTransfer, ...]
    #: Recalled to the same destination by another restore not yet ended: followed.
    already_in_flight: tuple[SharedTransfer, ...]
    #: Destinations (among ``to_recall``) holding a different file: overwritten.
    to_replace: frozenset[str]


def share_in_flight(online: OnlineCheck, in_flight: Mapping[str, str]) -> Sharing:
    """Split ``online.to_recall`` by ``in_flight`` (destination -> the request recalling a
    file there now, as the ledger's claims say): those are followed, not recalled again, and
    whatever is at their destination is that request's partial copy, so never replaced."""
    recall: list[PlannedTransfer] = []
    shared: list[SharedTransfer] = []
    for transfer in online.to_recall:
        owner = in_flight.get(transfer.destination)
        if owner is None:
            recall.append(transfer)
        else:
            shared.append(SharedTransfer(**transfer.model_dump(), recalled_by=owner))
    replace = online.to_replace - {t.destination for t in shared}
    return Sharing(tuple(recall), tuple(shared), frozenset(replace))


#: Why a datafile in this "Archival state" is not on tape yet, in words.
_NOT_YET = "its archive is still in flight ({state}): restore it once it is FINISHED"


def left_out_reason(state: str | None) -> str:
    """Why a datafile whose "Archival state" (as a restore counts it; None: none) is not
    FINISHED is left out of a partial restore."""
    if state is None:
        return "never archived"
    shown = normalise(state) if " " not in state else state
    if shown in {"FAILED", "CANCELED"}:
        return f"its archive ended {shown}: it is not on tape"
    if shown in {"SUBMITTED", "READY", "ACTIVE", "STAGING", "ARCHIVING", "PLANNED"}:
        return _NOT_YET.format(state=shown)
    return f'"Archival state" {shown}: not on tape as far as Datastore knows'


def left_out(states: Mapping[int, str | None]) -> tuple[LeftOutFile, ...]:
    """Each datafile not restorable (id -> its state), by id, with why."""
    return tuple(
        LeftOutFile(datafile_id=i, reason=left_out_reason(states[i])) for i in sorted(states)
    )


@dataclass(frozen=True)
class Usage:
    """Files and bytes being recalled (a user's restores not yet ended, or one request)."""

    files: int = 0
    bytes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.files + other.files, self.bytes + other.bytes)


def recall_usage(transfers: Sequence[PlannedTransfer]) -> Usage:
    """What recalling these transfers takes (a file of unknown size counts 0 bytes)."""
    return Usage(len(transfers), sum(t.filesize or 0 for t in transfers))


def over_quota(
    in_flight: Usage,
    asked: Usage,
    *,
    max_files: int | None,
    max_bytes: int | None,
) -> str | None:
    """Why a user recalling ``in_flight`` already may not start ``asked`` more, in words
    naming the setting; None when it fits (or asks nothing of tape: files already online
    never count). Limits are None when not set."""
    if asked.files == 0:
        return None
    after = in_flight + asked
    if max_files is not None and after.files > max_files:
        return (
            f"this restore recalls {asked.files} files and you have {in_flight.files} being "
            f"recalled; at most {max_files} at once (restore.max_user_files_in_flight): "
            "retry once some have ended"
        )
    if max_bytes is not None and after.bytes > max_bytes:
        return (
            f"this restore recalls {asked.bytes} bytes and you have {in_flight.bytes} being "
            f"recalled; at most {max_bytes} at once (restore.max_user_bytes_in_flight): "
            "retry once some have ended"
        )
    return None
