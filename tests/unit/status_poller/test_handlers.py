"""poll_batch with fakes: only changes are published, terminal jobs leave, bulk per batch."""

from __future__ import annotations

import time
from typing import Any

import pytest

from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.errors import AuthenticationError, InvalidRequestError, TransientError
from datastore_common.messages import (
    Envelope,
    PlannedTransfer,
    TransferStatus,
    TransferSubmitted,
    TransferTracked,
    wrap,
)
from datastore_common.metrics import POLL_BATCHES, POLL_LAST_SUCCESS
from datastore_common.ports import FileProgress, JobProgress
from datastore_common.settings import DatastoreSettings
from datastore_common.testing.fakes import FakeTransferService, RecordingPublisher
from datastore_status_poller.bootstrap import bootstrap
from datastore_status_poller.fakes import RecordingRequeue
from datastore_status_poller.handlers import observe, track

VO = "test-vo"


def transfers_of(request_id: str, files: int) -> list[PlannedTransfer]:
    return [
        PlannedTransfer(
            source=f"root://idc//{request_id}/f{i}",
            destination=f"root://tape//archive/{request_id}/f{i}",
            datafile_id=10 + i,
            dataset_id=7,
        )
        for i in range(files)
    ]


async def submit(fts: FakeTransferService, request_id: str, files: int = 2) -> Envelope[Any]:
    """A job in the fake FTS and the TransferSubmitted the submitter would have published."""
    from datastore_common.messages import PlannedJob

    sid = job_sid(request_id, 0)
    job = PlannedJob(
        job_id=fts_job_id(VO, sid),
        sid=sid,
        kind="archive",
        transfers=transfers_of(request_id, files),
    )
    job_id = await fts.submit(job)
    data = TransferSubmitted(
        request_id=request_id,
        kind="archive",
        job_id=job_id,
        fts_endpoint=fts.endpoint,
        transfers=job.transfers,
    )
    return wrap(data, source="tests", correlation_id=request_id, user="simple/root")


class Harness:
    def __init__(self) -> None:
        self.fts = FakeTransferService(vo_name=VO)
        self.publisher = RecordingPublisher()
        self.requeue = RecordingRequeue()
        self.poll = bootstrap(
            DatastoreSettings(),
            transfers=self.fts,
            publisher=self.publisher,
            requeue=self.requeue,
            unknown_grace=3,
        ).poll_batch

    def statuses(self) -> list[TransferStatus]:
        return [p for p in self.publisher.of_type(TransferStatus) if isinstance(p, TransferStatus)]

    async def cycle(self) -> None:
        """Deliver everything that waited in the delay queue back to the poller."""
        await self.poll(self.requeue.due())


@pytest.fixture
def harness() -> Harness:
    return Harness()


class TestPollBatch:
    async def test_first_poll_publishes_the_state_and_requeues_as_tracked(
        self, harness: Harness
    ) -> None:
        message = await submit(harness.fts, "r1")

        await harness.poll([message])

        (status,) = harness.statuses()
        assert status.job_state == "SUBMITTED" and status.job_id == message.data.job_id
        assert [(f.datafile_id, f.dataset_id, f.state) for f in status.files] == [
            (10, 7, "SUBMITTED"),
            (11, 7, "SUBMITTED"),
        ]
        (waiting,) = harness.requeue.waiting
        assert waiting.tracked.polls == 1 and waiting.tracked.job_state == "SUBMITTED"
        assert waiting.correlation_id == "r1" and waiting.user == "simple/root"
        assert set(waiting.tracked.file_states.values()) == {"SUBMITTED"}

    async def test_publishes_only_changes(self, harness: Harness) -> None:
        message = await submit(harness.fts, "r1")
        job_id = message.data.job_id
        await harness.poll([message])

        await harness.cycle()  # nothing changed
        assert len(harness.statuses()) == 1

        harness.fts.set_state(job_id, "ACTIVE", ["ACTIVE", "SUBMITTED"])
        await harness.cycle()
        latest = harness.statuses()[-1]
        assert latest.job_state == "ACTIVE"
        assert [f.destination.rsplit("/", 1)[1] for f in latest.files] == ["f0"]  # only f0 moved

        harness.fts.set_state(job_id, "ACTIVE", ["ARCHIVING", "ACTIVE"])
        await harness.cycle()
        assert [f.state for f in harness.statuses()[-1].files] == ["ARCHIVING", "ACTIVE"]
        assert len(harness.statuses()) == 3

    async def test_terminal_job_is_published_and_not_requeued(self, harness: Harness) -> None:
        message = await submit(harness.fts, "r1")
        await harness.poll([message])
        harness.fts.set_state(message.data.job_id, "FINISHED")

        await harness.cycle()

        assert harness.statuses()[-1].job_state == "FINISHED"
        assert harness.requeue.waiting == []

    async def test_failed_file_carries_reason_and_class(self, harness: Harness) -> None:
        message = await submit(harness.fts, "r1")
        await harness.poll([message])
        harness.fts.set_state(
            message.data.job_id,
            "FINISHEDDIRTY",
            ["FINISHED", ("FAILED", "SOURCE [2] No such file or directory")],
        )

        await harness.cycle()

        status = harness.statuses()[-1]
        assert status.job_state == "FINISHEDDIRTY"
        finished, failed = status.files
        assert finished.failure_class is None
        assert failed.state == "FAILED" and failed.datafile_id == 11
        assert failed.reason == "SOURCE [2] No such file or directory"
        assert failed.failure_class == "user"

    async def test_unknown_job_gets_grace_then_fails(self, harness: Harness) -> None:
        data = TransferSubmitted(
            request_id="ghost",
            kind="archive",
            job_id="00000000-0000-0000-0000-000000000000",
            fts_endpoint=harness.fts.endpoint,
            transfers=transfers_of("ghost", 2),
        )
        await harness.poll([wrap(data, source="tests", correlation_id="ghost")])
        await harness.cycle()
        assert harness.statuses() == []  # two polls of grace
        assert harness.requeue.waiting[0].tracked.polls == 2

        await harness.cycle()

        (status,) = harness.statuses()
        assert status.job_state == "FAILED" and "unknown to FTS" in (status.reason or "")
        assert [(f.datafile_id, f.state, f.failure_class) for f in status.files] == [
            (10, "FAILED", "system"),
            (11, "FAILED", "system"),
        ]
        assert harness.requeue.waiting == []

    async def test_250_jobs_in_batches_of_100_cost_3_bulk_calls(self, harness: Harness) -> None:
        messages = [await submit(harness.fts, f"r{i}") for i in range(250)]

        for start in range(0, 250, 100):
            await harness.poll(messages[start : start + 100])

        assert harness.fts.status_calls == 3
        assert len(harness.statuses()) == 250
        assert len(harness.requeue.waiting) == 250

    async def test_fts_down_keeps_every_job_unchanged(self, harness: Harness) -> None:
        messages = [await submit(harness.fts, f"r{i}") for i in range(3)]
        harness.fts.down = True

        await harness.poll(messages)  # no exception: the jobs simply wait another interval

        assert harness.publisher.published == []
        assert [w.tracked for w in harness.requeue.waiting] == [track(m.data) for m in messages]

    async def test_batches_are_counted_and_the_last_success_is_exported(
        self, harness: Harness
    ) -> None:
        """What the alert "no poll for N minutes" reads (deploy/monitoring)."""
        messages = [await submit(harness.fts, f"r{i}") for i in range(2)]
        ok, unavailable = (POLL_BATCHES.labels(outcome=o) for o in ("ok", "fts_unavailable"))
        ok_before, unavailable_before = ok._value.get(), unavailable._value.get()
        POLL_LAST_SUCCESS.set(0)

        harness.fts.down = True
        await harness.poll(messages)
        assert (ok._value.get(), unavailable._value.get()) == (ok_before, unavailable_before + 1)
        assert POLL_LAST_SUCCESS._value.get() == 0

        harness.fts.down = False
        await harness.poll(messages)
        assert ok._value.get() == ok_before + 1
        assert POLL_LAST_SUCCESS._value.get() == pytest.approx(time.time(), abs=60)

    async def test_fts_refusing_our_credentials_keeps_every_job(self, harness: Harness) -> None:
        message = await submit(harness.fts, "r1")

        async def refuses(job_ids: Any) -> Any:
            raise AuthenticationError("FTS3 GET /jobs: certificate expired")

        harness.fts.status = refuses  # type: ignore[method-assign]
        await harness.poll([message])

        assert harness.publisher.published == []
        assert len(harness.requeue.waiting) == 1

    async def test_a_batch_refused_as_a_whole_is_asked_job_by_job(self, harness: Harness) -> None:
        good = await submit(harness.fts, "good")
        bad = wrap(
            TransferSubmitted(
                request_id="bad",
                kind="archive",
                job_id="not-a-uuid",
                fts_endpoint=harness.fts.endpoint,
                transfers=transfers_of("bad", 1),
            ),
            source="tests",
            correlation_id="bad",
        )
        real_status = harness.fts.status

        async def refuses_bad_ids(job_ids: Any) -> Any:
            if "not-a-uuid" in job_ids:
                raise InvalidRequestError("FTS3 GET /jobs: malformed job id")
            return await real_status(job_ids)

        harness.fts.status = refuses_bad_ids  # type: ignore[method-assign]
        await harness.poll([good, bad])

        assert [s.job_id for s in harness.statuses()] == [good.data.job_id]
        polls = {w.tracked.job_id: w.tracked.polls for w in harness.requeue.waiting}
        assert polls == {good.data.job_id: 1, "not-a-uuid": 1}  # the bad one is in its grace

    async def test_duplicate_job_in_a_batch_is_polled_once(self, harness: Harness) -> None:
        message = await submit(harness.fts, "r1")

        await harness.poll([message, message])

        assert len(harness.statuses()) == 1
        assert len(harness.requeue.waiting) == 1

    async def test_publish_failure_raises_before_anything_is_requeued(
        self, harness: Harness
    ) -> None:
        message = await submit(harness.fts, "r1")
        harness.publisher.fail_with = TransientError("broker gone")

        with pytest.raises(TransientError):
            await harness.poll([message])

        assert harness.requeue.waiting == []  # the bus retries the whole batch


class TestObserve:
    def tracked(self) -> TransferTracked:
        return TransferTracked(
            request_id="r",
            kind="archive",
            job_id="j",
            fts_endpoint="https://fts",
            job_state="ACTIVE",
            file_states={"root://tape//a": "ACTIVE"},
            transfers=[PlannedTransfer(source="root://idc//a", destination="root://tape//a")],
            polls=4,
        )

    def test_ids_come_from_fts_metadata_when_the_plan_does_not_name_the_file(self) -> None:
        progress = JobProgress(
            "j",
            "ACTIVE",
            None,
            (
                FileProgress(
                    1,
                    "root://idc//b",
                    "root://tape//b",
                    "SUBMITTED",
                    metadata={"datafile_id": 5, "dataset_id": 6},
                ),
            ),
        )

        outcome = observe(self.tracked(), progress)

        assert outcome.publish is not None
        (file,) = outcome.publish.files
        assert (file.datafile_id, file.dataset_id, file.source) == (5, 6, "root://idc//b")

    def test_a_known_job_that_vanishes_gets_a_fresh_grace(self) -> None:
        outcome = observe(self.tracked(), None, unknown_grace=3)

        assert outcome.publish is None
        assert outcome.poll_again is not None
        assert outcome.poll_again.job_state is None
        assert outcome.poll_again.polls == 1
        second = observe(outcome.poll_again, None, unknown_grace=3)
        assert second.publish is None and second.poll_again is not None
        third = observe(second.poll_again, None, unknown_grace=3)
        assert third.poll_again is None
        assert third.publish is not None and third.publish.job_state == "FAILED"


class TestResync:
    async def test_jobs_in_flight_in_icat_are_tracked_again_and_polled(self) -> None:
        from datastore_common.domain.archival import (
            ARCHIVAL_ENDPOINT,
            ARCHIVAL_IDS,
            ARCHIVAL_STATE,
        )
        from datastore_common.settings import load_settings
        from datastore_common.testing.fake_catalogue import FakeCatalogue, FakeDatafile
        from datastore_status_poller.handlers import resync

        harness = Harness()
        live = await submit(harness.fts, "lost", files=2)
        catalogue = FakeCatalogue()
        for index, (state, job_id) in enumerate(
            [("ACTIVE", live.data.job_id), ("SUBMITTED", live.data.job_id), ("FINISHED", "old")]
        ):
            datafile_id = 10 + index
            location = f"instrument/20XX/ABC-1/scan/s/f{index}"
            catalogue.datafiles[datafile_id] = FakeDatafile(
                datafile_id, 7, f"f{index}", location, 1, None
            )
            await catalogue.set_archival(
                "Datafile",
                {
                    datafile_id: {
                        ARCHIVAL_STATE: state,
                        ARCHIVAL_IDS: job_id,
                        ARCHIVAL_ENDPOINT: harness.fts.endpoint,
                    }
                },
            )
        settings = load_settings(tape_root_dir="archive/")

        count = await resync(
            catalogue=catalogue,
            requeue=harness.requeue,
            settings=settings,
            correlation_id="resync-1",
        )

        assert count == 1  # the FINISHED job is not followed again
        (waiting,) = harness.requeue.waiting
        tracked = waiting.tracked
        assert (tracked.job_id, tracked.job_state, tracked.polls) == (live.data.job_id, None, 0)
        assert tracked.fts_endpoint == harness.fts.endpoint
        assert [t.destination for t in tracked.transfers] == [
            "root://127.0.0.1:11096//archive/instrument/20XX/ABC-1/scan/s/f0",
            "root://127.0.0.1:11096//archive/instrument/20XX/ABC-1/scan/s/f1",
        ]
        await harness.cycle()
        (status,) = harness.statuses()  # the whole state is published again
        assert status.job_state == "SUBMITTED" and len(status.files) == 2

    async def test_the_original_apis_dataset_in_flight_is_adopted_by_its_ids(self) -> None:
        """The original Datastore API recorded "Archival ids" (comma-joined FTS job ids) on
        the Dataset only, and FTS's file states (READY, ARCHIVING, ...) on each Datafile."""
        from datastore_common.domain.archival import ARCHIVAL_IDS, ARCHIVAL_STATE
        from datastore_common.settings import load_settings
        from datastore_common.testing.fake_catalogue import (
            FakeCatalogue,
            FakeDatafile,
            FakeDataset,
        )
        from datastore_status_poller.handlers import resync
        from tests.support.factories import seed_investigation

        harness = Harness()
        live = await submit(harness.fts, "the-originals", files=2)
        catalogue = FakeCatalogue()
        catalogue.datasets[7] = FakeDataset(7, 1, seed_investigation("ABC").datasets[0])
        for index, state in enumerate(("ARCHIVING", "READY", "FINISHED")):
            datafile_id = 10 + index
            location = f"instrument/20XX/ABC-1/scan/s/f{index}"
            catalogue.datafiles[datafile_id] = FakeDatafile(
                datafile_id, 7, f"f{index}", location, 1, None
            )
            await catalogue.set_archival("Datafile", {datafile_id: {ARCHIVAL_STATE: state}})
        await catalogue.set_archival(
            "Dataset", {7: {ARCHIVAL_STATE: "READY", ARCHIVAL_IDS: f"{live.data.job_id},"}}
        )

        count = await resync(
            catalogue=catalogue,
            requeue=harness.requeue,
            settings=load_settings(tape_root_dir="archive/"),
            correlation_id="resync-1",
        )

        assert count == 1
        (waiting,) = harness.requeue.waiting
        tracked = waiting.tracked
        assert tracked.job_id == live.data.job_id
        assert tracked.fts_endpoint == str(load_settings().fts3.endpoint).rstrip("/")
        assert [(t.datafile_id, t.dataset_id) for t in tracked.transfers] == [(10, 7), (11, 7)]
        assert [t.source for t in tracked.transfers] == [
            "root://127.0.0.1:11094//instrument/20XX/ABC-1/scan/s/f0",
            "root://127.0.0.1:11094//instrument/20XX/ABC-1/scan/s/f1",
        ]
        await harness.cycle()
        (status,) = harness.statuses()  # FTS's answer names the job's files
        assert status.job_id == live.data.job_id and len(status.files) == 2
