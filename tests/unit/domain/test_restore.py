"""domain.restore: what a restore recalls, what is already online, what is replaced, and
what a partial restore leaves out; the restore jobs' overwrite; the ledger's view."""

from __future__ import annotations

import pytest

from datastore_common.domain.ledger import (
    already_online_job_id,
    following_job_state,
    in_flight_job_id,
    is_ledger_only_job,
    new_request,
)
from datastore_common.domain.plan import plan_restore_jobs
from datastore_common.domain.restore import (
    Usage,
    copy_matches,
    left_out,
    left_out_reason,
    over_quota,
    recall_usage,
    share_in_flight,
    sort_by_destination,
)
from datastore_common.domain.states import FINISHED
from datastore_common.messages import PlannedTransfer, RestoreRequested, SharedTransfer
from datastore_common.ports import StoredFile

UDC = "root://udc:1094//"
TAPE = "root://tape:1094//archive/"
SUM = "adler32:0000abcd"


def transfer(
    name: str, *, dataset_id: int = 1, size: int | None = 100, checksum: str | None = SUM
) -> PlannedTransfer:
    return PlannedTransfer(
        source=f"{TAPE}{name}",
        destination=f"{UDC}{name}",
        datafile_id=sum(map(ord, name)),
        dataset_id=dataset_id,
        checksum=checksum,
        filesize=size,
    )


@pytest.mark.parametrize(
    ("catalogue", "there", "matches"),
    [
        pytest.param((100, SUM), StoredFile(100, SUM), True, id="same-size-and-checksum"),
        pytest.param((100, SUM), StoredFile(100, SUM.upper().replace("ADLER32", "adler32")),
                     True, id="hex-case-does-not-matter"),
        pytest.param((100, SUM), None, False, id="absent"),
        pytest.param((100, SUM), StoredFile(99, SUM), False, id="other-size"),
        pytest.param((100, SUM), StoredFile(100, "adler32:0000abce"), False, id="other-checksum"),
        pytest.param((None, SUM), StoredFile(100, SUM), False, id="catalogue-has-no-size"),
        pytest.param((100, None), StoredFile(100, SUM), False, id="catalogue-has-no-checksum"),
        pytest.param((100, "string"), StoredFile(100, "string"), False,
                     id="catalogue-checksum-not-real"),
    ],
)  # fmt: skip
def test_copy_matches(
    catalogue: tuple[int | None, str | None], there: StoredFile | None, matches: bool
) -> None:
    size, checksum = catalogue
    assert copy_matches(transfer("a", size=size, checksum=checksum), there) is matches


def test_sort_by_destination_recalls_what_is_not_there_and_replaces_what_differs() -> None:
    same, other, absent, unasked = (transfer(n) for n in ("same", "other", "absent", "unasked"))
    found = {
        same.destination: StoredFile(100, SUM),
        other.destination: StoredFile(100, "adler32:deadbeef"),
        absent.destination: None,
    }
    check = sort_by_destination([same, other, absent, unasked], found)
    assert check.already_online == (same,)
    assert check.to_recall == (other, absent, unasked)  # the plan's order kept
    assert check.to_replace == {other.destination}


def test_everything_online_recalls_nothing() -> None:
    files = [transfer("a"), transfer("b")]
    check = sort_by_destination(files, {t.destination: StoredFile(100, SUM) for t in files})
    assert check.already_online == tuple(files)
    assert check.to_recall == ()
    assert check.to_replace == frozenset()


def test_only_jobs_carrying_a_file_to_replace_overwrite() -> None:
    first = [transfer(f"d1/{i}", dataset_id=1) for i in range(2)]
    second = [transfer(f"d2/{i}", dataset_id=2) for i in range(2)]
    jobs = plan_restore_jobs(
        "req", [*first, *second], vo="vo", max_files_per_job=2, replace={second[1].destination}
    )
    assert [(job.transfers, job.overwrite) for job in jobs] == [(first, False), (second, True)]


def test_nothing_to_replace_never_overwrites() -> None:
    jobs = plan_restore_jobs("req", [transfer("a"), transfer("b")], vo="vo", max_files_per_job=1)
    assert [job.overwrite for job in jobs] == [False, False]


@pytest.mark.parametrize(
    ("state", "words"),
    [
        pytest.param(None, "never archived", id="none"),
        pytest.param("SUBMITTED", "still in flight (SUBMITTED)", id="submitted"),
        pytest.param("active", "still in flight (ACTIVE)", id="lower-case"),
        pytest.param("FAILED", "ended FAILED", id="failed"),
        pytest.param("CANCELED", "ended CANCELED", id="canceled"),
        pytest.param("FINISHED written by 'x', not by Datastore: not counted",
                     "not by Datastore", id="someone-else-wrote-it"),
        pytest.param("FINISHED, but no location", "no location", id="no-location"),
    ],
)  # fmt: skip
def test_left_out_reason(state: str | None, words: str) -> None:
    assert words in left_out_reason(state)


def test_left_out_lists_by_id() -> None:
    assert [i.datafile_id for i in left_out({9: None, 3: "FAILED"})] == [3, 9]


def test_the_ledger_counts_files_already_online_done_from_the_start() -> None:
    online = [transfer("a"), transfer("b", dataset_id=2)]
    recalled = plan_restore_jobs("req", [transfer("c")], vo="vo", max_files_per_job=10)
    request = new_request(
        RestoreRequested(request_id="req", jobs=recalled, already_online=online),
        owner="simple/root",
        source="http",
    )
    [fts_job, online_job] = request.jobs
    assert fts_job.state is None  # FTS says when
    assert online_job.job_id == already_online_job_id("req")
    assert online_job.state == FINISHED
    assert [(f.destination, f.state) for f in online_job.files] == [
        (t.destination, FINISHED) for t in online
    ]
    assert [d["datafiles"] for d in request.datasets] == [2, 1]  # dataset 1: c and a


def test_a_restore_names_some_file() -> None:
    with pytest.raises(
        ValueError, match="at least one job, one file already online or one in flight"
    ):
        RestoreRequested(request_id="req")


@pytest.mark.parametrize(
    ("in_flight", "asked", "limits", "refused"),
    [
        pytest.param(Usage(), Usage(5, 500), (None, None), None, id="no-limits"),
        pytest.param(Usage(5, 500), Usage(5, 500), (10, 1000), None, id="exactly-at-the-limits"),
        pytest.param(Usage(6, 0), Usage(5, 0), (10, None), "max_user_files_in_flight",
                     id="one-file-too-many"),
        pytest.param(Usage(1, 600), Usage(1, 401), (None, 1000), "max_user_bytes_in_flight",
                     id="one-byte-too-many"),
        pytest.param(Usage(), Usage(11, 0), (10, None), "max_user_files_in_flight",
                     id="one-request-over-the-limit-alone"),
        pytest.param(Usage(50, 10**9), Usage(0, 0), (10, 1000), None,
                     id="all-already-online-recalls-nothing"),
    ],
)  # fmt: skip
def test_over_quota(
    in_flight: Usage, asked: Usage, limits: tuple[int | None, int | None], refused: str | None
) -> None:
    max_files, max_bytes = limits
    why = over_quota(in_flight, asked, max_files=max_files, max_bytes=max_bytes)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


def test_recall_usage_counts_unknown_sizes_as_nothing() -> None:
    assert recall_usage([transfer("a", size=10), transfer("b", size=None)]) == Usage(2, 10)


class TestShareInFlight:
    """Files another restore is recalling to the same place are followed, not recalled."""

    @pytest.mark.parametrize(
        ("held", "on_disk", "recalled", "followed", "replaced"),
        [
            pytest.param({}, {}, ["a", "b"], [], [], id="nothing-in-flight"),
            pytest.param({"a": "req-1"}, {}, ["b"], [("a", "req-1")], [], id="one-followed"),
            pytest.param(
                {"a": "req-1", "b": "req-2"},
                {},
                [],
                [("a", "req-1"), ("b", "req-2")],
                [],
                id="all-followed-two-leaders",
            ),
            pytest.param(
                {"a": "req-1"},
                {"a": 10, "b": 10},
                ["b"],
                [("a", "req-1")],
                ["b"],
                id="a-half-written-copy-in-flight-is-not-replaced",
            ),
        ],
    )
    def test_split(
        self,
        held: dict[str, str],
        on_disk: dict[str, int],
        recalled: list[str],
        followed: list[tuple[str, str]],
        replaced: list[str],
    ) -> None:
        planned = [transfer("a"), transfer("b")]
        found = {f"{UDC}{n}": StoredFile(size, "adler32:ffffffff") for n, size in on_disk.items()}
        online = sort_by_destination(planned, found)
        sharing = share_in_flight(online, {f"{UDC}{n}": r for n, r in held.items()})
        assert [t.destination for t in sharing.to_recall] == [f"{UDC}{n}" for n in recalled]
        assert [(t.destination, t.recalled_by) for t in sharing.already_in_flight] == [
            (f"{UDC}{n}", r) for n, r in followed
        ]
        assert sharing.to_replace == {f"{UDC}{n}" for n in replaced}

    def test_a_followed_file_keeps_what_the_catalogue_says_of_it(self) -> None:
        online = sort_by_destination([transfer("a", size=7)], {})
        [shared] = share_in_flight(online, {f"{UDC}a": "req-1"}).already_in_flight
        assert (shared.filesize, shared.checksum, shared.datafile_id) == (
            7,
            SUM,
            transfer("a").datafile_id,
        )


class TestFollowingInTheLedger:
    def test_files_in_flight_elsewhere_are_one_ledger_job_following_their_leaders(self) -> None:
        shared = SharedTransfer(**transfer("a").model_dump(), recalled_by="req-1")
        message = RestoreRequested(request_id="req-2", already_in_flight=[shared])
        [job] = new_request(message, owner="alice", source="http").jobs
        assert job.job_id == in_flight_job_id("req-2")
        assert [(f.destination, f.follows, f.state) for f in job.files] == [
            (f"{UDC}a", "req-1", "SUBMITTED")
        ]
        assert is_ledger_only_job(job.job_id)
        assert is_ledger_only_job(already_online_job_id("req-2"))
        assert not is_ledger_only_job("5f1b7a4c-2d3e-5f60-8a9b-0c1d2e3f4a5b")

    @pytest.mark.parametrize(
        ("states", "shown"),
        [
            (["SUBMITTED", "STAGING"], "STAGING"),
            (["FINISHED", "ACTIVE"], "ACTIVE"),
            (["FINISHED", "FINISHED"], "FINISHED"),
            (["FINISHED", "FAILED"], "FINISHEDDIRTY"),
            (["CANCELED"], "CANCELED"),
        ],
    )
    def test_the_following_job_reads_as_its_files(self, states: list[str], shown: str) -> None:
        assert following_job_state(states) == shown
