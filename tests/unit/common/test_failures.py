"""domain.failures: what giving a message up publishes, message type by message type."""

from __future__ import annotations

import pytest

from datastore_common.domain.failures import failure_class_of, give_up_events
from datastore_common.errors import (
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    PeerTimeoutError,
    PermanentError,
)
from datastore_common.messages import (
    ArchiveRegistered,
    ArchiveRequested,
    DatafileKey,
    PlannedJob,
    PlannedTransfer,
    RequestFailed,
    RestoreRequested,
    TransferStatus,
    TransferSubmitted,
    TransferTracked,
)
from tests.support.factories import seed_investigation

FTS = "https://fts:8446"
KEY = DatafileKey(investigation="ABC", visit_id="1", dataset="scan", datafile="f.nxs")


def job(job_id: str, kind: str = "archive", datafile_id: int | None = None) -> PlannedJob:
    transfer = PlannedTransfer(
        source="root://idc//f.nxs",
        destination="root://tape//f.nxs",
        datafile=KEY,
        datafile_id=datafile_id,
    )
    return PlannedJob(job_id=job_id, sid=f"sid-{job_id}", kind=kind, transfers=[transfer])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (InvalidRequestError("bad"), "user"),
        (NotFoundError("no such instrument"), "user"),
        (PermanentError("FTS named the job differently"), "system"),
        (ConfigurationError("fts3.vo"), "system"),
        (PeerTimeoutError("icat"), "system"),
        (RuntimeError("bug"), "system"),
    ],
)
def test_failure_class(exc: BaseException, expected: str) -> None:
    assert failure_class_of(exc) == expected


@pytest.mark.parametrize(
    "data",
    [
        ArchiveRequested(request_id="r", investigations=[seed_investigation()], jobs=[job("a")]),
        ArchiveRegistered(request_id="r", jobs=[job("a", datafile_id=7), job("b")]),
        RestoreRequested(request_id="r", jobs=[job("a", "restore", datafile_id=7)]),
    ],
    ids=["archive.requested", "archive.registered", "restore.requested"],
)
def test_a_request_given_up_fails_every_job_and_file_then_the_request(data: object) -> None:
    events = give_up_events(data, "why", "system", fts_endpoint=FTS)  # type: ignore[arg-type]

    *statuses, last = events
    assert isinstance(last, RequestFailed)
    assert (last.request_id, last.reason, last.failure_class) == ("r", "why", "system")
    assert last.job_ids == [s.job_id for s in statuses]  # type: ignore[attr-defined]
    for status in statuses:
        assert isinstance(status, TransferStatus)
        assert status.job_state == "FAILED"
        for file in status.files:
            assert (file.state, file.reason, file.failure_class) == ("FAILED", "why", "system")
            # A file without an ICAT id is named by its keys, so ICAT can still record it.
            assert (file.datafile_id, file.datafile) in ((7, None), (None, KEY))


def test_jobs_planned_by_the_caller_replace_an_empty_plan() -> None:
    data = ArchiveRequested(request_id="r", investigations=[seed_investigation()])
    events = give_up_events(data, "why", "user", fts_endpoint=FTS, jobs=[job("x")])
    assert [type(e).__name__ for e in events] == ["TransferStatus", "RequestFailed"]
    assert events[-1].failure_class == "user"  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", [TransferSubmitted, TransferTracked])
def test_a_job_nobody_can_follow_ends_failed_as_a_system_error(model: type) -> None:
    data = model(
        request_id="r", kind="archive", job_id="j", fts_endpoint=FTS, transfers=job("j").transfers
    )
    [status] = give_up_events(data, "FTS down for 24 h", "user", fts_endpoint=FTS)
    assert isinstance(status, TransferStatus)
    assert status.job_state == "FAILED" and status.files[0].failure_class == "system"
    assert "lost track of FTS job j" in (status.reason or "")


def test_a_status_event_has_nothing_to_report() -> None:
    data = TransferStatus(
        request_id="r", kind="archive", job_id="j", fts_endpoint=FTS, job_state="ACTIVE"
    )
    assert give_up_events(data, "icat down", "system", fts_endpoint=FTS) == []
