"""The audit run (``ops.audit``) and ``datastore-ops audit`` on the in-memory ports: a tape
file removed, one corrupted, one unknown to ICAT; what is reported, recorded and exported."""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from pathlib import Path

import pytest

from datastore_common.domain.archival import ARCHIVAL_FAILURE, ARCHIVAL_STATE
from datastore_common.domain.paths import archive_location, storage_url
from datastore_common.errors import ConfigurationError, PeerUnavailableError
from datastore_common.messages import InvestigationSpec
from datastore_common.metrics import AUDIT_FILES, AUDIT_LAST_RUN
from datastore_common.ops.audit import audit_loop, run_audit
from datastore_common.ops.cli import EXIT_DISAGREEMENTS, run_cli
from datastore_common.ports import NewDatafile, StoredFile
from datastore_common.testing.fake_catalogue import FakeCatalogue
from datastore_common.testing.fakes import FakeStorage
from tests.support.factories import seed_investigation

TAPE = "root://tape.example:1094//"
ROOT_DIR = "archive/"


def content_of(location: str) -> bytes:
    return location.encode() * 3


def stored(content: bytes) -> StoredFile:
    return StoredFile(size=len(content), checksum=f"adler32:{zlib.adler32(content):08x}")


def tape_url(location: str) -> str:
    return storage_url(TAPE, location, prefix=ROOT_DIR)


async def archive(
    catalogue: FakeCatalogue, tape: FakeStorage, spec: InvestigationSpec
) -> dict[str, int]:
    """Register every datafile of ``spec`` as archived (FINISHED), with its bytes on tape;
    location -> datafile id."""
    investigation_id = await catalogue.ensure_investigation(spec)
    datasets = await catalogue.ensure_datasets(investigation_id, spec.datasets)
    ids: dict[str, int] = {}
    for dataset in spec.datasets:
        files = []
        for datafile in dataset.datafiles:
            location = archive_location(spec, dataset, datafile)
            described = stored(content_of(location))
            tape.files[tape_url(location)] = described
            files.append(NewDatafile(datafile, location, described.size, described.checksum))
        records = await catalogue.ensure_datafiles(datasets[dataset.name].dataset_id, files)
        ids.update({r.location or "": r.datafile_id for r in records.values()})
    await catalogue.set_archival(
        "Datafile", {i: {ARCHIVAL_STATE: "FINISHED"} for i in ids.values()}
    )
    return ids


class Archived:
    def __init__(self) -> None:
        self.catalogue = FakeCatalogue()
        self.tape = FakeStorage()

    async def setup(self, files: int = 6) -> list[str]:
        self.spec = seed_investigation(files=files)
        self.ids = await archive(self.catalogue, self.tape, self.spec)
        return sorted(self.ids)

    async def audit(self, **options: object) -> object:
        return await run_audit(
            catalogue=self.catalogue,
            tape=self.tape,
            tape_archive=TAPE,
            tape_root_dir=ROOT_DIR,
            rng=random.Random(4),
            **options,  # type: ignore[arg-type]
        )


@pytest.fixture
async def archived() -> Archived:
    return Archived()


async def test_a_faithful_tape_is_clean_and_every_sampled_file_verified(archived: Archived) -> None:
    await archived.setup()
    report = await run_audit(
        catalogue=archived.catalogue, tape=archived.tape, tape_archive=TAPE, tape_root_dir=ROOT_DIR
    )
    assert report.clean
    assert report.counts["archived_in_icat"] == report.counts["files_on_tape"] == 6
    assert report.counts["fixity_checked"] == 6  # the default sample covers them all
    assert AUDIT_FILES.labels(kind="missing_on_tape")._value.get() == 0


async def test_removed_corrupted_and_unknown_files_are_found_and_the_corruption_recorded(
    archived: Archived,
) -> None:
    removed, corrupted, *_ = await archived.setup()
    del archived.tape.files[tape_url(removed)]
    bad = b"X" * len(content_of(corrupted))  # same size: only the checksum can tell
    archived.tape.files[tape_url(corrupted)] = stored(bad)
    orphan = "instrument/20XX/ZZZ-1/scan/lost/orphan.nxs"
    archived.tape.files[tape_url(orphan)] = stored(b"orphan")
    writes_before = archived.catalogue.writes

    report = await run_audit(
        catalogue=archived.catalogue,
        tape=archived.tape,
        tape_archive=TAPE,
        tape_root_dir=ROOT_DIR,
        sample_size=100,
    )

    assert not report.clean
    assert report.comparison.unknown_to_icat == (orphan,)
    assert [m.location for m in report.comparison.missing_on_tape] == [removed]
    [failed] = [c for c in report.fixity if c.outcome != "ok"]
    assert (failed.location, failed.outcome) == (corrupted, "mismatch")
    failure = archived.catalogue.archival("Datafile", archived.ids[corrupted])
    assert failure[ARCHIVAL_FAILURE].startswith("fixity error: ")
    assert failure[ARCHIVAL_STATE] == "FINISHED"  # archived it was; its copy is bad now
    assert archived.catalogue.writes == writes_before + 1
    assert AUDIT_FILES.labels(kind="fixity_failed")._value.get() == 1
    assert AUDIT_FILES.labels(kind="unknown_to_icat")._value.get() == 1

    # Repaired: the next audit verifies it again (it is always in the sample) and clears it.
    archived.tape.files[tape_url(corrupted)] = stored(content_of(corrupted))
    await run_audit(
        catalogue=archived.catalogue,
        tape=archived.tape,
        tape_archive=TAPE,
        tape_root_dir=ROOT_DIR,
        sample_size=1,
    )
    assert ARCHIVAL_FAILURE not in archived.catalogue.archival("Datafile", archived.ids[corrupted])


async def test_a_dry_run_records_nothing(archived: Archived) -> None:
    _, corrupted, *_ = await archived.setup()
    archived.tape.files[tape_url(corrupted)] = stored(b"Y" * len(content_of(corrupted)))
    report = await run_audit(
        catalogue=archived.catalogue,
        tape=archived.tape,
        tape_archive=TAPE,
        tape_root_dir=ROOT_DIR,
        record=False,
    )
    assert report.counts["fixity_failed"] == 1
    assert ARCHIVAL_FAILURE not in archived.catalogue.archival("Datafile", archived.ids[corrupted])


async def test_every_page_of_icat_is_read(archived: Archived) -> None:
    await archived.setup(files=7)
    report = await run_audit(
        catalogue=archived.catalogue,
        tape=archived.tape,
        tape_archive=TAPE,
        tape_root_dir=ROOT_DIR,
        page_size=2,
        sample_size=0,
    )
    assert report.clean and report.counts["archived_in_icat"] == 7
    assert report.counts["fixity_checked"] == 0
    assert archived.tape.described == []  # no sample: no checksum asked


async def test_a_state_someone_else_wrote_does_not_count_as_archived(archived: Archived) -> None:
    first, *_ = await archived.setup(files=2)
    archived.catalogue.write_by_hand("Datafile", archived.ids[first], ARCHIVAL_STATE, "FINISHED")
    report = await run_audit(
        catalogue=archived.catalogue, tape=archived.tape, tape_archive=TAPE, tape_root_dir=ROOT_DIR
    )
    assert report.comparison.unknown_to_icat == (first,)


async def test_under_a_folder_looks_at_that_folder_only_on_both_sides(archived: Archived) -> None:
    locations = await archived.setup(files=2)
    other = seed_investigation(files=3)
    await archive(archived.catalogue, archived.tape, other)
    folder = locations[0].rsplit("/", 3)[0]  # instrument/cycle/<investigation>-<visit>
    report = await run_audit(
        catalogue=archived.catalogue,
        tape=archived.tape,
        tape_archive=TAPE,
        tape_root_dir=ROOT_DIR,
        under=folder + "/",
    )
    assert report.clean
    assert report.counts["archived_in_icat"] == report.counts["files_on_tape"] == 2
    assert report.under == folder


@pytest.mark.parametrize("under", ["../x", "a//b/..", "a/b c"])
async def test_an_unsafe_folder_is_refused(archived: Archived, under: str) -> None:
    with pytest.raises(ConfigurationError, match="audit folder"):
        await run_audit(
            catalogue=archived.catalogue,
            tape=archived.tape,
            tape_archive=TAPE,
            tape_root_dir=ROOT_DIR,
            under=under,
        )


class TestCommand:
    @pytest.fixture(autouse=True)
    def _tape(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DATASTORE__TAPE_ARCHIVE", TAPE)
        monkeypatch.setenv("DATASTORE__TAPE_ROOT_DIR", ROOT_DIR)

    async def test_prints_the_summary_writes_the_report_and_exits_3_on_disagreement(
        self, archived: Archived, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        removed, *_ = await archived.setup()
        del archived.tape.files[tape_url(removed)]
        argv = [
            "audit",
            "--report-dir",
            str(tmp_path / "reports"),
            "--metrics-file",
            str(tmp_path / "audit.prom"),
        ]
        code = await run_cli(argv, catalogue=archived.catalogue, tape=archived.tape)
        assert code == EXIT_DISAGREEMENTS
        out = capsys.readouterr().out
        assert "missing on tape: 1" in out and removed in out
        [data] = (tmp_path / "reports").glob("audit-*.json")
        assert json.loads(data.read_text())["missing_on_tape"][0]["location"] == removed
        assert len(list((tmp_path / "reports").glob("audit-*.txt"))) == 1
        metrics = (tmp_path / "audit.prom").read_text()
        assert 'datastore_audit_files{kind="missing_on_tape"} 1.0' in metrics

    async def test_json_and_a_clean_exit(
        self, archived: Archived, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await archived.setup()
        code = await run_cli(
            ["audit", "--json", "--sample", "2"], catalogue=archived.catalogue, tape=archived.tape
        )
        assert code == 0
        report = json.loads(capsys.readouterr().out)
        assert report["clean"] is True and report["counts"]["fixity_checked"] == 2

    async def test_a_peer_down_is_one_line_and_exit_1(
        self, archived: Archived, capsys: pytest.CaptureFixture[str]
    ) -> None:
        archived.tape.fail_with = PeerUnavailableError("xrootd dirlist root://tape: refused")
        code = await run_cli(["audit"], catalogue=archived.catalogue, tape=archived.tape)
        assert code == 1
        assert "refused" in capsys.readouterr().err

    async def test_a_negative_sample_is_a_usage_error(self, archived: Archived) -> None:
        code = await run_cli(
            ["audit", "--sample", "-1"], catalogue=archived.catalogue, tape=archived.tape
        )
        assert code == 2


class TestLoop:
    async def test_audits_every_interval_and_survives_a_failed_run(self) -> None:
        runs: list[str] = []
        sleeps: list[float] = []

        async def audit() -> None:
            runs.append("run")
            if len(runs) == 1:
                raise PeerUnavailableError("ICAT is away")

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            if len(sleeps) > 3:
                raise asyncio.CancelledError

        with pytest.raises(asyncio.CancelledError):
            await audit_loop(audit, 600.0, sleep=sleep)
        assert runs == ["run"] * 3
        assert sleeps == [600.0] * 4  # it waits before each run, the first included
        assert AUDIT_LAST_RUN.labels(outcome="failed")._value.get() > 0
