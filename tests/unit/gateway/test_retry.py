"""POST /datasets/{id}/retry: archivers send again the FAILED or CANCELED files of an ended
archive (a new request, new deterministic jobs); in flight or FINISHED: 409 with why."""

from __future__ import annotations

from typing import Any

from datastore_common.domain.control import plan_retry
from datastore_common.messages import ArchiveRetryRequested
from tests.unit.gateway.conftest import TEST_VO, Gateway

FOLDER = "instrument/20XX/ABC123-1/scan/scan_0000"
LOCATIONS = [f"{FOLDER}/file_000{i}.nxs" for i in range(4)]
ALICE = {"username": "alice", "password": "alice-pw", "auth": "db"}  # not an archiver


def dataset(
    gateway: Gateway, states: list[str | None], readers: set[str] | None = None
) -> list[int]:
    ids = gateway.selections.add_dataset(
        1, 10, LOCATIONS[: len(states)], first_datafile_id=100, readers=readers,
        investigation="ABC123", name="scan_0000",
    )  # fmt: skip
    for datafile_id, state in zip(ids, states, strict=True):
        gateway.selections.datafiles[datafile_id].state = state
    return ids


def retry(
    gateway: Gateway, who: dict[str, str] | None = None, key: str | None = None
) -> tuple[int, Any]:
    headers = gateway.bearer(**(who or {}))
    if key is not None:
        headers["Idempotency-Key"] = key
    answer = gateway.client.post("/datasets/10/retry", headers=headers)
    return answer.status_code, answer.json()


def test_an_archiver_retries_only_the_failed_and_canceled_files(gateway: Gateway) -> None:
    ids = dataset(gateway, ["FINISHED", "FAILED", "CANCELED", "FINISHED"])
    code, body = retry(gateway)
    assert code == 202, body
    assert body["dataset_id"] == 10 and body["datafile_ids"] == [ids[1], ids[2]]
    [published] = gateway.publisher.published
    message = published.data
    assert isinstance(message, ArchiveRetryRequested)
    assert message.request_id == body["request_id"]
    assert (message.dataset_id, message.datafile_ids) == (10, [ids[1], ids[2]])
    # The jobs named are those the icat-writer will plan from the same request id.
    records = [gateway.selections.datafiles[i] for i in (ids[1], ids[2])]
    assert len(records) == 2
    jobs = plan_retry(
        body["request_id"],
        [f for f in gateway.selections._files_of({10}) if f.datafile_id in (ids[1], ids[2])],
        instrument_data_cache=gateway.settings.instrument_data_cache,
        tape_archive=gateway.settings.tape_archive,
        tape_root_dir=gateway.settings.tape_root_dir,
        vo=TEST_VO,
        max_files_per_job=gateway.settings.fts3.max_files_per_job,
    )
    assert body["job_ids"] == [job.job_id for job in jobs]
    # Followed like any other request, as an archive of that dataset.
    status = gateway.client.get(f"/requests/{body['request_id']}", headers=gateway.bearer())
    assert status.status_code == 200
    assert status.json()["kind"] == "archive"
    assert status.json()["datasets"][0]["dataset_id"] == 10


def test_a_dataset_in_flight_or_finished_is_409_with_why(gateway: Gateway) -> None:
    ids = dataset(gateway, ["FINISHED", "FAILED", "ACTIVE"])
    code, body = retry(gateway)
    assert code == 409 and "still in flight" in body["detail"] and "ACTIVE" in body["detail"]
    gateway.selections.datafiles[ids[1]].state = "FINISHED"
    gateway.selections.datafiles[ids[2]].state = "FINISHED"
    code, body = retry(gateway)
    assert code == 409 and "FINISHED" in body["detail"]
    assert gateway.publisher.published == []


def test_not_an_archiver_is_403_and_unreadable_is_404(gateway: Gateway) -> None:
    dataset(gateway, ["FAILED"], readers={"simple/root"})
    code, body = retry(gateway, ALICE)
    assert code == 403 and "gateway.archivers" in body["detail"]
    gateway.sessions.users["simple/datastore"] = "ds-pw"  # an archiver ICAT does not let read
    code, body = retry(gateway, {"username": "datastore", "password": "ds-pw"})
    assert code == 404 and "Dataset 10" in body["detail"]
    assert gateway.publisher.published == []


def test_the_same_idempotency_key_replays_the_first_retry(gateway: Gateway) -> None:
    dataset(gateway, ["FAILED", "FINISHED"])
    first = retry(gateway, key="retry-10")
    again = retry(gateway, key="retry-10")
    assert first[0] == again[0] == 202
    assert first[1] == again[1]
    assert len(gateway.publisher.published) == 1
    other = retry(gateway)  # without a key: a retry of its own
    assert other[0] == 202 and other[1]["request_id"] != first[1]["request_id"]
    assert other[1]["job_ids"] != first[1]["job_ids"]


def test_retry_needs_a_session(gateway: Gateway) -> None:
    assert gateway.client.post("/datasets/10/retry").status_code == 401
