"""domain.plan: packing datasets into jobs, the archive and restore plans, real checksums."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.domain.paths import archive_location, archive_urls
from datastore_common.domain.plan import (
    RestoreItem,
    is_real_checksum,
    pack_groups,
    plan_restore,
)
from datastore_common.errors import InvalidRequestError, UntrustedLocationError
from datastore_common.messages import DatafileKey
from datastore_common.testing.fake_selections import place_of
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


def item(datafile_id: int, dataset_id: int, location: str, **values: Any) -> RestoreItem:
    """A datafile ICAT holds at ``location``, where its place in the hierarchy puts it."""
    return RestoreItem(datafile_id, dataset_id, location, place=place_of(location), **values)


X = "instr/2024/ABC-1/scan/x"
Y = "instr/2024/ABC-1/scan/y"


def test_plan_restore_brings_each_file_from_tape_to_the_user_cache_by_dataset() -> None:
    items = [
        item(3, 2, f"{X}/b", checksum="string"),
        item(1, 1, f"{Y}/z", filesize=5),
        item(2, 2, f"{X}/a", checksum="adler32:0000ABCD"),
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
        f"root://tape:1094//archive/{X}/a",
        f"root://udc:1094//{X}/a",
    )
    assert (first.dataset_id, first.checksum) == (2, "adler32:0000abcd")
    assert jobs[1].transfers[1].checksum is None
    assert jobs[0].transfers[0].filesize == 5


def test_a_restored_file_travels_named_by_its_icat_keys_read_from_its_place() -> None:
    items = [item(1, 1, "instr/2024/ABC123-1/raw/scan/a.nxs"), item(2, 2, f"{X}/b.nxs")]
    [job] = plan_restore(
        "req-9",
        items,
        tape_archive=TAPE,
        tape_root_dir=TAPE_ROOT,
        user_data_cache=USER_CACHE,
        vo=VO,
        max_files_per_job=10,
    )
    assert [t.datafile for t in job.transfers] == [
        DatafileKey(investigation="ABC123", visit_id="1", dataset="scan", datafile="a.nxs"),
        DatafileKey(investigation="ABC", visit_id="1", dataset="x", datafile="b.nxs"),
    ]


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


# ---------------------------------------------------------------- restore trusts what we wrote


def restore_plan(*items: RestoreItem) -> list[Any]:
    return plan_restore(
        "req-r",
        list(items),
        tape_archive=TAPE,
        tape_root_dir=TAPE_ROOT,
        user_data_cache=USER_CACHE,
        vo=VO,
        max_files_per_job=10,
    )


def forged(datafile_id: int, location: str, *, belongs: str = f"{X}/a") -> RestoreItem:
    """A datafile whose place in ICAT is ``belongs`` but whose stored location says otherwise."""
    return RestoreItem(datafile_id, 1, location, place=place_of(belongs))


@pytest.mark.parametrize(
    ("location", "why"),
    [
        pytest.param("../../etc/passwd", "'.' or '..' component", id="dotdot"),
        pytest.param(f"{X}/../../../../y/a", "'.' or '..' component", id="dotdot-inside"),
        pytest.param(f"/{X}/a", "absolute path", id="absolute"),
        pytest.param(f"{X}/a\x00", "control or invisible character U+0000", id="nul"),
        pytest.param(f"{X}/a\n", "control or invisible character U+000A", id="newline"),
        pytest.param(f"{X}/\u202ea", "U+202E", id="direction-override"),
        pytest.param("root://other-host//etc/passwd", "URL", id="url"),
        pytest.param(f"{X}\\a", "backslash", id="backslash"),
        pytest.param(f"{X}//a", "empty path component", id="double-slash"),
        pytest.param(f"{X}/a/", "empty path component", id="trailing-slash"),
        pytest.param(f"{X}/a b", "is not a safe name", id="space"),
        pytest.param("", "no location", id="empty"),
        pytest.param("ABC-1/scan/x/a", "4 components, not the layout", id="too-short"),
    ],
)
def test_an_unsafe_location_is_a_422_with_a_reason_never_a_500(location: str, why: str) -> None:
    with pytest.raises(UntrustedLocationError) as refused:
        restore_plan(item(1, 1, f"{X}/ok"), forged(7, location))
    assert isinstance(refused.value, InvalidRequestError)  # the gateway's 422
    assert list(refused.value.reasons) == [7]
    assert why in refused.value.reasons[7]
    assert "7 (" in str(refused.value)


def test_a_location_elsewhere_than_its_hierarchy_puts_it_is_refused() -> None:
    # Safe, but another investigation's file: ICAT's Datafile.location is not trusted alone.
    elsewhere = "instr/2024/SECRET-9/scan/x/a"
    with pytest.raises(UntrustedLocationError) as refused:
        restore_plan(forged(8, elsewhere, belongs=f"{X}/a"))
    reason = refused.value.reasons[8]
    assert f"location {elsewhere!r} is not where it belongs" in reason
    assert f"Datastore archives this datafile at {X}/a" in reason


def test_every_refused_datafile_is_named_and_nothing_is_planned() -> None:
    with pytest.raises(UntrustedLocationError) as refused:
        restore_plan(forged(1, "../a"), item(2, 1, f"{X}/b"), forged(3, "/x"))
    assert sorted(refused.value.reasons) == [1, 3]
    assert str(refused.value).startswith("2 selected datafile(s) cannot be restored")


def test_the_location_is_rebuilt_from_the_hierarchy_with_any_linked_instrument_and_cycle() -> None:
    base = place_of(f"{X}/a")
    place = dataclasses.replace(base, instruments=("instr", "other"), facility_cycles=("2024",))
    on_other = "other/2024/ABC-1/scan/x/a"
    [job] = restore_plan(RestoreItem(4, 1, on_other, place=place))
    assert job.transfers[0].source == f"{TAPE}{TAPE_ROOT}{on_other}"


def test_an_investigation_without_instrument_is_refused_saying_so() -> None:
    place = dataclasses.replace(place_of(f"{X}/a"), instruments=())
    with pytest.raises(UntrustedLocationError, match="no instrument of investigation ABC-1"):
        restore_plan(RestoreItem(5, 1, f"{X}/a", place=place))


def test_unsafe_names_in_icat_give_no_location_to_trust() -> None:
    # A dataset someone named "../x" in ICAT: no path of ours was ever built from it.
    place = dataclasses.replace(place_of(f"{X}/a"), dataset="../x")
    with pytest.raises(UntrustedLocationError, match="not safe path components"):
        restore_plan(RestoreItem(6, 1, f"{X}/a", place=place))


def test_files_archived_under_a_visit_id_with_a_dash_stay_restorable() -> None:
    # Archived before the visitId rule: ('ABC', '1-2') wrote ABC-1-2, and that is its place.
    location = "instr/2024/ABC-1-2/scan/x/a"
    place = dataclasses.replace(place_of(location), investigation="ABC", visit_id="1-2")
    [job] = restore_plan(RestoreItem(9, 1, location, place=place))
    assert job.transfers[0].destination == f"{USER_CACHE}{location}"
