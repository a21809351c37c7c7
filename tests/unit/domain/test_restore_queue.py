"""domain.restore_queue: who starts, who waits QUEUED, in which order."""

from __future__ import annotations

import pytest

from datastore_common.domain.restore import Usage
from datastore_common.domain.restore_queue import (
    Limits,
    Waiting,
    fts_priority,
    never_fits,
    position_in,
    queue_order,
    take_turns,
    why_wait,
)


def waiting(
    request_id: str, owner: str, files: int, *, priority: int = 0, at: float = 0
) -> Waiting:
    return Waiting(
        request_id, owner, priority, at or float(ord(request_id[-1])), Usage(files, files * 10)
    )


class TestOrder:
    def test_priority_first_then_arrival(self) -> None:
        queue = [
            waiting("r1", "a", 1, at=1),
            waiting("r2", "b", 1, at=2, priority=5),
            waiting("r3", "c", 1, at=3, priority=5),
        ]
        assert [w.request_id for w in queue_order(queue)] == ["r2", "r3", "r1"]
        assert position_in(queue, "r1") == 3
        assert position_in(queue, "nope") is None


@pytest.mark.parametrize(
    ("mine", "facility", "asked", "limits", "setting"),
    [
        (Usage(), Usage(), Usage(5, 50), Limits(), None),
        (Usage(5, 50), Usage(5, 50), Usage(5, 50), Limits(user_files=10), None),
        (
            Usage(6, 60),
            Usage(6, 60),
            Usage(5, 50),
            Limits(user_files=10),
            "restore.max_user_files_in_flight",
        ),
        (
            Usage(0, 0),
            Usage(10, 900),
            Usage(1, 200),
            Limits(staging_bytes=1000),
            "restore.max_bytes_staging",
        ),
        (Usage(0, 0), Usage(10, 900), Usage(0, 0), Limits(staging_bytes=1000), None),
    ],
    ids=["no-caps", "at-the-cap", "over-own-files", "over-facility-bytes", "nothing-to-recall"],
)
def test_why_wait(
    mine: Usage, facility: Usage, asked: Usage, limits: Limits, setting: str | None
) -> None:
    why = why_wait(mine, facility, asked, limits)
    if setting is None:
        assert why is None
    else:
        assert why is not None and setting in why and "starts once" in why


@pytest.mark.parametrize(
    ("asked", "limits", "setting"),
    [
        (Usage(5, 50), Limits(user_files=5, user_bytes=50, staging_bytes=50), None),
        (Usage(6, 50), Limits(user_files=5), "restore.max_user_files_in_flight"),
        (Usage(1, 51), Limits(user_bytes=50), "restore.max_user_bytes_in_flight"),
        (Usage(1, 51), Limits(staging_bytes=50), "restore.max_bytes_staging"),
    ],
)
def test_never_fits(asked: Usage, limits: Limits, setting: str | None) -> None:
    why = never_fits(asked, limits)
    assert (why is None) if setting is None else (why is not None and setting in why)


class TestTakeTurns:
    def test_all_fit_all_start_in_order(self) -> None:
        queue = [waiting("r2", "b", 1), waiting("r1", "a", 1)]
        turn = take_turns(queue, {}, Usage(), Limits(user_files=4))
        assert turn.start == ("r1", "r2")
        assert turn.waiting == {}

    def test_a_user_over_their_cap_waits_and_others_go_on(self) -> None:
        queue = [waiting("r1", "a", 3), waiting("r2", "a", 1), waiting("r3", "b", 3)]
        turn = take_turns(queue, {"a": Usage(2, 20)}, Usage(2, 20), Limits(user_files=4))
        assert turn.start == ("r3",)
        assert "max_user_files_in_flight" in turn.waiting["r1"]
        # r2 would fit, but it does not overtake its owner's earlier request
        assert "an earlier restore of yours" in turn.waiting["r2"]

    def test_what_a_pass_starts_counts_for_the_next_in_line(self) -> None:
        queue = [waiting("r1", "a", 3), waiting("r2", "a", 3)]
        turn = take_turns(queue, {}, Usage(), Limits(user_files=4))
        assert turn.start == ("r1",)
        assert set(turn.waiting) == {"r2"}

    def test_nobody_overtakes_a_restore_waiting_for_the_facility(self) -> None:
        queue = [waiting("r1", "a", 5), waiting("r2", "b", 1)]
        turn = take_turns(queue, {}, Usage(8, 80), Limits(staging_bytes=100))
        assert turn.start == ()
        assert "restore.max_bytes_staging" in turn.waiting["r1"]
        assert "waits for staging capacity" in turn.waiting["r2"]

    def test_higher_priority_starts_first_when_one_fits(self) -> None:
        queue = [waiting("r1", "a", 2, at=1), waiting("r2", "b", 2, at=2, priority=1)]
        turn = take_turns(queue, {}, Usage(), Limits(staging_bytes=30))
        assert turn.start == ("r2",)
        assert "restore.max_bytes_staging" in turn.waiting["r1"]


@pytest.mark.parametrize(
    ("base", "queue_priority", "expected"),
    [(3, 0, None), (3, 1, 4), (3, 5, 5), (3, -1, 2), (3, -9, 1)],
)
def test_fts_priority_follows_the_queue_priority_within_1_to_5(
    base: int, queue_priority: int, expected: int | None
) -> None:
    assert fts_priority(base, queue_priority) == expected


def test_a_jobs_own_priority_reaches_fts_else_the_configured_one() -> None:
    from datastore_common.adapters.fts3.transfer_service import job_params
    from datastore_common.messages import PlannedJob, PlannedTransfer
    from datastore_common.settings import Fts3Settings

    transfer = PlannedTransfer(source="root://tape//a", destination="root://udc//a")
    job = PlannedJob(job_id="j", sid="r:0", kind="restore", transfers=[transfer])
    fts3 = Fts3Settings(priority=3)
    assert job_params(job, fts3).priority == 3
    assert job_params(job.model_copy(update={"priority": 5}), fts3).priority == 5
