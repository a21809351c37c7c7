"""domain.control: who may cancel what, what a retry sends again, which states an admin sets."""

from __future__ import annotations

import pytest

from datastore_common.domain.control import (
    cancel_decision,
    check_settable,
    retry_decision,
    retry_sid,
)


@pytest.mark.parametrize(
    ("kind", "state", "admin", "force", "action"),
    [
        ("restore", "SUBMITTED", False, False, "cancel"),
        ("restore", "STAGING", False, False, "cancel"),
        ("restore", "ACTIVE", True, False, "cancel"),
        ("restore", "started", False, False, "cancel"),  # FTS's alias of ACTIVE
        ("restore", "FINISHED", False, False, "ended"),
        ("restore", "CANCELED", True, True, "ended"),  # twice: harmless, 409 with its state
        ("archive", "ACTIVE", False, False, "refuse"),
        ("archive", "ACTIVE", False, True, "refuse"),  # a user's force counts for nothing
        ("archive", "ACTIVE", True, False, "refuse"),
        ("archive", "ARCHIVING", True, True, "cancel"),
        ("archive", "FAILED", True, True, "ended"),
    ],
)
def test_cancel_decision(kind: str, state: str, admin: bool, force: bool, action: str) -> None:
    decision = cancel_decision(kind, state, admin=admin, force=force)
    assert decision.action == action
    assert (decision.reason is None) == (action == "cancel")


def test_refusals_say_why_and_what_to_do() -> None:
    assert "FINISHED" in str(
        cancel_decision("restore", "FINISHED", admin=False, force=False).reason
    )
    user = cancel_decision("archive", "ACTIVE", admin=False, force=False).reason
    admin = cancel_decision("archive", "ACTIVE", admin=True, force=False).reason
    assert user is not None and "only an admin" in user
    assert admin is not None and "force=true" in admin


@pytest.mark.parametrize(
    ("files", "again", "refused_because"),
    [
        ({1: "FINISHED", 2: "FAILED", 3: "CANCELED"}, (2, 3), None),
        ({1: "FAILED", 2: "FAILED"}, (1, 2), None),
        ({1: "CANCELED"}, (1,), None),
        ({1: "FAILED", 2: None}, (1, 2), None),  # a file never given a state goes too
        ({1: "FINISHED", 2: "FINISHED"}, (), "FINISHED"),
        ({1: "FAILED", 2: "ACTIVE"}, (), "in flight"),
        ({1: "SUBMITTED"}, (), "in flight"),
        ({1: None, 2: None}, (), "never archived"),
        ({}, (), "no datafiles"),
    ],
)
def test_retry_decision(
    files: dict[int, str | None], again: tuple[int, ...], refused_because: str | None
) -> None:
    decision = retry_decision(files, "dataset 7")
    assert decision.datafile_ids == again
    if refused_because is None:
        assert not decision.refused
    else:
        assert decision.refused and refused_because in str(decision.reason)
        assert "dataset 7" in str(decision.reason)


def test_retry_sids_are_per_attempt_and_stable() -> None:
    assert retry_sid("r1", 0) == retry_sid("r1", 0)
    assert retry_sid("r1", 0) != retry_sid("r2", 0) != retry_sid("r1", 1)
    assert retry_sid("r1", 0) != "r1:0"  # never an original archive's sid
    with pytest.raises(ValueError):
        retry_sid("", 0)


def test_settable_states() -> None:
    assert check_settable("failed") == "FAILED"
    with pytest.raises(ValueError, match="FINISHED"):
        check_settable("ACTIVE")


def test_state_set_values_say_who_and_why() -> None:
    from datetime import date

    from datastore_common.domain.control import state_set_values

    dataset, datafile = state_set_values(
        "canceled", "tape lost", set_by="simple/root", deletion_date=date(2030, 1, 2)
    )
    assert datafile == {
        "Archival state": "CANCELED",
        "Archival failure": "system error: set CANCELED by hand by simple/root: tape lost",
    }
    assert dataset == {**datafile, "Deletion date": "2030-01-02"}
    finished, _ = state_set_values("FINISHED", "checked by hand", set_by="simple/root")
    assert finished == {"Archival state": "FINISHED", "Archival failure": None}
