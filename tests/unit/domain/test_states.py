"""domain.states: FTS state names, their order, a dataset's state from its files', failures."""

from __future__ import annotations

import pytest

from datastore_common.domain.states import (
    aggregate_dataset_state,
    classify_failure,
    ended_percentage,
    is_terminal,
    may_advance,
    normalise,
)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param("ACTIVE", "ACTIVE", id="known-as-is"),
        pytest.param("finished", "FINISHED", id="upper-case"),
        pytest.param("STARTED", "ACTIVE", id="started-is-active"),
        pytest.param("ON_HOLD", "SUBMITTED", id="on-hold-is-submitted"),
        pytest.param("ON_HOLD_STAGING", "STAGING", id="on-hold-staging-is-staging"),
        pytest.param("QOS_TRANSITION", "ARCHIVING", id="qos-transition-is-archiving"),
        pytest.param("token_prep", "SUBMITTED", id="aliases-in-any-case"),
        pytest.param("BOGUS", "BOGUS", id="unknown-as-is"),
    ],
)
def test_normalise(state: str, expected: str) -> None:
    assert normalise(state) == expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("FINISHED", True),
        ("FAILED", True),
        ("CANCELED", True),
        ("FINISHEDDIRTY", True),
        ("finished", True),
        ("ARCHIVING", False),
        ("STARTED", False),
        ("UNKNOWN", False),
    ],
    ids=lambda value: str(value),
)
def test_is_terminal(state: str, expected: bool) -> None:
    assert is_terminal(state) is expected


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        pytest.param(None, "SUBMITTED", True, id="anything-first"),
        pytest.param(None, "BOGUS", True, id="even-an-unknown-state-first"),
        pytest.param("STAGING", "SUBMITTED", True, id="staging-comes-before-submitted"),
        pytest.param("SUBMITTED", "ACTIVE", True, id="forward"),
        pytest.param("ACTIVE", "ARCHIVING", True, id="archiving-after-active"),
        pytest.param("ARCHIVING", "FINISHED", True, id="to-terminal"),
        pytest.param("SUBMITTED", "FAILED", True, id="failed-from-any-active-state"),
        pytest.param("ACTIVE", "SUBMITTED", False, id="no-step-back"),
        pytest.param("ACTIVE", "ACTIVE", False, id="duplicate"),
        pytest.param("ACTIVE", "STARTED", False, id="an-alias-of-the-same-state"),
        pytest.param("ON_HOLD", "READY", True, id="aliases-ordered-as-their-state"),
        pytest.param("active", "finished", True, id="any-case"),
        pytest.param("FINISHED", "FAILED", False, id="terminal-is-final"),
        pytest.param("FAILED", "SUBMITTED", False, id="no-restart-after-failed"),
        pytest.param("FINISHEDDIRTY", "FINISHED", False, id="finisheddirty-is-final"),
        pytest.param("ACTIVE", "BOGUS", False, id="never-to-an-unknown-state"),
        pytest.param("UNKNOWN", "ACTIVE", True, id="out-of-unknown-to-a-known-state"),
        pytest.param("BOGUS", "FINISHED", True, id="out-of-an-unrecognised-state"),
        pytest.param("BOGUS", "WEIRD", False, id="unknown-to-unknown"),
    ],
)
def test_may_advance(current: str | None, new: str, expected: bool) -> None:
    assert may_advance(current, new) is expected


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param([], "UNKNOWN", id="no-files"),
        pytest.param(["FINISHED", "BOGUS"], "UNKNOWN", id="any-unknown-state"),
        pytest.param(["FINISHED", "UNKNOWN"], "UNKNOWN", id="unknown-itself"),
        pytest.param(["ACTIVE", "SUBMITTED", "FINISHED"], "SUBMITTED", id="earliest-active"),
        pytest.param(["ARCHIVING", "STAGING"], "STAGING", id="staging-is-earliest"),
        pytest.param(["ACTIVE", "FAILED"], "ACTIVE", id="active-before-any-end"),
        pytest.param(["STARTED", "FINISHED"], "ACTIVE", id="aliases-count-as-their-state"),
        pytest.param(["FINISHED", "FINISHED"], "FINISHED", id="all-finished"),
        pytest.param(["CANCELED"], "CANCELED", id="all-canceled"),
        pytest.param(["FAILED", "failed"], "FAILED", id="all-failed-any-case"),
        pytest.param(["FINISHED", "FAILED"], "FINISHEDDIRTY", id="finished-and-failed"),
        pytest.param(["FAILED", "CANCELED"], "FINISHEDDIRTY", id="failed-and-canceled"),
        pytest.param(["FINISHEDDIRTY"], "FINISHEDDIRTY", id="dirty-stays-dirty"),
    ],
)
def test_aggregate_dataset_state(files: list[str], expected: str) -> None:
    assert aggregate_dataset_state(files) == expected


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        pytest.param(None, "system", id="no-reason"),
        pytest.param("", "system", id="empty-reason"),
        pytest.param("TRANSFER globus_xio: operation timed out", "system", id="time-out"),
        pytest.param("Connection refused", "system", id="server-fault"),
        pytest.param("SOURCE [2] No such file or directory", "user", id="no-such-file"),
        pytest.param("source not found on the instrument data cache: x", "user", id="not-found"),
        pytest.param("Path DOES NOT EXIST", "user", id="any-case"),
        pytest.param("ENOENT", "user", id="enoent"),
        pytest.param("USER checksum mismatch", "user", id="user-checksum"),
        pytest.param("open: Permission denied", "user", id="permission-denied"),
    ],
)
def test_classify_failure(reason: str | None, expected: str) -> None:
    assert classify_failure(reason) == expected


@pytest.mark.parametrize(
    ("ended", "total", "expected"),
    [
        pytest.param(0, 0, 100.0, id="nothing-to-do-is-done"),
        pytest.param(0, 4, 0.0, id="none-ended"),
        pytest.param(1, 3, 33.33, id="two-decimals"),
        pytest.param(4, 4, 100.0, id="all-ended"),
        pytest.param(99_999, 100_000, 99.99, id="never-rounds-up-to-done"),
        pytest.param(5, 4, 100.0, id="more-ended-than-known-is-done"),
    ],
)
def test_ended_percentage(ended: int, total: int, expected: float) -> None:
    assert ended_percentage(ended, total) == expected
