"""domain.restored_copies: only expired, unneeded copies Datastore wrote are removed."""

from __future__ import annotations

import pytest

from datastore_common.domain.restored_copies import RecordedCopy, decide, expiry_of
from datastore_common.ports import StoredFile

COPY = RecordedCopy("root://udc//a", 100, "adler32:0000abcd", expires_at=1000.0)
SAME = StoredFile(100, "adler32:0000ABCD")


@pytest.mark.parametrize(
    ("found", "now", "needed", "outcome", "words"),
    [
        (SAME, 1001.0, False, "remove", "expired"),
        (SAME, 999.0, False, "keep", "not expired"),
        (SAME, 1001.0, True, "keep", "not yet ended needs it"),
        (None, 1001.0, False, "forget", "already gone"),
        (StoredFile(100, "adler32:ffffffff"), 1001.0, False, "forget", "left alone"),
        (StoredFile(99, "adler32:0000abcd"), 1001.0, False, "forget", "not the copy"),
        (None, 999.0, True, "keep", "needs it"),
    ],
    ids=[
        "expired-unneeded-ours",
        "not-expired",
        "needed-by-a-live-restore",
        "gone",
        "another-checksum",
        "another-size",
        "needed-wins-over-gone",
    ],
)
def test_decide(
    found: StoredFile | None, now: float, needed: bool, outcome: str, words: str
) -> None:
    verdict = decide(COPY, found, now=now, needed=needed)
    assert verdict.outcome == outcome
    assert words in verdict.why


def test_expiry_is_retention_days_later() -> None:
    assert expiry_of(1000.0, 14) == 1000.0 + 14 * 86400
