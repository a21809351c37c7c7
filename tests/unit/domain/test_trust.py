"""domain.trust: a worker refuses what the system itself would not have asked of it."""

from __future__ import annotations

from typing import Any

import pytest

from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.domain.paths import archive_urls
from datastore_common.domain.trust import (
    ArchiveRoots,
    StorageRoots,
    UntrustedMessageError,
    archive_plan_differences,
    check_archive_plan,
    check_status,
    check_transfers,
    status_problems,
    transfer_problem,
)
from datastore_common.errors import PermanentError
from datastore_common.messages import FileState, PlannedJob, TransferStatus
from tests.unit.domain.specs import IDC, TAPE, TAPE_ROOT, VO, investigation, plan

UDC = "root://udc:1094//"
ROOTS = StorageRoots(
    instrument_data_cache=IDC, tape_archive=TAPE, tape_root_dir=TAPE_ROOT, user_data_cache=UDC
)
PLACE = "INSTR/CYCLE/ABC-1/raw/scan_0/file_0.nxs"
ON_IDC = f"{IDC}{PLACE}"
ON_TAPE = f"{TAPE}{TAPE_ROOT}{PLACE}"
ON_UDC = f"{UDC}{PLACE}"


# ---------------------------------------------------------------- FTS transfers


@pytest.mark.parametrize(
    ("kind", "source", "destination"),
    [
        pytest.param("archive", ON_IDC, ON_TAPE, id="archive-idc-to-tape"),
        pytest.param("restore", ON_TAPE, ON_UDC, id="restore-tape-to-udc"),
        pytest.param(
            "archive",
            "ROOT://IDC:1094//INSTR/CYCLE/ABC-1/raw/scan_0/file_0.nxs",
            ON_TAPE,
            id="scheme-and-host-are-case-insensitive",
        ),
        pytest.param(
            "archive",
            f"{IDC}tests/test_x-0a1b2c3d/file_0000.nxs",
            f"{TAPE}{TAPE_ROOT}tests/test_x-0a1b2c3d/file_0000.nxs",
            id="any-safe-path-below-the-roots",
        ),
    ],
)
def test_transfers_where_their_kind_goes_are_accepted(
    kind: Any, source: str, destination: str
) -> None:
    assert transfer_problem(kind, source, destination, roots=ROOTS) is None


HOSTILE_SOURCES = [
    pytest.param(f"{IDC}INSTR/../../etc/passwd", "'..'", id="dot-dot"),
    pytest.param(f"{IDC}INSTR/./CYCLE/ABC-1/raw/scan_0/file_0.nxs", "'.'", id="dot"),
    pytest.param(f"{IDC}/INSTR/CYCLE/ABC-1/raw/scan_0/file_0.nxs", "empty", id="triple-slash"),
    pytest.param(f"{IDC}INSTR//CYCLE/f", "empty", id="empty-component"),
    pytest.param(f"{IDC}INSTR/CYCLE/", "empty", id="trailing-slash"),
    pytest.param(IDC, "empty", id="the-root-itself"),
    pytest.param(f"{IDC}INSTR/%2e%2e/%2e%2e/etc", "percent", id="percent-encoded-dot-dot"),
    pytest.param(f"{IDC}INSTR/f?xrd.path=/etc/passwd", "query", id="query-string"),
    pytest.param(f"{IDC}INSTR/f#../../x", "fragment", id="fragment"),
    pytest.param(f"{IDC}INSTR\\..\\x", "backslash", id="backslash"),
    pytest.param(f"{IDC}INSTR/f\x00.nxs", "U+0000", id="nul"),
    pytest.param(f"{IDC}INSTR/f\u200b.nxs", "U+200B", id="zero-width-space"),
    pytest.param(f"{IDC}INSTR/a b", "U+0020", id="space"),
    pytest.param(f"{IDC}INSTR/é.nxs", "not", id="non-ascii-name"),
    pytest.param("root://evil:1094//INSTR/f", "server 'evil:1094'", id="other-host"),
    pytest.param("root://idc:1095//INSTR/f", "server 'idc:1095'", id="other-port"),
    pytest.param("root://idc//INSTR/f", "server 'idc'", id="no-port"),
    pytest.param("root://user@idc:1094//INSTR/f", "server 'user@idc:1094'", id="user-info"),
    pytest.param("root://idc:1094@evil:1094//INSTR/f", "server", id="host-after-at"),
    pytest.param("roots://idc:1094//INSTR/f", "scheme 'roots'", id="other-scheme"),
    pytest.param("https://idc:1094//INSTR/f", "scheme 'https'", id="https"),
    pytest.param("file:///etc/passwd", "scheme 'file'", id="file-url"),
    pytest.param("/etc/passwd", "not a URL", id="plain-path"),
    pytest.param("root://idc:1094", "not a URL", id="no-path"),
    pytest.param("root://idc:1094/INSTR/f", "not below '/'", id="single-slash-path"),
    pytest.param(ON_TAPE, "server 'tape:1094'", id="tape-as-source"),
    pytest.param(ON_UDC, "server 'udc:1094'", id="user-cache-as-source"),
]


@pytest.mark.parametrize(("source", "why"), HOSTILE_SOURCES)
def test_an_archive_source_off_the_instrument_data_cache_is_refused(source: str, why: str) -> None:
    problem = transfer_problem("archive", source, ON_TAPE, roots=ROOTS)
    assert problem is not None
    assert repr(source) in problem  # names the offending URL
    assert "archive source" in problem and why in problem


@pytest.mark.parametrize(
    ("destination", "why"),
    [
        pytest.param(f"{TAPE}{PLACE}", "not below '/archive/'", id="outside-the-tape-folder"),
        pytest.param(f"{TAPE}archived/{PLACE}", "not below '/archive/'", id="folder-prefix-only"),
        pytest.param(f"{TAPE}{TAPE_ROOT}../{PLACE}", "'..'", id="dot-dot-out-of-the-folder"),
        pytest.param(f"{TAPE}{TAPE_ROOT}{PLACE}?svcClass=x", "query", id="query-string"),
        pytest.param(f"{IDC}{TAPE_ROOT}{PLACE}", "server 'idc:1094'", id="back-to-the-cache"),
        pytest.param(f"{UDC}{PLACE}", "server 'udc:1094'", id="to-the-user-cache"),
        pytest.param(
            f"{TAPE}{TAPE_ROOT}INSTR/CYCLE/XYZ-2/raw/scan_0/file_0.nxs",
            "not the source's place",
            id="another-investigations-place",
        ),
    ],
)
def test_an_archive_destination_off_its_place_on_tape_is_refused(
    destination: str, why: str
) -> None:
    problem = transfer_problem("archive", ON_IDC, destination, roots=ROOTS)
    assert problem is not None
    assert repr(destination) in problem and why in problem


@pytest.mark.parametrize(
    ("source", "destination", "offending"),
    [
        pytest.param(ON_IDC, ON_UDC, ON_IDC, id="from-the-instrument-cache"),
        pytest.param(f"{TAPE}{PLACE}", ON_UDC, f"{TAPE}{PLACE}", id="outside-the-tape-folder"),
        pytest.param(ON_TAPE, ON_TAPE, ON_TAPE, id="onto-tape"),
        pytest.param(ON_TAPE, ON_IDC, ON_IDC, id="onto-the-instrument-cache"),
        pytest.param(ON_TAPE, f"{UDC}x/../../y", f"{UDC}x/../../y", id="dot-dot-on-the-user-cache"),
        pytest.param(
            ON_TAPE,
            "root://udc:1094//other/place",
            "root://udc:1094//other/place",
            id="another-place",
        ),
    ],
)
def test_a_restore_off_tape_or_off_the_user_cache_is_refused(
    source: str, destination: str, offending: str
) -> None:
    problem = transfer_problem("restore", source, destination, roots=ROOTS)
    assert problem is not None and repr(offending) in problem


def test_check_transfers_names_every_bad_transfer_and_a_job_of_another_kind() -> None:
    good = plan([investigation(["a.nxs", "b.nxs"])])[0]
    bad = good.transfers[1].model_copy(update={"source": "root://evil:1094//a"})
    jobs = [good.model_copy(update={"transfers": [good.transfers[0], bad]})]
    with pytest.raises(UntrustedMessageError, match="root://evil:1094//a") as caught:
        check_transfers(jobs, kind="archive", roots=ROOTS)
    assert isinstance(caught.value, PermanentError)
    with pytest.raises(UntrustedMessageError, match="is a archive job, not restore"):
        check_transfers([good], kind="restore", roots=ROOTS)
    check_transfers([good], kind="archive", roots=ROOTS)  # no exception


# ---------------------------------------------------------------- archive plans


def _tamper(jobs: list[PlannedJob], index: int = 0, **changes: Any) -> list[PlannedJob]:
    """The plan with the first transfer of job ``index`` changed."""
    job = jobs[index]
    transfers = [job.transfers[0].model_copy(update=changes), *job.transfers[1:]]
    return [*jobs[:index], job.model_copy(update={"transfers": transfers}), *jobs[index + 1 :]]


def _two_job_plan() -> list[PlannedJob]:
    return plan([investigation(["a.nxs", "b.nxs"], ["c.nxs", "d.nxs"])], per_job=2)


def test_our_own_plan_is_accepted() -> None:
    jobs = _two_job_plan()
    assert archive_plan_differences(jobs, jobs) == []
    check_archive_plan(jobs, [j.model_copy() for j in jobs])


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(
            lambda jobs: [
                jobs[0].model_copy(update={"job_id": fts_job_id(VO, "other:0")}),
                jobs[1],
            ],
            "id ",
            id="another-job-id",
        ),
        pytest.param(
            lambda jobs: [jobs[0].model_copy(update={"job_id": jobs[1].job_id}), jobs[1]],
            "the plan says",
            id="another-requests-job-id",
        ),
        pytest.param(
            lambda jobs: _tamper(jobs, source="root://evil:1094//x"), "source", id="source"
        ),
        pytest.param(
            lambda jobs: _tamper(jobs, destination=f"{TAPE}{TAPE_ROOT}XYZ/f"),
            "destination",
            id="destination",
        ),
        pytest.param(
            lambda jobs: _tamper(jobs, checksum="adler32:00000000"), "checksum", id="checksum"
        ),
        pytest.param(lambda jobs: _tamper(jobs, datafile_id=42), "datafile_id", id="datafile-id"),
        pytest.param(lambda jobs: jobs[:1], "missing", id="a-job-missing"),
        pytest.param(
            lambda jobs: [
                *jobs,
                jobs[1].model_copy(
                    update={"sid": job_sid("req-1", 2), "job_id": fts_job_id(VO, "req-1:2")}
                ),
            ],
            "not in the plan",
            id="an-extra-job",
        ),
        pytest.param(lambda jobs: [jobs[0], jobs[0], jobs[1]], "twice", id="a-job-twice"),
        pytest.param(
            lambda jobs: [jobs[0].model_copy(update={"kind": "restore"}), jobs[1]],
            "kind restore",
            id="another-kind",
        ),
        pytest.param(
            lambda jobs: [
                jobs[0].model_copy(update={"transfers": jobs[0].transfers[:1]}),
                jobs[1],
            ],
            "b.nxs missing",
            id="a-datafile-missing",
        ),
        pytest.param(
            lambda jobs: [
                jobs[0].model_copy(
                    update={"transfers": [*jobs[0].transfers, jobs[1].transfers[0]]}
                ),
                jobs[1],
            ],
            "c.nxs not in the plan",
            id="a-datafile-moved-to-another-job",
        ),
    ],
)
def test_a_plan_other_than_ours_is_refused_saying_what_differs(tamper: Any, expected: str) -> None:
    jobs = _two_job_plan()
    given = tamper(jobs)
    with pytest.raises(UntrustedMessageError, match="not the ones its plan gives") as caught:
        check_archive_plan(jobs, given)
    assert expected in str(caught.value)


def test_without_the_vo_everything_but_the_job_ids_is_compared() -> None:
    jobs = _two_job_plan()
    other_vo = [j.model_copy(update={"job_id": fts_job_id("other-vo", j.sid)}) for j in jobs]
    assert archive_plan_differences(jobs, other_vo, check_job_ids=False) == []
    assert archive_plan_differences(jobs, other_vo, check_job_ids=True) != []
    moved = _tamper(other_vo, source="root://evil:1094//x")
    assert archive_plan_differences(jobs, moved, check_job_ids=False) != []


def test_a_refusal_names_a_few_differences_and_counts_the_rest() -> None:
    jobs = plan([investigation([f"f{i}.nxs" for i in range(9)])])
    moved = [
        jobs[0].model_copy(
            update={
                "transfers": [
                    t.model_copy(update={"source": f"root://evil:1094//{i}"})
                    for i, t in enumerate(jobs[0].transfers)
                ]
            }
        )
    ]
    with pytest.raises(UntrustedMessageError, match=r"\(and 4 more\)"):
        check_archive_plan(jobs, moved)


# ---------------------------------------------------------------- status events

ARCHIVE_ROOTS = ArchiveRoots(instrument_data_cache=IDC, tape_archive=TAPE, tape_root_dir=TAPE_ROOT)
JOB = fts_job_id(VO, "req-1:0")
URLS = archive_urls(PLACE, instrument_data_cache=IDC, tape_archive=TAPE, tape_root_dir=TAPE_ROOT)


def _status(job_id: str = JOB, **file: Any) -> tuple[TransferStatus, FileState]:
    reported = FileState(
        **{
            "source": URLS.source,
            "destination": URLS.destination,
            "datafile_id": 1,
            "state": "FINISHED",
            **file,
        }
    )
    status = TransferStatus(
        request_id="req-1",
        kind="archive",
        job_id=job_id,
        fts_endpoint="https://fts:8446",
        job_state="FINISHED",
        files=[reported],
    )
    return status, reported


def _problems(
    status: TransferStatus,
    reported: FileState,
    *,
    location: str | None = PLACE,
    dataset_ids: str | None = JOB,
    written: bool = True,
) -> list[str]:
    return status_problems(
        status,
        [reported],
        {1: location},
        {1: 7},
        {7: dataset_ids},
        [1] if written else [],
        roots=ARCHIVE_ROOTS,
    )


def test_a_status_of_the_datasets_own_job_at_the_datafiles_place_is_accepted() -> None:
    status, reported = _status()
    assert _problems(status, reported) == []
    assert _problems(status, reported, dataset_ids=f"{fts_job_id(VO, 'req-1:1')},{JOB}") == []


def test_a_job_the_dataset_does_not_record_may_not_write() -> None:
    status, reported = _status(job_id=fts_job_id(VO, "forged:0"))
    [problem] = _problems(status, reported)
    assert "is not one its dataset 7 records in 'Archival ids'" in problem
    [problem] = _problems(status, reported, dataset_ids=None)
    assert "(none)" in problem


def test_a_job_the_dataset_does_not_record_that_writes_nothing_is_left_alone() -> None:
    """A late event of an earlier attempt, a duplicate: today's rule already changes nothing."""
    status, reported = _status(job_id=fts_job_id(VO, "earlier:0"))
    assert _problems(status, reported, written=False) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"source": "root://evil:1094//x"}, "source 'root://evil:1094//x'", id="source"
        ),
        pytest.param(
            {"destination": f"{TAPE}{TAPE_ROOT}OTHER/CYCLE/ABC-1/raw/scan_0/file_0.nxs"},
            "destination",
            id="destination",
        ),
    ],
)
def test_urls_other_than_the_datafiles_place_are_refused_even_when_nothing_moves(
    changes: dict[str, str], expected: str
) -> None:
    status, reported = _status(**changes)
    [problem] = _problems(status, reported, written=False)
    assert expected in problem and "its place gives" in problem


@pytest.mark.parametrize("location", [None, "", "/etc/passwd", "a/../b/c/d/e/f"])
def test_a_datafile_without_a_location_datastore_writes_is_refused(location: str | None) -> None:
    status, reported = _status()
    [problem] = _problems(status, reported, location=location)
    assert "ICAT holds no location Datastore writes" in problem


def test_check_status_raises_a_permanent_error_naming_the_job() -> None:
    status, reported = _status(job_id="forged")
    with pytest.raises(UntrustedMessageError, match="status of job forged refused") as caught:
        check_status(status, [reported], {1: PLACE}, {1: 7}, {7: JOB}, [1], roots=ARCHIVE_ROOTS)
    assert isinstance(caught.value, PermanentError)
