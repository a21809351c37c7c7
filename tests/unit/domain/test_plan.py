"""domain.plan: packing datasets into jobs, the archive and restore plans, real checksums."""

from __future__ import annotations

import pytest

from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.domain.paths import archive_location, archive_urls
from datastore_common.domain.plan import (
    RestoreItem,
    is_real_checksum,
    pack_groups,
    plan_restore,
)
from datastore_common.messages import DatafileKey
from tests.unit.domain.specs import IDC, TAPE, TAPE_ROOT, VO, investigation, plan

USER_CACHE = "root://udc:1094//"


@pytest.mark.parametrize(
    ("groups", "max_per_job", "expected"),
    [
        pytest.param([], 3, [], id="nothing"),
        pytest.param(["ab", "c"], 3, ["abc"], id="groups-that-fit-share-a-job"),
        pytest.param(["ab", "cd"], 3, ["ab", "cd"], id="a-group-is-not-split-to-fill-a-job"),
        pytest.param(["abc", "d"], 3, ["abc", "d"], id="a-full-job-is-closed"),
        pytest.param(["abcdefg"], 3, ["abc", "def", "g"], id="a-large-group-is-cut"),
        pytest.param(["abcd", "e"], 3, ["abc", "de"], id="its-remainder-packs-like-a-group"),
        pytest.param(["a", "bcd"], 3, ["a", "bcd"], id="in-order-first-fit"),
        pytest.param(["a", "b", "c"], 1, ["a", "b", "c"], id="one-per-job"),
    ],
)
def test_pack_groups(groups: list[str], max_per_job: int, expected: list[str]) -> None:
    packed = pack_groups([list(g) for g in groups], max_per_job)
    assert ["".join(job) for job in packed] == expected


@pytest.mark.parametrize("max_per_job", [0, -1])
def test_pack_groups_needs_room_for_a_file(max_per_job: int) -> None:
    with pytest.raises(ValueError, match="max_per_job"):
        pack_groups([["a"]], max_per_job)


@pytest.mark.parametrize(
    ("datasets", "max_per_job", "jobs"),
    [
        pytest.param([["a", "b"], ["c"]], 3, [["0/a", "0/b", "1/c"]], id="datasets-share-a-job"),
        pytest.param([["a", "b"], ["c", "d"]], 3, [["0/a", "0/b"], ["1/c", "1/d"]],
                     id="a-dataset-stays-together"),
        pytest.param([["a", "b", "c", "d"]], 3, [["0/a", "0/b", "0/c"], ["0/d"]],
                     id="a-dataset-larger-than-a-job-is-split"),
    ],
)  # fmt: skip
def test_plan_archive_packs_datasets_into_jobs(
    datasets: list[list[str]], max_per_job: int, jobs: list[list[str]]
) -> None:
    planned = plan([investigation(*datasets)], "req-7", per_job=max_per_job)
    assert [
        [f"{t.datafile.dataset[-1]}/{t.datafile.datafile}" for t in job.transfers if t.datafile]
        for job in planned
    ] == jobs
    assert [(job.kind, job.sid, job.job_id) for job in planned] == [
        ("archive", job_sid("req-7", i), fts_job_id(VO, job_sid("req-7", i)))
        for i in range(len(jobs))
    ]


def test_plan_archive_moves_each_file_from_the_cache_to_its_place_on_tape() -> None:
    inv = investigation(["f.nxs"])
    [job] = plan([inv])
    [transfer] = job.transfers
    location = archive_location(inv, inv.datasets[0], inv.datasets[0].datafiles[0])
    assert location == "instrument/20XX/ABC-1/scan/scan_0/f.nxs"
    assert (transfer.source, transfer.destination) == archive_urls(
        location, instrument_data_cache=IDC, tape_archive=TAPE, tape_root_dir=TAPE_ROOT
    )
    assert transfer.datafile is not None
    assert transfer.datafile.model_dump() == {
        "investigation": "ABC",
        "visit_id": "1",
        "dataset": "scan_0",
        "datafile": "f.nxs",
    }
    assert (transfer.datafile_id, transfer.dataset_id) == (None, None)  # not in ICAT yet


@pytest.mark.parametrize(
    ("size", "checksum", "planned"),
    [
        pytest.param(12, "adler32:0000abcd", (12, "adler32:0000abcd"), id="real-values-kept"),
        pytest.param(0, "string", (None, None), id="seed-placeholders-dropped"),
        pytest.param(None, "ADLER32:0000ABCD", (None, "adler32:0000abcd"),
                     id="checksum-normalised"),
    ],
)  # fmt: skip
def test_plan_archive_carries_only_real_sizes_and_checksums(
    size: int | None, checksum: str | None, planned: tuple[int | None, str | None]
) -> None:
    [job] = plan([investigation(["f.nxs"], size=size, checksum=checksum)])
    [transfer] = job.transfers
    assert (transfer.filesize, transfer.checksum) == planned


def test_plan_restore_brings_each_file_from_tape_to_the_user_cache_by_dataset() -> None:
    items = [
        RestoreItem(datafile_id=3, dataset_id=2, location="x/b", checksum="string"),
        RestoreItem(datafile_id=1, dataset_id=1, location="y/z", filesize=5),
        RestoreItem(datafile_id=2, dataset_id=2, location="x/a", checksum="adler32:0000ABCD"),
    ]
    jobs = plan_restore(
        "req-9",
        items,
        tape_archive=TAPE,
        tape_root_dir=TAPE_ROOT,
        user_data_cache=USER_CACHE,
        vo=VO,
        max_files_per_job=2,
    )
    assert [[t.datafile_id for t in job.transfers] for job in jobs] == [[1], [2, 3]]
    assert {job.kind for job in jobs} == {"restore"}
    assert [job.sid for job in jobs] == [job_sid("req-9", 0), job_sid("req-9", 1)]
    first = jobs[1].transfers[0]
    assert (first.source, first.destination) == (
        "root://tape:1094//archive/x/a",
        "root://udc:1094//x/a",
    )
    assert (first.dataset_id, first.checksum) == (2, "adler32:0000abcd")
    assert jobs[1].transfers[1].checksum is None
    assert jobs[0].transfers[0].filesize == 5


def test_a_restored_file_travels_named_by_its_icat_keys_when_icat_gave_them() -> None:
    key = DatafileKey(investigation="ABC123", visit_id="1", dataset="scan", datafile="a.nxs")
    items = [RestoreItem(1, 1, "x/a.nxs", key=key), RestoreItem(2, 1, "x/b.nxs")]
    [job] = plan_restore(
        "req-9",
        items,
        tape_archive=TAPE,
        tape_root_dir=TAPE_ROOT,
        user_data_cache=USER_CACHE,
        vo=VO,
        max_files_per_job=10,
    )
    assert [t.datafile for t in job.transfers] == [key, None]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("adler32:0000abcd", True, id="adler32"),
        pytest.param("ADLER32:0000ABCD", True, id="any-case"),
        pytest.param(None, False, id="none"),
        pytest.param("string", False, id="the-seeds-placeholder"),
        pytest.param("md5:0000abcd", False, id="another-algorithm"),
        pytest.param("adler32:abcd", False, id="too-short"),
        pytest.param("adler32:0000abcdef", False, id="too-long"),
        pytest.param("adler32:0000abcg", False, id="not-hex"),
    ],
)
def test_is_real_checksum(value: str | None, expected: bool) -> None:
    assert is_real_checksum(value) is expected
