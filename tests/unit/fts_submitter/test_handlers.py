"""submit_jobs with fakes: idempotent submission, refusals become FAILED, outages raise."""

from __future__ import annotations

from typing import Any

import pytest

from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.domain.trust import UntrustedMessageError
from datastore_common.errors import PermanentError, TransientError
from datastore_common.messages import (
    ArchiveRegistered,
    Envelope,
    PlannedJob,
    PlannedTransfer,
    RestoreRequested,
    TransferKind,
    TransferStatus,
    TransferSubmitted,
    wrap,
)
from datastore_common.settings import DatastoreSettings
from datastore_common.testing.fakes import FakeTransferService, RecordingPublisher
from datastore_fts_submitter.bootstrap import bootstrap
from datastore_fts_submitter.handlers import JobIdMismatchError

VO = "test-vo"
SETTINGS = DatastoreSettings()


def planned_job(
    request_id: str,
    index: int,
    files: int = 2,
    *,
    kind: TransferKind = "archive",
    vo: str = VO,
) -> PlannedJob:
    sid = job_sid(request_id, index)
    # Where the kind goes under the configured roots (the submitter refuses anything else).
    tape = f"{SETTINGS.tape_archive}{SETTINGS.tape_root_dir}"
    source, destination = (
        (SETTINGS.instrument_data_cache, tape)
        if kind == "archive"
        else (tape, SETTINGS.user_data_cache)
    )
    return PlannedJob(
        job_id=fts_job_id(vo, sid),
        sid=sid,
        kind=kind,
        transfers=[
            PlannedTransfer(
                source=f"{source}{request_id}/{index}/f{i}",
                destination=f"{destination}{request_id}/{index}/f{i}",
                datafile_id=100 * index + i,
                dataset_id=index,
                checksum="adler32:00000001",
                filesize=1,
            )
            for i in range(files)
        ],
    )


def registered(request_id: str = "req-1", jobs: int = 2, **kwargs: Any) -> Envelope[Any]:
    data = ArchiveRegistered(
        request_id=request_id, jobs=[planned_job(request_id, i, **kwargs) for i in range(jobs)]
    )
    return wrap(data, source="tests", correlation_id=request_id, user="simple/root")


class TestSubmitJobs:
    async def test_submits_every_job_and_announces_each(self) -> None:
        fts, publisher = FakeTransferService(vo_name=VO), RecordingPublisher()
        message = registered(jobs=3)

        await bootstrap(SETTINGS, transfers=fts, publisher=publisher).submit_jobs(message)

        assert set(fts.jobs) == {job.job_id for job in message.data.jobs}
        announced = [
            a for a in publisher.of_type(TransferSubmitted) if isinstance(a, TransferSubmitted)
        ]
        assert [a.job_id for a in announced] == [job.job_id for job in message.data.jobs]
        first = announced[0]
        assert isinstance(first, TransferSubmitted)
        assert first.kind == "archive" and first.fts_endpoint == fts.endpoint
        assert first.transfers == message.data.jobs[0].transfers
        assert {p.correlation_id for p in publisher.published} == {"req-1"}
        assert {p.user for p in publisher.published} == {"simple/root"}

    async def test_redelivery_creates_no_second_job(self) -> None:
        fts, publisher = FakeTransferService(vo_name=VO), RecordingPublisher()
        handler = bootstrap(SETTINGS, transfers=fts, publisher=publisher).submit_jobs
        message = registered(jobs=2)

        await handler(message)
        await handler(message)

        assert len(fts.jobs) == 2
        assert fts.submit_calls == 4
        # Announced again (the first announcement may not have happened); the poller
        # drops duplicates within a batch and downstream ignores repeated states.
        assert len(publisher.of_type(TransferSubmitted)) == 4

    async def test_restore_jobs_are_submitted_the_same_way(self) -> None:
        fts, publisher = FakeTransferService(vo_name=VO), RecordingPublisher()
        data = RestoreRequested(request_id="rst-1", jobs=[planned_job("rst-1", 0, kind="restore")])

        await bootstrap(SETTINGS, transfers=fts, publisher=publisher).submit_jobs(
            wrap(data, source="tests", correlation_id="rst-1")
        )

        (announced,) = publisher.of_type(TransferSubmitted)
        assert isinstance(announced, TransferSubmitted) and announced.kind == "restore"

    async def test_permanent_refusal_publishes_failed_with_the_reason_and_returns(self) -> None:
        fts, publisher = FakeTransferService(vo_name=VO), RecordingPublisher()
        fts.refuse_with = "FTS3 POST /jobs: Invalid value within the request"
        message = registered(jobs=1, files=3)

        await bootstrap(SETTINGS, transfers=fts, publisher=publisher).submit_jobs(
            message
        )  # no exception

        assert publisher.of_type(TransferSubmitted) == []
        (status,) = publisher.of_type(TransferStatus)
        assert isinstance(status, TransferStatus)
        assert status.job_state == "FAILED"
        assert status.job_id == message.data.jobs[0].job_id
        assert status.reason == fts.refuse_with
        assert [f.state for f in status.files] == ["FAILED"] * 3
        assert [f.datafile_id for f in status.files] == [0, 1, 2]
        assert {f.dataset_id for f in status.files} == {0}
        assert {f.failure_class for f in status.files} == {"system"}
        assert {f.reason for f in status.files} == {fts.refuse_with}

    async def test_transient_failure_raises_and_announces_nothing(self) -> None:
        fts, publisher = FakeTransferService(vo_name=VO), RecordingPublisher()
        fts.down = True

        with pytest.raises(TransientError):
            await bootstrap(SETTINGS, transfers=fts, publisher=publisher).submit_jobs(
                registered(jobs=2)
            )

        assert publisher.published == []

    async def test_partial_success_then_redelivery_announces_each_job_once(self) -> None:
        fts, publisher = FakeTransferService(vo_name=VO), RecordingPublisher()
        handler = bootstrap(SETTINGS, transfers=fts, publisher=publisher).submit_jobs
        message = registered(jobs=3)
        real_submit = fts.submit
        calls = 0

        async def fails_on_third(job: PlannedJob) -> str:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise TransientError("connection reset")
            return await real_submit(job)

        fts.submit = fails_on_third  # type: ignore[method-assign]
        with pytest.raises(TransientError):
            await handler(message)
        assert len(fts.jobs) == 2 and publisher.published == []

        await handler(message)  # the bus redelivers after its backoff

        assert len(fts.jobs) == 3
        announced = [s.job_id for s in publisher.of_type(TransferSubmitted)]  # type: ignore[attr-defined]
        assert sorted(announced) == sorted(j.job_id for j in message.data.jobs)

    async def test_an_id_other_than_planned_is_a_permanent_error(self) -> None:
        fts, publisher = FakeTransferService(vo_name="another-vo"), RecordingPublisher()

        with pytest.raises(JobIdMismatchError) as caught:
            await bootstrap(SETTINGS, transfers=fts, publisher=publisher).submit_jobs(
                registered(jobs=1)
            )

        assert isinstance(caught.value, PermanentError)
        assert "vo" in str(caught.value)
        assert publisher.published == []

    async def test_publish_failure_raises_so_the_bus_retries(self) -> None:
        fts, publisher = FakeTransferService(vo_name=VO), RecordingPublisher()
        publisher.fail_with = TransientError("broker gone")

        with pytest.raises(TransientError):
            await bootstrap(SETTINGS, transfers=fts, publisher=publisher).submit_jobs(
                registered(jobs=1)
            )


class TestRefusesTransfersOutsideTheRoots:
    """The broker does not vouch for a message: a transfer from or to anywhere but where its
    kind goes is refused before FTS is asked for anything (``domain.trust``)."""

    @pytest.mark.parametrize(
        ("end", "url"),
        [
            pytest.param("source", "root://evil.example:1094//etc/passwd", id="other-host"),
            pytest.param("source", "root://127.0.0.1:11094//a/../../etc/passwd", id="dot-dot"),
            pytest.param(
                "destination", "root://127.0.0.1:11096//elsewhere/f0", id="outside-tape-folder"
            ),
            pytest.param(
                "destination", "root://127.0.0.1:11096//archive/f0?oss.cgroup=x", id="query"
            ),
            pytest.param("destination", "root://127.0.0.1:11095//req-1/0/f0", id="to-user-cache"),
        ],
    )
    async def test_a_hostile_url_is_a_permanent_error_naming_it_and_nothing_is_submitted(
        self, end: str, url: str
    ) -> None:
        fts, publisher = FakeTransferService(vo_name=VO), RecordingPublisher()
        message = registered(jobs=2)
        job = message.data.jobs[1]
        hostile = job.model_copy(
            update={"transfers": [job.transfers[0].model_copy(update={end: url})]}
        )
        data = message.data.model_copy(update={"jobs": [message.data.jobs[0], hostile]})

        with pytest.raises(UntrustedMessageError) as caught:
            await bootstrap(SETTINGS, transfers=fts, publisher=publisher).submit_jobs(
                wrap(data, source="tests", correlation_id="req-1")
            )

        assert isinstance(caught.value, PermanentError)
        assert repr(url) in str(caught.value)
        assert fts.jobs == {} and fts.submit_calls == 0
        assert publisher.published == []

    async def test_a_restore_job_in_an_archive_message_is_refused(self) -> None:
        fts, publisher = FakeTransferService(vo_name=VO), RecordingPublisher()
        data = ArchiveRegistered(request_id="req-1", jobs=[planned_job("req-1", 0, kind="restore")])

        with pytest.raises(UntrustedMessageError, match="is a restore job, not archive"):
            await bootstrap(SETTINGS, transfers=fts, publisher=publisher).submit_jobs(
                wrap(data, source="tests", correlation_id="req-1")
            )
        assert fts.submit_calls == 0

    async def test_roots_come_from_the_settings(self) -> None:
        settings = DatastoreSettings(
            instrument_data_cache="root://idc.example.org:1094//",
            tape_archive="root://tape.example.org:1094//",
            tape_root_dir="store/",
        )
        fts, publisher = FakeTransferService(vo_name=VO), RecordingPublisher()
        handler = bootstrap(settings, transfers=fts, publisher=publisher).submit_jobs
        with pytest.raises(UntrustedMessageError, match=r"idc\.example\.org"):
            await handler(registered(jobs=1))  # planned under the default roots
        sid = job_sid("req-2", 0)
        job = PlannedJob(
            job_id=fts_job_id(VO, sid),
            sid=sid,
            kind="archive",
            transfers=[
                PlannedTransfer(
                    source="root://idc.example.org:1094//a/b.nxs",
                    destination="root://tape.example.org:1094//store/a/b.nxs",
                )
            ],
        )
        await handler(
            wrap(
                ArchiveRegistered(request_id="req-2", jobs=[job]),
                source="tests",
                correlation_id="req-2",
            )
        )
        assert set(fts.jobs) == {job.job_id}
