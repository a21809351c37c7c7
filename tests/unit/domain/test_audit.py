"""The audit's comparison of ICAT's archived datafiles with the tape listing, its sample and
its fixity verdicts (``domain.audit``)."""

from __future__ import annotations

import random

import pytest

from datastore_common.domain.archival import ARCHIVAL_FAILURE
from datastore_common.domain.audit import (
    FIXITY_PREFIX,
    ArchivedFile,
    AuditReport,
    BadLocation,
    MissingOnTape,
    SizeMismatch,
    choose_sample,
    compare,
    fixity_of,
    fixity_records,
    summary,
)

LOC = "inst/cycle/inv-1/scan/ds{}/f{}.nxs"


def loc(dataset: int, name: int) -> str:
    return LOC.format(dataset, name)


def archived(
    datafile_id: int,
    location: str | None,
    size: int | None = 10,
    checksum: str | None = "adler32:0000000a",
    failure: str | None = None,
) -> ArchivedFile:
    return ArchivedFile(datafile_id, location, size, checksum, failure)


@pytest.mark.parametrize(
    ("icat", "tape", "unknown", "missing", "mismatched", "bad", "present"),
    [
        pytest.param([], {}, (), (), (), (), (), id="both empty"),
        pytest.param([archived(1, loc(1, 1))], {loc(1, 1): 10}, (), (), (), (), (1,), id="agree"),
        pytest.param(
            [],
            {loc(1, 1): 10, loc(1, 2): 3},
            (loc(1, 1), loc(1, 2)),
            (),
            (),
            (),
            (),
            id="on tape, unknown to ICAT",
        ),
        pytest.param(
            [archived(1, loc(1, 1)), archived(2, loc(1, 2))],
            {loc(1, 1): 10},
            (),
            (MissingOnTape(2, loc(1, 2)),),
            (),
            (),
            (1,),
            id="missing on tape",
        ),
        pytest.param(
            [archived(1, loc(1, 1), size=10)],
            {loc(1, 1): 11},
            (),
            (),
            (SizeMismatch(1, loc(1, 1), 10, 11),),
            (),
            (),
            id="size differs",
        ),
        pytest.param(
            [archived(1, loc(1, 1), size=None)],
            {loc(1, 1): 11},
            (),
            (),
            (),
            (),
            (1,),
            id="no size in ICAT: present, nothing to compare",
        ),
        pytest.param(
            [archived(1, "../etc/passwd"), archived(2, None)],
            {"etc/passwd": 1},
            ("etc/passwd",),
            (),
            (),
            (
                BadLocation(2, None, "no location"),
                BadLocation(1, "../etc/passwd", "it has a '.' or '..' component"),
            ),
            (),
            id="bad locations are named, never looked for",
        ),
        pytest.param(
            [archived(3, loc(2, 1)), archived(1, loc(1, 1), size=5), archived(2, loc(1, 9))],
            {loc(1, 1): 6, loc(2, 1): 10, loc(3, 3): 1},
            (loc(3, 3),),
            (MissingOnTape(2, loc(1, 9)),),
            (SizeMismatch(1, loc(1, 1), 5, 6),),
            (),
            (3,),
            id="everything at once, in location order",
        ),
    ],
)
def test_compare(
    icat: list[ArchivedFile],
    tape: dict[str, int],
    unknown: tuple[str, ...],
    missing: tuple[MissingOnTape, ...],
    mismatched: tuple[SizeMismatch, ...],
    bad: tuple[BadLocation, ...],
    present: tuple[int, ...],
) -> None:
    result = compare(icat, tape)
    assert result.unknown_to_icat == unknown
    assert result.missing_on_tape == missing
    assert result.size_mismatch == mismatched
    assert result.bad_location == bad
    assert tuple(f.datafile_id for f in result.present) == present
    assert (result.archived, result.on_tape) == (len(icat), len(tape))


class TestSample:
    def test_takes_at_most_the_size_at_random_among_files_with_a_real_checksum(self) -> None:
        candidates = [archived(i, loc(1, i)) for i in range(1, 51)]
        candidates.append(archived(99, loc(9, 9), checksum="string"))  # the seed's placeholder
        chosen = {
            f.datafile_id
            for seed in range(20)
            for f in choose_sample(candidates, 5, random.Random(seed))
        }
        assert 99 not in chosen
        assert len(chosen) > 5  # different runs look at different files
        assert len(choose_sample(candidates, 5, random.Random(1))) == 5

    def test_all_when_fewer_than_the_size_and_none_when_zero(self) -> None:
        candidates = [archived(i, loc(1, i)) for i in range(1, 4)]
        assert len(choose_sample(candidates, 10, random.Random(0))) == 3
        assert choose_sample(candidates, 0, random.Random(0)) == []

    def test_files_found_corrupt_before_are_always_checked_again(self) -> None:
        suspect = archived(7, loc(1, 7), failure=FIXITY_PREFIX + "bad")
        candidates = [archived(i, loc(2, i)) for i in range(1, 100)] + [suspect]
        for seed in range(10):
            assert suspect in choose_sample(candidates, 2, random.Random(seed))


class TestFixity:
    @pytest.mark.parametrize(
        ("found", "outcome"),
        [
            ("adler32:0000000a", "ok"),
            ("ADLER32:0000000A", "ok"),
            ("adler32:0000000b", "mismatch"),
            (None, "missing"),
        ],
    )
    def test_verdict(self, found: str | None, outcome: str) -> None:
        assert fixity_of(archived(1, loc(1, 1)), found).outcome == outcome

    def test_a_mismatch_is_recorded_as_a_fixity_failure_naming_both_checksums(self) -> None:
        check = fixity_of(archived(1, loc(1, 1)), "adler32:deadbeef")
        [(datafile_id, values)] = fixity_records([check]).items()
        text = values[ARCHIVAL_FAILURE]
        assert datafile_id == 1
        assert text is not None and text.startswith("fixity error: ")
        assert "adler32:deadbeef" in text and "adler32:0000000a" in text

    def test_the_same_failure_is_not_written_twice(self) -> None:
        first = fixity_records([fixity_of(archived(1, loc(1, 1)), "adler32:deadbeef")])
        text = first[1][ARCHIVAL_FAILURE]
        again = fixity_of(archived(1, loc(1, 1), failure=text), "adler32:deadbeef")
        assert fixity_records([again]) == {}

    def test_a_file_verified_again_has_its_fixity_failure_cleared_and_no_other(self) -> None:
        repaired = fixity_of(
            archived(1, loc(1, 1), failure=FIXITY_PREFIX + "x"), "adler32:0000000a"
        )
        other = fixity_of(archived(2, loc(1, 2), failure="system error: FTS"), "adler32:0000000a")
        fine = fixity_of(archived(3, loc(1, 3)), "adler32:0000000a")
        assert fixity_records([repaired, other, fine]) == {1: {ARCHIVAL_FAILURE: None}}

    def test_a_file_gone_meanwhile_is_not_a_fixity_failure(self) -> None:
        assert fixity_records([fixity_of(archived(1, loc(1, 1)), None)]) == {}


def report_of(icat: list[ArchivedFile], tape: dict[str, int], found: str | None) -> AuditReport:
    comparison = compare(icat, tape)
    checks = tuple(fixity_of(f, found) for f in comparison.present)
    return AuditReport("t0", "t1", "root://tape//archive/", "", comparison, checks)


class TestReport:
    def test_a_clean_run(self) -> None:
        report = report_of([archived(1, loc(1, 1))], {loc(1, 1): 10}, "adler32:0000000a")
        assert report.clean
        assert report.counts["fixity_checked"] == 1
        assert "agree" in summary(report)

    def test_disagreements_are_counted_listed_and_summarised(self) -> None:
        report = report_of(
            [archived(1, loc(1, 1)), archived(2, loc(1, 2))],
            {loc(1, 1): 10, loc(5, 5): 1},
            "adler32:ffffffff",
        )
        assert not report.clean
        counts = report.counts
        assert (counts["unknown_to_icat"], counts["missing_on_tape"]) == (1, 1)
        assert counts["fixity_failed"] == 1
        data = report.as_json()
        assert data["unknown_to_icat"] == [loc(5, 5)]
        assert data["missing_on_tape"] == [{"datafile_id": 2, "location": loc(1, 2)}]
        assert data["fixity"][0]["outcome"] == "mismatch"  # type: ignore[index]
        text = summary(report)
        assert "DISAGREEMENTS" in text and loc(5, 5) in text and "datafile 2" in text

    def test_the_summary_names_only_the_first_items(self) -> None:
        tape = {loc(1, i): 1 for i in range(30)}
        text = summary(report_of([], tape, None))
        assert "and 10 more" in text
