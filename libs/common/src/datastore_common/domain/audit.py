"""The audit: does the tape hold what ICAT says is archived, and are its bytes still right?

Pure: from ICAT's archived datafiles (an "Archival state" FINISHED the functional account
wrote) and a listing of the tape namespace (relative path -> size), what disagrees:

- ``unknown_to_icat``: a file on tape no archived datafile names (an orphan: an archive that
  never got registered, or a datafile deleted from ICAT);
- ``missing_on_tape``: a datafile ICAT calls FINISHED that the tape lacks;
- ``size_mismatch``: one the tape holds with another size than ICAT's ``fileSize``;
- ``bad_location``: one whose stored location is not a safe path in the layout (never
  written by Datastore; it cannot be looked for on tape).

Then a random sample of the files present with the right size has its adler32 recomputed by
the tape server and compared with ICAT's checksum (``fixity_of``): a mismatch is recorded on
the datafile as an "Archival failure" of class ``fixity`` (its "Archival state" is left as
it is: the file was archived; its copy is now bad), and a later check that passes clears it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Final, Literal

from datastore_common.domain.archival import ARCHIVAL_FAILURE, CatalogueDatafile, failure_text
from datastore_common.domain.paths import location_problem
from datastore_common.domain.plan import is_real_checksum

#: The failure class of an "Archival failure" the audit writes: ``fixity error: <reason>``.
FIXITY: Final = "fixity"
FIXITY_PREFIX: Final = f"{FIXITY} error: "


@dataclass(frozen=True)
class ArchivedFile:
    """A datafile ICAT calls archived (FINISHED, written by the functional account)."""

    datafile_id: int
    location: str | None
    file_size: int | None
    checksum: str | None
    #: Its "Archival failure", if any (a fixity failure an earlier audit wrote).
    failure: str | None = None


def archived_file(datafile: CatalogueDatafile) -> ArchivedFile:
    return ArchivedFile(
        datafile.datafile_id,
        datafile.location,
        datafile.file_size,
        datafile.checksum,
        datafile.archival.get(ARCHIVAL_FAILURE),
    )


@dataclass(frozen=True)
class MissingOnTape:
    datafile_id: int
    location: str


@dataclass(frozen=True)
class SizeMismatch:
    datafile_id: int
    location: str
    icat_size: int
    tape_size: int


@dataclass(frozen=True)
class BadLocation:
    datafile_id: int
    location: str | None
    problem: str


@dataclass(frozen=True)
class Comparison:
    """What the catalogue and the tape listing say of each other; ``present``: the archived
    files the tape holds with ICAT's size (or ICAT records none): the fixity candidates."""

    archived: int
    on_tape: int
    unknown_to_icat: tuple[str, ...]
    missing_on_tape: tuple[MissingOnTape, ...]
    size_mismatch: tuple[SizeMismatch, ...]
    bad_location: tuple[BadLocation, ...]
    present: tuple[ArchivedFile, ...] = field(repr=False)


def compare(archived: Sequence[ArchivedFile], tape: Mapping[str, int]) -> Comparison:
    """Compare ICAT's archived files with the tape listing (location -> size, relative to the
    audited root). Two datafiles naming one location both count as present (ICAT's keys
    make that impossible for files Datastore wrote)."""
    missing: list[MissingOnTape] = []
    mismatched: list[SizeMismatch] = []
    bad: list[BadLocation] = []
    present: list[ArchivedFile] = []
    known: set[str] = set()
    for datafile in sorted(archived, key=lambda f: (f.location or "", f.datafile_id)):
        problem = location_problem(datafile.location)
        if problem is not None:
            bad.append(BadLocation(datafile.datafile_id, datafile.location, problem))
            continue
        assert datafile.location is not None
        known.add(datafile.location)
        size = tape.get(datafile.location)
        if size is None:
            missing.append(MissingOnTape(datafile.datafile_id, datafile.location))
        elif datafile.file_size is not None and datafile.file_size != size:
            mismatched.append(
                SizeMismatch(datafile.datafile_id, datafile.location, datafile.file_size, size)
            )
        else:
            present.append(datafile)
    return Comparison(
        archived=len(archived),
        on_tape=len(tape),
        unknown_to_icat=tuple(sorted(set(tape) - known)),
        missing_on_tape=tuple(missing),
        size_mismatch=tuple(mismatched),
        bad_location=tuple(bad),
        present=tuple(present),
    )


def choose_sample(
    candidates: Sequence[ArchivedFile], size: int, rng: random.Random
) -> list[ArchivedFile]:
    """Up to ``size`` of the candidates, at random, that have a real checksum in ICAT to
    compare with (those without one cannot be verified), in location order. Files an earlier
    audit found corrupt are always taken (so a repaired one is cleared)."""
    checkable = [f for f in candidates if is_real_checksum(f.checksum)]
    suspect = [f for f in checkable if (f.failure or "").startswith(FIXITY_PREFIX)]
    others = [f for f in checkable if not (f.failure or "").startswith(FIXITY_PREFIX)]
    room = max(0, size - len(suspect))
    chosen = suspect + rng.sample(others, min(room, len(others)))
    return sorted(chosen, key=lambda f: (f.location or "", f.datafile_id))


FixityOutcome = Literal["ok", "mismatch", "missing"]


@dataclass(frozen=True)
class FixityCheck:
    datafile_id: int
    location: str
    outcome: FixityOutcome
    expected: str
    found: str | None
    #: The "Archival failure" the datafile had before this check.
    failure_before: str | None = None

    @property
    def reason(self) -> str:
        # Recorded on the datafile itself: no need to repeat its location (and the 255
        # characters of "Archival failure" keep both checksums whatever its length).
        if self.outcome == "missing":
            return "the tape copy vanished during the audit"
        return (
            f"the tape copy has {self.found}, ICAT records {self.expected}"
            if self.outcome == "mismatch"
            else "verified"
        )


def fixity_of(datafile: ArchivedFile, tape_checksum: str | None) -> FixityCheck:
    """The verdict on one sampled file from the checksum the tape server computed now
    (None: the file is gone)."""
    assert datafile.location is not None and datafile.checksum is not None
    expected = datafile.checksum.lower()
    found = None if tape_checksum is None else tape_checksum.lower()
    outcome: FixityOutcome = (
        "missing" if found is None else "ok" if found == expected else "mismatch"
    )
    return FixityCheck(
        datafile.datafile_id, datafile.location, outcome, expected, found, datafile.failure
    )


def fixity_records(checks: Sequence[FixityCheck]) -> dict[int, dict[str, str | None]]:
    """The "Archival failure" values to write: a mismatch records ``fixity error: ...``; a
    file verified again that carried a fixity failure has it cleared. A file missing is
    reported by the next audit's comparison (not a fixity failure: its bytes are gone)."""
    values: dict[int, dict[str, str | None]] = {}
    for check in checks:
        had_fixity = (check.failure_before or "").startswith(FIXITY_PREFIX)
        if check.outcome == "mismatch":
            text = failure_text(FIXITY, check.reason)
            if check.failure_before != text:
                values[check.datafile_id] = {ARCHIVAL_FAILURE: text}
        elif check.outcome == "ok" and had_fixity:
            values[check.datafile_id] = {ARCHIVAL_FAILURE: None}
    return values


@dataclass(frozen=True)
class AuditReport:
    """One audit run: where, what was compared, what disagrees, what was re-verified."""

    started: str  # ISO time
    finished: str
    tape_root: str
    under: str
    comparison: Comparison
    fixity: tuple[FixityCheck, ...]

    @property
    def counts(self) -> dict[str, int]:
        """The figures exported as metrics, by kind."""
        return {
            "archived_in_icat": self.comparison.archived,
            "files_on_tape": self.comparison.on_tape,
            "unknown_to_icat": len(self.comparison.unknown_to_icat),
            "missing_on_tape": len(self.comparison.missing_on_tape),
            "size_mismatch": len(self.comparison.size_mismatch),
            "bad_location": len(self.comparison.bad_location),
            "fixity_checked": len(self.fixity),
            "fixity_failed": sum(1 for c in self.fixity if c.outcome == "mismatch"),
            "fixity_vanished": sum(1 for c in self.fixity if c.outcome == "missing"),
        }

    @property
    def clean(self) -> bool:
        """Nothing disagrees (what the command's exit code says)."""
        counts = self.counts
        return not any(
            counts[kind]
            for kind in (
                "unknown_to_icat",
                "missing_on_tape",
                "size_mismatch",
                "bad_location",
                "fixity_failed",
                "fixity_vanished",
            )
        )

    def as_json(self) -> dict[str, object]:
        comparison = self.comparison
        return {
            "started": self.started,
            "finished": self.finished,
            "tape_root": self.tape_root,
            "under": self.under,
            "clean": self.clean,
            "counts": self.counts,
            "unknown_to_icat": list(comparison.unknown_to_icat),
            "missing_on_tape": [asdict(m) for m in comparison.missing_on_tape],
            "size_mismatch": [asdict(m) for m in comparison.size_mismatch],
            "bad_location": [asdict(b) for b in comparison.bad_location],
            "fixity": [
                {
                    "datafile_id": c.datafile_id,
                    "location": c.location,
                    "outcome": c.outcome,
                    "expected": c.expected,
                    "found": c.found,
                }
                for c in self.fixity
            ],
        }


#: At most this many items of each kind are named in the summary (the JSON has them all).
SUMMARY_ITEMS = 20


def summary(report: AuditReport) -> str:
    """The report for a person: counts first, then the first items of each disagreement."""
    counts = report.counts
    where = report.tape_root + (report.under or "")
    lines = [
        f"audit of {where} ({report.started} - {report.finished}): "
        + ("catalogue and tape agree" if report.clean else "DISAGREEMENTS FOUND"),
        f"  archived in ICAT: {counts['archived_in_icat']}, files on tape: "
        f"{counts['files_on_tape']}",
        f"  unknown to ICAT: {counts['unknown_to_icat']}, missing on tape: "
        f"{counts['missing_on_tape']}, size differs: {counts['size_mismatch']}, bad location: "
        f"{counts['bad_location']}",
        f"  fixity: {counts['fixity_checked']} checked, {counts['fixity_failed']} corrupt, "
        f"{counts['fixity_vanished']} vanished",
    ]
    comparison = report.comparison
    sections: list[tuple[str, list[str]]] = [
        ("on tape, unknown to ICAT", list(comparison.unknown_to_icat)),
        (
            "FINISHED in ICAT, missing on tape",
            [f"datafile {m.datafile_id}: {m.location}" for m in comparison.missing_on_tape],
        ),
        (
            "size differs",
            [
                f"datafile {m.datafile_id}: {m.location} ICAT {m.icat_size} B, tape {m.tape_size} B"
                for m in comparison.size_mismatch
            ],
        ),
        (
            "bad location in ICAT",
            [
                f"datafile {b.datafile_id}: {b.location!r}: {b.problem}"
                for b in comparison.bad_location
            ],
        ),
        (
            "fixity failed",
            [
                f"datafile {c.datafile_id}: {c.location}: {c.reason}"
                for c in report.fixity
                if c.outcome != "ok"
            ],
        ),
    ]
    for title, items in sections:
        if not items:
            continue
        lines.append(f"{title}:")
        lines += [f"    {item}" for item in items[:SUMMARY_ITEMS]]
        if len(items) > SUMMARY_ITEMS:
            lines.append(f"    ... and {len(items) - SUMMARY_ITEMS} more (see the JSON report)")
    return "\n".join(lines)
