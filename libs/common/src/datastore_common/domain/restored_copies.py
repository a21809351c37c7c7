"""What becomes of a restored copy on the user data cache once it expires. Pure: the gateway's
ledger records each copy Datastore wrote (destination, size, adler32, until when it stays),
the cleaner looks at the file there now, and this decides.

- A copy a restore not yet ended still needs (it is among that restore's files, recalled,
  online or followed) stays, expired or not.
- Before its expiry (``restore.retention_days`` after it was written, or after the last restore
  that found it online or followed it) it stays.
- A file that is not the one Datastore wrote (another size or adler32: someone replaced it) is
  never removed: the record is forgotten and the file left alone; so is a copy already gone.
- Otherwise it is removed (or, in a dry run, reported as what would be removed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from datastore_common.domain.restore import FileFacts

Outcome = Literal["remove", "keep", "forget"]


@dataclass(frozen=True)
class RecordedCopy:
    """A copy the ledger says Datastore wrote."""

    destination: str
    bytes: int
    checksum: str
    expires_at: float


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    why: str


def expiry_of(now: float, retention_days: float) -> float:
    return now + retention_days * 86400


def decide(copy: RecordedCopy, found: FileFacts | None, *, now: float, needed: bool) -> Verdict:
    """What to do with ``copy``, with ``found`` at its destination now (None: nothing)."""
    if needed:
        return Verdict("keep", "a restore not yet ended needs it")
    if copy.expires_at > now:
        return Verdict("keep", "not expired yet")
    if found is None:
        return Verdict("forget", "already gone")
    if found.size != copy.bytes or found.checksum.lower() != copy.checksum.lower():
        return Verdict(
            "forget",
            f"not the copy Datastore wrote (size {found.size}, {found.checksum}; it wrote "
            f"{copy.bytes}, {copy.checksum}): left alone",
        )
    return Verdict("remove", "expired and no restore needs it")
