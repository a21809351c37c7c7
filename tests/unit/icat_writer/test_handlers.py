"""icat-writer handlers on fakes: FakeCatalogue (ICAT), FakeStorage (idc), RecordingPublisher."""

from __future__ import annotations

import uuid

import pytest

from datastore_common.domain.archival import (
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_FAILURE,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
)
from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.domain.plan import plan_archive
from datastore_common.errors import (
    PeerTimeoutError,
    PeerUnavailableError,
    PermanentError,
    TransientError,
)
from datastore_common.messages import (
    ArchiveRegistered,
    ArchiveRequested,
    Envelope,
    FileState,
    InvestigationSpec,
    PlannedJob,
    TransferStatus,
    wrap,
)
from datastore_common.ports import StoredFile
from datastore_common.settings import DatastoreSettings
from datastore_common.testing.fake_catalogue import FakeCatalogue
from datastore_common.testing.fakes import FakeStorage, RecordingPublisher
from datastore_icat_writer.bootstrap import IcatWriter, bootstrap
from tests.support.factories import seed_investigation

VO = "test-vo"
ENDPOINT = "https://fts.test:8446/"


def make_settings(vo: str | None = VO) -> DatastoreSettings:
    return DatastoreSettings(fts3={"endpoint": ENDPOINT, "vo": vo})  # type: ignore[arg-type]


class World:
    """The icat-writer on fakes, with helpers to make requests and events."""

    def __init__(self, vo: str | None = VO) -> None:
        self.settings = make_settings(vo)
        self.catalogue = FakeCatalogue()
        self.storage = FakeStorage()
        self.publisher = RecordingPublisher()
        self.writer: IcatWriter = bootstrap(
            self.settings, publisher=self.publisher, catalogue=self.catalogue, storage=self.storage
        )

    def put_sources(
        self, investigation: InvestigationSpec, *, skip: set[str] = frozenset()
    ) -> None:
        for job in self.plan(investigation, "any"):
            for transfer in job.transfers:
                assert transfer.datafile is not None
                if transfer.datafile.datafile not in skip:
                    size = 1000 + int(transfer.datafile.datafile[5:9])
                    self.storage.files[transfer.source] = StoredFile(size, f"adler32:{size:08x}")

    def plan(self, investigation: InvestigationSpec, request_id: str) -> list[PlannedJob]:
        return plan_archive(
            request_id,
            [investigation],
            instrument_data_cache=self.settings.instrument_data_cache,
            tape_archive=self.settings.tape_archive,
            tape_root_dir=self.settings.tape_root_dir,
            vo=VO,
            max_files_per_job=self.settings.fts3.max_files_per_job,
        )

    def request(
        self,
        investigation: InvestigationSpec,
        request_id: str | None = None,
        *,
        planned: bool = True,
    ) -> Envelope[ArchiveRequested]:
        request_id = request_id or str(uuid.uuid4())
        jobs = self.plan(investigation, request_id) if planned else []
        data = ArchiveRequested(request_id=request_id, investigations=[investigation], jobs=jobs)
        return wrap(data, source="tests", correlation_id=request_id, user="simple/root")

    async def register(self, envelope: Envelope[ArchiveRequested]) -> None:
        await self.writer.register_archive(envelope)

    def registered(self) -> list[ArchiveRegistered]:
        return self.publisher.of_type(ArchiveRegistered)  # type: ignore[return-value]

    def statuses(self) -> list[TransferStatus]:
        return self.publisher.of_type(TransferStatus)  # type: ignore[return-value]

    async def report(
        self,
        job: PlannedJob,
        states: list[str],
        *,
        kind: str = "archive",
        reasons: list[str | None] | None = None,
    ) -> None:
        files = [
            FileState(
                source=t.source,
                destination=t.destination,
                datafile_id=t.datafile_id,
                dataset_id=t.dataset_id,
                state=state,
                reason=(reasons or [None] * len(states))[i],
            )
            for i, (t, state) in enumerate(zip(job.transfers, states, strict=True))
        ]
        status = TransferStatus(
            request_id="r",
            kind=kind,
            job_id=job.job_id,
            fts_endpoint=ENDPOINT,  # type: ignore[arg-type]
            job_state=states[0],
            files=files,
        )
        await self.writer.record_transfer_status(wrap(status, source="tests", correlation_id="r"))

    def dataset(self, investigation: InvestigationSpec, name: str = "scan_0000") -> int:
        return self.catalogue.find_dataset(investigation.name, name).id

    def file_states(self, dataset_id: int) -> dict[str, str | None]:
        return {
            name: self.catalogue.archival("Datafile", f.id).get(ARCHIVAL_STATE)
            for name, f in sorted(self.catalogue.datafiles_in(dataset_id).items())
        }


@pytest.fixture
def world() -> World:
    return World()


class TestRegisterArchive:
    async def test_registers_the_seed_request_with_sizes_and_checksums_from_storage(
        self, world: World
    ) -> None:
        investigation = seed_investigation()
        world.put_sources(investigation)
        envelope = world.request(investigation)
        await world.register(envelope)

        [inv] = world.catalogue.investigations.values()
        assert (inv.spec.name, inv.instruments, inv.facility_cycles) == (
            investigation.name,
            {"instrument"},
            {"20XX"},
        )
        dataset_id = world.dataset(investigation)
        files = world.catalogue.datafiles_in(dataset_id)
        assert sorted(files) == [f"file_{i:04d}.nxs" for i in range(4)]
        f1 = files["file_0001.nxs"]
        assert f1.location == f"instrument/20XX/{investigation.name}-1/scan/scan_0000/file_0001.nxs"
        assert (f1.file_size, f1.checksum) == (1001, f"adler32:{1001:08x}")
        [job] = envelope.data.jobs
        assert world.catalogue.archival("Datafile", f1.id) == {
            ARCHIVAL_STATE: "SUBMITTED",
            ARCHIVAL_IDS: job.job_id,
            ARCHIVAL_ENDPOINT: ENDPOINT,
        }
        assert world.catalogue.archival("Dataset", dataset_id) == {
            ARCHIVAL_STATE: "SUBMITTED",
            ARCHIVAL_IDS: job.job_id,
            ARCHIVAL_ENDPOINT: ENDPOINT,
        }
        dataset = world.catalogue.datasets[dataset_id]
        assert (dataset.file_count, dataset.file_size) == (4, 4006)
        assert (inv.file_count, inv.file_size) == (4, 4006)

        [registered] = world.registered()
        [out] = registered.jobs
        assert (out.job_id, out.sid) == (job.job_id, job.sid)
        assert [(t.datafile_id, t.dataset_id, t.filesize) for t in out.transfers] == [
            (files[f"file_{i:04d}.nxs"].id, dataset_id, 1000 + i) for i in range(4)
        ]
        assert out.transfers[2].checksum == f"adler32:{1002:08x}"
        assert world.publisher.published[-1].correlation_id == envelope.correlation_id
        assert world.statuses() == []

    async def test_a_visit_id_with_a_dash_is_refused_before_anything_is_written(
        self, world: World
    ) -> None:
        """A second line behind the message model: (ABC, 1-2) would share the folder ABC-1-2
        with (ABC-1, 2); a request that got past validation is refused for good."""
        valid = seed_investigation()
        dashed = InvestigationSpec.model_construct(**{**dict(valid), "visitId": "1-2"})
        data = ArchiveRequested.model_construct(
            request_id="dashed", investigations=[dashed], jobs=[]
        )
        envelope = wrap(data, source="instrument", correlation_id="dashed", user="simple/root")
        with pytest.raises(PermanentError, match="visitId '1-2'"):
            await world.register(envelope)
        assert world.catalogue.investigations == {}
        assert world.publisher.published == []

    async def test_plans_itself_when_an_instrument_sends_no_jobs(self, world: World) -> None:
        investigation = seed_investigation()
        world.put_sources(investigation)
        envelope = world.request(investigation, "instrument-req-1", planned=False)
        await world.register(envelope)
        [registered] = world.registered()
        assert [j.job_id for j in registered.jobs] == [
            fts_job_id(VO, job_sid("instrument-req-1", 0))
        ]
        assert len(registered.jobs[0].transfers) == 4

    async def test_without_jobs_and_without_a_vo_is_refused_with_the_reason(self) -> None:
        world = World(vo=None)
        investigation = seed_investigation()
        with pytest.raises(PermanentError, match=r"fts3\.vo"):
            await world.register(world.request(investigation, planned=False))
        assert world.catalogue.investigations == {}

    async def test_jobs_that_do_not_cover_the_request_are_refused(self, world: World) -> None:
        investigation = seed_investigation()
        envelope = world.request(investigation)
        job = envelope.data.jobs[0]
        short = job.model_copy(update={"transfers": job.transfers[:3]})
        broken = envelope.data.model_copy(update={"jobs": [short]})
        with pytest.raises(PermanentError, match=r"file_0003\.nxs"):
            await world.register(wrap(broken, source="t", correlation_id="c"))

    async def test_redelivery_changes_nothing_and_publishes_the_same_jobs(
        self, world: World
    ) -> None:
        investigation = seed_investigation(datasets=2, files=3)
        world.put_sources(investigation)
        envelope = world.request(investigation)
        await world.register(envelope)
        writes = world.catalogue.writes
        await world.register(envelope)
        assert world.catalogue.writes == writes
        first, second = world.registered()
        assert first == second
        assert len(world.catalogue.datafiles) == 6

    async def test_redelivery_after_progress_keeps_the_recorded_states(self, world: World) -> None:
        investigation = seed_investigation(files=2)
        world.put_sources(investigation)
        envelope = world.request(investigation)
        await world.register(envelope)
        [job] = world.registered()[0].jobs
        await world.report(job, ["FINISHED", "ACTIVE"])
        await world.register(envelope)
        dataset_id = world.dataset(investigation)
        assert world.file_states(dataset_id) == {
            "file_0000.nxs": "FINISHED",
            "file_0001.nxs": "ACTIVE",
        }
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "ACTIVE"

    async def test_a_missing_source_is_registered_failed_and_left_out_of_its_job(
        self, world: World
    ) -> None:
        investigation = seed_investigation()
        world.put_sources(investigation, skip={"file_0002.nxs"})
        envelope = world.request(investigation)
        await world.register(envelope)

        dataset_id = world.dataset(investigation)
        missing = world.catalogue.datafiles_in(dataset_id)["file_0002.nxs"]
        source = envelope.data.jobs[0].transfers[2].source
        archival = world.catalogue.archival("Datafile", missing.id)
        assert archival[ARCHIVAL_STATE] == "FAILED"
        assert archival[ARCHIVAL_FAILURE] == (
            f"user error: source not found on the instrument data cache: {source}"
        )
        assert missing.file_size is None and missing.checksum is None
        [job] = world.registered()[0].jobs
        assert [t.datafile.datafile for t in job.transfers if t.datafile] == [
            "file_0000.nxs",
            "file_0001.nxs",
            "file_0003.nxs",
        ]
        [status] = world.statuses()
        assert (status.job_id, status.job_state) == (job.job_id, "SUBMITTED")
        assert [(f.datafile_id, f.state, f.failure_class) for f in status.files] == [
            (missing.id, "FAILED", "user")
        ]
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "SUBMITTED"
        # The three others finish: the dataset is FINISHEDDIRTY, as the issue asks.
        await world.report(job, ["FINISHED"] * 3)
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FINISHEDDIRTY"

    async def test_a_job_left_without_files_is_not_announced_but_failed(self, world: World) -> None:
        investigation = seed_investigation(files=2)
        envelope = world.request(investigation)
        await world.register(envelope)
        assert world.registered() == []
        [status] = world.statuses()
        assert status.job_state == "FAILED"
        assert "source not found" in (status.reason or "")
        dataset_id = world.dataset(investigation)
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FAILED"

    async def test_a_dataset_archived_by_another_request_is_not_archived_again(
        self, world: World
    ) -> None:
        first = seed_investigation(files=2)
        world.put_sources(first)
        await world.register(world.request(first))
        dataset_id = world.dataset(first)
        before = world.catalogue.archival("Dataset", dataset_id)
        world.publisher.published.clear()

        # The same investigation again, with the same dataset plus a new one.
        second_payload = first.model_dump()
        second_payload["datasets"].append({**second_payload["datasets"][0], "name": "scan_0001"})
        second = InvestigationSpec.model_validate(second_payload)
        world.put_sources(second)
        envelope = world.request(second)
        await world.register(envelope)

        assert world.catalogue.archival("Dataset", dataset_id) == before
        [status] = world.statuses()
        assert {f.datafile_id for f in status.files} == {None}
        assert "already archived or being archived" in (status.files[0].reason or "")
        [registered] = world.registered()
        [job] = registered.jobs
        assert {t.datafile.dataset for t in job.transfers if t.datafile} == {"scan_0001"}
        new_dataset = world.dataset(second, "scan_0001")
        assert world.catalogue.archival("Dataset", new_dataset)[ARCHIVAL_STATE] == "SUBMITTED"

    async def test_a_failed_dataset_may_be_archived_again(self, world: World) -> None:
        investigation = seed_investigation(files=2)
        world.put_sources(investigation)
        await world.register(world.request(investigation))
        [job] = world.registered()[0].jobs
        await world.report(job, ["FAILED", "FAILED"], reasons=["timeout", "timeout"])
        dataset_id = world.dataset(investigation)
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FAILED"

        retry = world.request(investigation)
        await world.register(retry)
        new_job = retry.data.jobs[0].job_id
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_IDS] == new_job
        for datafile in world.catalogue.datafiles_in(dataset_id).values():
            archival = world.catalogue.archival("Datafile", datafile.id)
            assert archival[ARCHIVAL_STATE] == "SUBMITTED"
            assert ARCHIVAL_FAILURE not in archival
        assert len(world.catalogue.datafiles) == 2

    async def test_storage_outage_is_transient_and_publishes_nothing(self, world: World) -> None:
        world.storage.fail_with = PeerUnavailableError("idc down")
        with pytest.raises(TransientError):
            await world.register(world.request(seed_investigation()))
        assert world.publisher.published == []

    async def test_a_storage_time_out_part_way_is_retried_not_recorded_as_failed(
        self, world: World
    ) -> None:
        investigation = seed_investigation()
        world.put_sources(investigation)
        envelope = world.request(investigation)
        sources = [t.source for t in envelope.data.jobs[0].transfers]
        world.storage.time_out(sources[2])  # the idc does not answer for one file of four

        with pytest.raises(PeerTimeoutError):  # transient: the bus delivers the message again
            await world.register(envelope)

        assert set(sources) <= set(world.storage.described)  # the others were checked
        assert world.publisher.published == []
        # No file (nor dataset) is FAILED because its check did not finish: the file exists,
        # the storage was only slow to answer.
        assert [
            owner
            for owner, values in world.catalogue.parameters.items()
            if values.get(ARCHIVAL_STATE) == "FAILED"
        ] == []

        world.storage.recover()
        await world.register(envelope)  # the redelivery

        dataset_id = world.dataset(investigation)
        assert set(world.file_states(dataset_id).values()) == {"SUBMITTED"}
        [registered] = world.registered()
        assert len(registered.jobs[0].transfers) == 4
        assert world.statuses() == []

    async def test_a_time_out_of_the_next_call_only_delays_the_registration(
        self, world: World
    ) -> None:
        investigation = seed_investigation(files=2)
        world.put_sources(investigation)
        envelope = world.request(investigation)
        world.storage.time_out(calls=1)

        with pytest.raises(TransientError):
            await world.register(envelope)
        await world.register(envelope)

        assert set(world.file_states(world.dataset(investigation)).values()) == {"SUBMITTED"}
        assert len(world.registered()) == 1


class TestRecordTransferStatus:
    async def registered_job(
        self, world: World, files: int = 2
    ) -> tuple[InvestigationSpec, PlannedJob]:
        investigation = seed_investigation(files=files)
        world.put_sources(investigation)
        await world.register(world.request(investigation))
        return investigation, world.registered()[-1].jobs[0]

    async def test_states_move_forward_to_finished(self, world: World) -> None:
        investigation, job = await self.registered_job(world)
        dataset_id = world.dataset(investigation)
        await world.report(job, ["ACTIVE", "SUBMITTED"])
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "SUBMITTED"
        await world.report(job, ["ARCHIVING", "ARCHIVING"])
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "ARCHIVING"
        await world.report(job, ["FINISHED", "FINISHED"])
        assert world.file_states(dataset_id) == {
            "file_0000.nxs": "FINISHED",
            "file_0001.nxs": "FINISHED",
        }
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FINISHED"

    async def test_stale_and_duplicate_events_change_nothing(self, world: World) -> None:
        investigation, job = await self.registered_job(world)
        await world.report(job, ["FINISHED", "ACTIVE"])
        writes = world.catalogue.writes
        await world.report(job, ["FINISHED", "ACTIVE"])  # duplicate
        await world.report(job, ["ACTIVE", "SUBMITTED"])  # stale, overtaken
        await world.report(job, ["FAILED", "READY"])  # terminal is final; READY is behind
        assert world.catalogue.writes == writes
        assert world.file_states(world.dataset(investigation)) == {
            "file_0000.nxs": "FINISHED",
            "file_0001.nxs": "ACTIVE",
        }

    async def test_a_failed_file_records_its_reason_and_class(self, world: World) -> None:
        investigation, job = await self.registered_job(world)
        await world.report(
            job, ["FINISHED", "FAILED"], reasons=[None, "TRANSFER globus_xio: operation timed out"]
        )
        dataset_id = world.dataset(investigation)
        failed = world.catalogue.datafiles_in(dataset_id)["file_0001.nxs"]
        assert world.catalogue.archival("Datafile", failed.id)[ARCHIVAL_FAILURE] == (
            "system error: TRANSFER globus_xio: operation timed out"
        )
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FINISHEDDIRTY"
        # Provenance stays: job ids and endpoint are kept for good.
        assert world.catalogue.archival("Datafile", failed.id)[ARCHIVAL_IDS] == job.job_id

    async def test_the_dataset_state_is_aggregated_over_all_its_files(self, world: World) -> None:
        investigation, job = await self.registered_job(world, files=3)
        only_first = job.model_copy(update={"transfers": job.transfers[:1]})
        await world.report(only_first, ["FINISHED"])
        dataset_id = world.dataset(investigation)
        # Two files are still SUBMITTED: the dataset shows the earliest active state.
        assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "SUBMITTED"

    async def test_restore_events_and_files_without_ids_change_nothing(self, world: World) -> None:
        _, job = await self.registered_job(world)
        writes = world.catalogue.writes
        await world.report(job, ["FINISHED", "FINISHED"], kind="restore")
        anonymous = job.model_copy(
            update={
                "transfers": [t.model_copy(update={"datafile_id": None}) for t in job.transfers]
            }
        )
        await world.report(anonymous, ["FINISHED", "FINISHED"])
        assert world.catalogue.writes == writes

    async def test_totals_follow_the_datafiles(self, world: World) -> None:
        investigation, job = await self.registered_job(world, files=3)
        dataset = world.catalogue.datasets[world.dataset(investigation)]
        assert (dataset.file_count, dataset.file_size) == (3, 1000 + 1001 + 1002)
        world.catalogue.datafiles_in(dataset.id)["file_0000.nxs"].file_size = 5000
        await world.report(job, ["FINISHED"] * 3)
        assert (dataset.file_count, dataset.file_size) == (3, 5000 + 1001 + 1002)

    async def test_active_jobs_for_resync_follow_the_states(self, world: World) -> None:
        _, job = await self.registered_job(world)
        [active] = await world.catalogue.active_archival_jobs()
        assert (active.job_id, active.endpoint, len(active.datafiles)) == (job.job_id, ENDPOINT, 2)
        await world.report(job, ["FINISHED", "FINISHED"])
        assert await world.catalogue.active_archival_jobs() == []
