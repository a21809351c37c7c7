"""POST /restore: resolved in ICAT as the user, planned tape -> user data cache, published."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from datastore_common.domain.plan import RestoreItem, plan_restore
from datastore_common.errors import PeerUnavailableError
from datastore_common.messages import FileState, LeftOutFile, RestoreRequested, TransferStatus
from datastore_common.ports import StoredFile
from datastore_common.settings import RestoreSettings
from datastore_common.testing.fake_selections import place_of
from datastore_gateway.main import create_app
from datastore_gateway.restore_queue import RestoreQueue
from datastore_gateway.vo import VoSource
from tests.unit.gateway.conftest import TEST_VO, Gateway, build_gateway

FOLDER = "instrument/20XX/ABC123-1/scan/scan_0000"
LOCATIONS = [f"{FOLDER}/file_000{i}.nxs" for i in range(4)]
ROOT_ONLY = {"simple/root"}


def restore(gateway: Gateway, body: Any, *, user: str = "root", **headers: str) -> httpx.Response:
    password = {"root": "pw", "alice": "alice-pw"}[user]
    auth = "simple" if user == "root" else "db"
    bearer = gateway.bearer(user, password, auth)
    return gateway.client.post("/restore", json=body, headers={**bearer, **headers})


@pytest.fixture
def archived(gateway: Gateway) -> list[int]:
    """Investigation 1 / dataset 10: the seed's four files, FINISHED on tape, root's only."""
    return gateway.selections.add_dataset(
        1, 10, LOCATIONS, first_datafile_id=100, readers=ROOT_ONLY
    )


def only_message(gateway: Gateway) -> RestoreRequested:
    [published] = gateway.publisher.published
    assert isinstance(published.data, RestoreRequested)
    return published.data


class TestAccepted:
    def test_dataset_restores_from_tape_to_the_same_place_on_the_user_data_cache(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        answer = restore(gateway, {"dataset_ids": [10]})
        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        assert set(accepted) == {
            "request_id",
            "job_ids",
            "already_online",
            "left_out",
            "already_in_flight",
            "state",
            "queue_position",
            "waiting_on",
        }
        assert accepted["state"] == "SUBMITTED"
        assert accepted["already_online"] == []

        message = only_message(gateway)
        [published] = gateway.publisher.published
        assert published.correlation_id == accepted["request_id"] == message.request_id
        assert published.user == "simple/root"
        [job] = message.jobs
        assert accepted["job_ids"] == [job.job_id]
        assert job.kind == "restore"
        assert [(t.source, t.destination) for t in job.transfers] == [
            (f"root://127.0.0.1:11096//archive/{loc}", f"root://127.0.0.1:11095//{loc}")
            for loc in LOCATIONS
        ]
        assert [t.datafile_id for t in job.transfers] == archived
        assert {t.dataset_id for t in job.transfers} == {10}
        assert job.transfers[0].checksum == "adler32:00000064"

    def test_the_ledger_shows_the_datasets_by_name_and_finds_it_by_investigation(
        self, gateway: Gateway
    ) -> None:
        gateway.selections.add_dataset(
            7, 70, LOCATIONS, first_datafile_id=700, investigation="ABC123", name="scan_0000"
        )
        accepted = restore(gateway, {"investigation_ids": [7]}).json()
        [job] = only_message(gateway).jobs
        assert {
            (t.datafile.investigation, t.datafile.dataset) for t in job.transfers if t.datafile
        } == {("ABC123", "scan_0000")}
        headers = gateway.bearer()
        shown = gateway.client.get(f"/requests/{accepted['request_id']}", headers=headers).json()
        assert shown["datasets"] == [
            {
                "dataset_id": 70,
                "investigation": "ABC123",
                "visit_id": "1",
                "dataset": "scan_0000",
                "datafiles": 4,
            }
        ]
        listed = gateway.client.get("/requests?investigation=ABC123", headers=headers).json()
        assert [item["request_id"] for item in listed["items"]] == [accepted["request_id"]]

    def test_job_ids_are_plan_restores_for_the_request_id(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        accepted = restore(gateway, {"dataset_ids": [10]}).json()
        items = [
            RestoreItem(i, 10, loc, f"adler32:{i:08x}", 1024, place=place_of(loc))
            for i, loc in zip(archived, LOCATIONS, strict=True)
        ]
        jobs = plan_restore(
            accepted["request_id"],
            items,
            tape_archive=gateway.settings.tape_archive,
            tape_root_dir=gateway.settings.tape_root_dir,
            user_data_cache=gateway.settings.user_data_cache,
            vo=TEST_VO,
            max_files_per_job=gateway.settings.fts3.max_files_per_job,
        )
        assert accepted["job_ids"] == [job.job_id for job in jobs]

    def test_investigation_dataset_and_datafile_ids_name_each_file_once(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        other = gateway.selections.add_dataset(
            1, 11, [f"{FOLDER[:-1]}1/a.nxs"], first_datafile_id=200, readers=ROOT_ONLY
        )
        body = {"investigation_ids": [1], "dataset_ids": [10], "datafile_ids": [archived[0]]}
        assert restore(gateway, body).status_code == 202
        [job] = only_message(gateway).jobs
        assert sorted(t.datafile_id or 0 for t in job.transfers) == sorted(archived + other)

    def test_large_selection_is_split_into_jobs_of_at_most_max_files_per_job(
        self, gateway: Gateway
    ) -> None:
        limit = gateway.settings.fts3.max_files_per_job
        gateway.selections.add_dataset(
            2, 20, [f"{FOLDER}/f{i:05d}" for i in range(limit + 5)], first_datafile_id=10_000
        )
        answer = restore(gateway, {"investigation_ids": [2]})
        assert answer.status_code == 202, answer.text
        jobs = only_message(gateway).jobs
        assert [len(j.transfers) for j in jobs] == [limit, 5]
        assert answer.json()["job_ids"] == [j.job_id for j in jobs]

    def test_any_user_may_restore_what_icat_lets_them_read(self, gateway: Gateway) -> None:
        gateway.selections.add_dataset(
            3, 30, LOCATIONS, first_datafile_id=300, readers={"db/alice"}
        )
        answer = restore(gateway, {"dataset_ids": [30]}, user="alice")
        assert answer.status_code == 202, answer.text
        assert gateway.publisher.published[0].user == "db/alice"


class TestRefused:
    def test_no_session_is_401_and_icat_is_not_asked(self, gateway: Gateway) -> None:
        answer = gateway.client.post("/restore", json={"dataset_ids": [10]})
        assert answer.status_code == 401
        assert gateway.selections.calls == 0

    def test_ids_the_user_cannot_read_are_404_naming_them(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        answer = restore(gateway, {"investigation_ids": [1], "dataset_ids": [10]}, user="alice")
        assert answer.status_code == 404
        assert "Investigation 1; Dataset 10" in answer.json()["detail"]
        assert gateway.publisher.published == []

    def test_unknown_ids_are_404_naming_them(self, gateway: Gateway, archived: list[int]) -> None:
        answer = restore(gateway, {"dataset_ids": [10, 99], "datafile_ids": [7]})
        assert answer.status_code == 404
        assert "Dataset 99; Datafile 7" in answer.json()["detail"]

    def test_files_not_yet_archived_are_409_naming_them(self, gateway: Gateway) -> None:
        gateway.selections.add_dataset(4, 40, LOCATIONS[:2], first_datafile_id=400)
        gateway.selections.datafiles[401].state = "ACTIVE"
        gateway.selections.add_dataset(4, 41, LOCATIONS[2:3], first_datafile_id=410, state=None)
        answer = restore(gateway, {"investigation_ids": [4]})
        assert answer.status_code == 409
        detail = answer.json()["detail"]
        assert "401 (ACTIVE)" in detail and "410 (never archived)" in detail
        assert "400" not in detail.split(":", 1)[1]
        assert gateway.publisher.published == []

    @pytest.mark.parametrize(
        "body",
        [{}, {"dataset_ids": []}, {"dataset_ids": ["x"]}, {"dataset_ids": [1], "other": 1}],
    )
    def test_invalid_bodies_are_422_with_a_reason(self, gateway: Gateway, body: Any) -> None:
        answer = restore(gateway, body)
        assert answer.status_code == 422
        assert answer.json()["reason"]

    def test_an_empty_selection_is_422(self, gateway: Gateway) -> None:
        gateway.selections.add_dataset(5, 50, [], first_datafile_id=500)
        answer = restore(gateway, {"dataset_ids": [50]})
        assert answer.status_code == 422
        assert "no datafiles" in answer.json()["detail"]

    def test_too_many_ids_is_413_before_icat_is_asked(self, tmp_path: Any) -> None:
        harness = build_gateway(tmp_path, max_datafiles_per_request=3)
        with harness.client:
            answer = restore(harness, {"datafile_ids": [1, 2, 3, 4]})
        assert answer.status_code == 413
        assert "gateway.max_datafiles_per_request" in answer.json()["detail"]
        assert harness.selections.calls == 0

    def test_a_selection_holding_too_many_files_or_bytes_is_413(self, tmp_path: Any) -> None:
        harness = build_gateway(tmp_path, max_datafiles_per_request=3, max_bytes_per_request=2048)
        harness.selections.add_dataset(1, 10, LOCATIONS, first_datafile_id=100)
        harness.selections.add_dataset(2, 20, LOCATIONS[:3], first_datafile_id=200)
        with harness.client:
            files = restore(harness, {"dataset_ids": [10]})
            size = restore(harness, {"dataset_ids": [20]})
        assert files.status_code == 413
        assert "holds more than 3 datafiles" in files.json()["detail"]
        assert size.status_code == 413 and "3072 bytes" in size.json()["detail"]
        assert harness.publisher.published == []

    def test_icat_down_is_503(self, gateway: Gateway, archived: list[int]) -> None:
        gateway.selections.fail_with = PeerUnavailableError("icat search: connection refused")
        answer = restore(gateway, {"dataset_ids": [10]})
        assert answer.status_code == 503
        assert answer.headers["Retry-After"]

    def test_broker_failure_is_503_and_a_retry_is_accepted(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        gateway.publisher.fail_with = RuntimeError("channel closed")
        key = {"Idempotency-Key": "restore-retry"}
        assert restore(gateway, {"dataset_ids": [10]}, **key).status_code == 503
        gateway.publisher.fail_with = None
        assert restore(gateway, {"dataset_ids": [10]}, **key).status_code == 202
        assert len(gateway.publisher.published) == 1


class TestOnlyWhatDatastoreWrote:
    """A restore trusts what the service wrote: the location its place in ICAT's hierarchy
    gives, and an "Archival state" the functional account wrote."""

    @pytest.mark.parametrize(
        ("location", "why"),
        [
            ("../../../etc/passwd", "'.' or '..' component"),
            (f"/{FOLDER}/file_0001.nxs", "absolute path"),
            (f"{FOLDER}/file_0001.nxs\x07", "control or invisible character U+0007"),
        ],
        ids=["dotdot", "absolute", "control-char"],
    )
    def test_an_unsafe_location_in_icat_is_422_naming_the_file_and_why(
        self, gateway: Gateway, archived: list[int], location: str, why: str
    ) -> None:
        gateway.selections.datafiles[archived[1]].location = location
        answer = restore(gateway, {"dataset_ids": [10]})
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert f"{archived[1]} (location {location!r}" in detail
        assert why in detail
        assert gateway.publisher.published == []

    def test_a_location_pointing_at_another_investigations_file_is_422(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        # Safe as a path, but not where this datafile's investigation/dataset put it.
        elsewhere = "instrument/20XX/SECRET-1/scan/scan_0000/file_0000.nxs"
        gateway.selections.datafiles[archived[0]].location = elsewhere
        answer = restore(gateway, {"dataset_ids": [10]})
        assert answer.status_code == 422
        detail = answer.json()["detail"]
        assert f"location {elsewhere!r} is not where it belongs" in detail
        assert f"Datastore archives this datafile at {LOCATIONS[0]}" in detail
        assert gateway.publisher.published == []

    def test_a_finished_state_someone_else_wrote_does_not_count(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        gateway.selections.datafiles[archived[2]].state_by = "simple/root"  # by hand
        answer = restore(gateway, {"dataset_ids": [10]})
        assert answer.status_code == 409
        detail = answer.json()["detail"]
        assert f"{archived[2]} (FINISHED written by 'simple/root', not by Datastore" in detail
        assert gateway.publisher.published == []


class TestIdempotency:
    def test_same_key_replays_the_first_answer_and_publishes_once(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        key = {"Idempotency-Key": "restore-once"}
        first = restore(gateway, {"dataset_ids": [10]}, **key)
        second = restore(gateway, {"dataset_ids": [10]}, **key)
        assert first.status_code == second.status_code == 202
        assert second.json() == first.json()
        assert len(gateway.publisher.published) == 1
        assert gateway.selections.calls == 1  # a replay asks ICAT nothing

    def test_same_key_for_another_body_is_refused(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        key = {"Idempotency-Key": "restore-reused"}
        assert restore(gateway, {"dataset_ids": [10]}, **key).status_code == 202
        answer = restore(gateway, {"datafile_ids": [archived[0]]}, **key)
        assert answer.status_code == 422
        assert "Idempotency-Key" in answer.json()["detail"]

    def test_key_of_an_archive_is_not_replayed_for_a_restore(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        from tests.support.factories import seed_body

        key = {"Idempotency-Key": "shared-key"}
        headers = {**gateway.bearer(), **key}
        assert gateway.client.post("/archive", json=seed_body(), headers=headers).status_code == 202
        assert restore(gateway, {"dataset_ids": [10]}, **key).status_code == 422


def put_copies(gateway: Gateway, datafile_ids: list[int], *, checksum: str | None = None) -> None:
    """Copies of these datafiles on the user data cache: the catalogue's own (size 1024,
    adler32 from the id, as FakeSelections has them) unless ``checksum`` says otherwise."""
    for datafile_id in datafile_ids:
        datafile = gateway.selections.datafiles[datafile_id]
        url = f"{gateway.settings.user_data_cache.rstrip('/')}//{datafile.location}"
        gateway.user_cache.files[url] = StoredFile(1024, checksum or str(datafile.checksum))


class TestRepeatable:
    def test_files_already_online_are_not_recalled_and_the_request_ends_at_once(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        put_copies(gateway, archived)
        answer = restore(gateway, {"dataset_ids": [10]})
        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        assert accepted["job_ids"] == []
        assert accepted["already_online"] == archived

        message = only_message(gateway)
        assert message.jobs == []  # FTS is asked for nothing
        assert [t.datafile_id for t in message.already_online] == archived
        shown = gateway.client.get(
            f"/requests/{accepted['request_id']}", headers=gateway.bearer()
        ).json()
        assert shown["state"] == "FINISHED"
        [job] = shown["jobs"]
        assert (job["files_done"], job["files_total"]) == (4, 4)
        ledger = gateway.app.state.gateway.ledger
        outbox = asyncio.run(ledger.deliveries(accepted["request_id"]))
        assert [(d.channel, d.state) for d in outbox] == [("broker", "PENDING")]

    def test_only_the_files_not_online_are_recalled(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        put_copies(gateway, archived[:3])
        accepted = restore(gateway, {"dataset_ids": [10]}).json()
        assert accepted["already_online"] == archived[:3]
        [job] = only_message(gateway).jobs
        assert accepted["job_ids"] == [job.job_id]
        assert [t.datafile_id for t in job.transfers] == archived[3:]
        assert not job.overwrite  # nothing there to replace
        shown = gateway.client.get(
            f"/requests/{accepted['request_id']}", headers=gateway.bearer()
        ).json()
        assert shown["state"] == "SUBMITTED"  # until FTS has the job
        assert sum(j["files_total"] for j in shown["jobs"]) == 4

    def test_a_different_file_at_the_destination_is_replaced(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        put_copies(gateway, archived[:1], checksum="adler32:deadbeef")
        accepted = restore(gateway, {"dataset_ids": [10]}).json()
        assert accepted["already_online"] == []
        [job] = only_message(gateway).jobs
        assert [t.datafile_id for t in job.transfers] == archived
        assert job.overwrite

    def test_the_user_data_cache_down_is_a_503_and_nothing_is_accepted(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        gateway.user_cache.fail_with = PeerUnavailableError("udc: connection refused")
        answer = restore(gateway, {"dataset_ids": [10]})
        assert answer.status_code == 503
        assert "user data cache" in answer.json()["detail"]
        assert "Retry-After" in answer.headers
        assert gateway.publisher.published == []

    def test_a_second_restore_after_the_first_finished_finds_its_files_online(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        first = restore(gateway, {"dataset_ids": [10]}).json()
        assert first["already_online"] == []
        put_copies(gateway, archived)  # what FTS wrote for the first
        second = restore(gateway, {"dataset_ids": [10], "datafile_ids": [archived[0]]}).json()
        assert second["request_id"] != first["request_id"]
        assert (second["job_ids"], second["already_online"]) == ([], archived)


class TestPartial:
    @pytest.fixture
    def half_archived(self, gateway: Gateway, archived: list[int]) -> list[int]:
        """The seed's dataset with its last two files not on tape: one in flight, one never."""
        gateway.selections.datafiles[archived[2]].state = "ACTIVE"
        gateway.selections.datafiles[archived[3]].state = None
        return archived

    def test_without_partial_a_dataset_not_all_on_tape_is_409_naming_the_files(
        self, gateway: Gateway, half_archived: list[int]
    ) -> None:
        answer = restore(gateway, {"dataset_ids": [10]})
        assert answer.status_code == 409
        assert f"{half_archived[2]} (ACTIVE)" in answer.json()["detail"]
        assert gateway.publisher.published == []

    def test_partial_restores_the_archived_part_and_lists_what_was_left_out(
        self, gateway: Gateway, half_archived: list[int]
    ) -> None:
        bearer = gateway.bearer()
        answer = gateway.client.post(
            "/restore?partial=true", json={"dataset_ids": [10]}, headers=bearer
        )
        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        assert [f["datafile_id"] for f in accepted["left_out"]] == half_archived[2:]
        assert "still in flight (ACTIVE)" in accepted["left_out"][0]["reason"]
        assert accepted["left_out"][1]["reason"] == "never archived"

        message = only_message(gateway)
        [job] = message.jobs
        assert [t.datafile_id for t in job.transfers] == half_archived[:2]
        assert message.left_out == [LeftOutFile.model_validate(f) for f in accepted["left_out"]]
        shown = gateway.client.get(f"/requests/{accepted['request_id']}", headers=bearer).json()
        assert shown["left_out"] == accepted["left_out"]

    def test_partial_with_nothing_archived_is_still_409(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        for datafile_id in archived:
            gateway.selections.datafiles[datafile_id].state = "SUBMITTED"
        answer = gateway.client.post(
            "/restore?partial=true", json={"dataset_ids": [10]}, headers=gateway.bearer()
        )
        assert answer.status_code == 409
        assert gateway.publisher.published == []

    def test_partial_and_files_already_online_combine(
        self, gateway: Gateway, half_archived: list[int]
    ) -> None:
        put_copies(gateway, half_archived[:2])
        accepted = gateway.client.post(
            "/restore?partial=true", json={"dataset_ids": [10]}, headers=gateway.bearer()
        ).json()
        assert (accepted["job_ids"], accepted["already_online"]) == ([], half_archived[:2])
        assert len(accepted["left_out"]) == 2

    def test_one_key_with_and_without_partial_is_not_replayed_across(
        self, gateway: Gateway, half_archived: list[int]
    ) -> None:
        headers = {**gateway.bearer(), "Idempotency-Key": "partial-or-not"}
        first = gateway.client.post(
            "/restore?partial=true", json={"dataset_ids": [10]}, headers=headers
        )
        assert first.status_code == 202
        again = gateway.client.post("/restore", json={"dataset_ids": [10]}, headers=headers)
        assert again.status_code == 422  # the key names another request


class TestFairShare:
    @pytest.fixture
    def limited(self, tmp_path: Path) -> Iterator[Gateway]:
        """At most 6 files, and 10 KiB, of one user's being recalled at once."""
        gateway = build_gateway(tmp_path)
        settings = gateway.settings.model_copy(
            update={
                "restore": RestoreSettings(
                    max_user_files_in_flight=6, max_user_bytes_in_flight=10 * 1024
                )
            }
        )
        app = create_app(
            settings,
            sessions=gateway.sessions,
            publisher=gateway.publisher,
            vo=TEST_VO,
            selections=gateway.selections,
            transfers=gateway.transfers,
            vocabulary=gateway.vocabulary,
            user_cache=gateway.user_cache,
        )
        gateway.app, gateway.client, gateway.settings = app, TestClient(app), settings
        for dataset in (10, 20):
            gateway.selections.add_dataset(
                dataset // 10,
                dataset,
                [loc.replace("ABC123", f"ABC{dataset}") for loc in LOCATIONS],
                first_datafile_id=dataset * 10,
            )
        with gateway.client:
            yield gateway

    def end(self, gateway: Gateway, request_id: str) -> None:
        """FTS reports every job of the request FINISHED."""
        ledger = gateway.app.state.gateway.ledger
        for published in gateway.publisher.published:
            data = published.data
            if isinstance(data, RestoreRequested) and data.request_id == request_id:
                for job in data.jobs:
                    status = TransferStatus(
                        request_id=request_id,
                        kind="restore",
                        job_id=job.job_id,
                        fts_endpoint="https://fts",
                        job_state="FINISHED",
                        files=[
                            FileState(source=t.source, destination=t.destination, state="FINISHED")
                            for t in job.transfers
                        ],
                    )
                    asyncio.run(ledger.apply_status(status))

    def starter(self, gateway: Gateway) -> RestoreQueue:
        """The gateway's queue loop, driven one pass at a time."""
        return RestoreQueue(
            gateway.app.state.gateway.ledger,
            gateway.settings,
            publisher=gateway.publisher,
            user_cache=gateway.user_cache,
            vo=VoSource(vo=TEST_VO),
        )

    def test_a_user_past_their_share_waits_queued_and_starts_when_theirs_end(
        self, limited: Gateway
    ) -> None:
        first = restore(limited, {"dataset_ids": [10]})
        assert first.status_code == 202, first.text
        answer = restore(limited, {"dataset_ids": [20]})
        assert answer.status_code == 202, answer.text
        queued = answer.json()
        assert (queued["state"], queued["queue_position"], queued["job_ids"]) == ("QUEUED", 1, [])
        assert "restore.max_user_files_in_flight" in queued["waiting_on"]
        assert "4 being recalled" in queued["waiting_on"]
        assert len(limited.publisher.published) == 1  # nothing published for it yet
        shown = limited.client.get(
            f"/requests/{queued['request_id']}", headers=limited.bearer()
        ).json()
        assert shown["state"] == "QUEUED"
        assert "position 1" in shown["waiting_on"]
        starter = self.starter(limited)
        assert asyncio.run(starter.start_due()) == []  # still no room

        self.end(limited, first.json()["request_id"])
        assert asyncio.run(starter.start_due()) == [queued["request_id"]]
        [_, started] = limited.publisher.published
        assert isinstance(started.data, RestoreRequested)
        assert started.data.request_id == queued["request_id"]
        assert started.user == "simple/root"
        shown = limited.client.get(
            f"/requests/{queued['request_id']}", headers=limited.bearer()
        ).json()
        assert shown["state"] == "SUBMITTED"
        assert sum(job["files_total"] for job in shown["jobs"]) == 4
        assert asyncio.run(starter.start_due()) == []  # started once

    def test_the_dry_run_says_it_would_queue_and_why(self, limited: Gateway) -> None:
        restore(limited, {"dataset_ids": [10]})
        preview = limited.client.post(
            "/restore?dry_run=true", json={"dataset_ids": [20]}, headers=limited.bearer()
        ).json()
        assert "restore.max_user_files_in_flight" in preview["would_queue"]
        assert limited.client.get("/restore-queue", headers=limited.bearer()).json()["items"] == []

    def test_a_priority_user_is_served_first_and_their_jobs_carry_it(
        self, limited: Gateway
    ) -> None:
        settings = limited.settings
        restore_settings = settings.restore.model_copy(
            update={"user_priorities": {"db/alice": 2}, "max_bytes_staging": 4 * 1024}
        )
        limited.settings = settings.model_copy(update={"restore": restore_settings})
        limited.app.state.gateway.settings = limited.settings
        first = restore(limited, {"dataset_ids": [10]}).json()  # 4 KiB: the facility is full
        plain = restore(limited, {"datafile_ids": [200]}).json()
        favoured = restore(limited, {"datafile_ids": [201]}, user="alice").json()
        assert (plain["state"], favoured["state"]) == ("QUEUED", "QUEUED")
        assert (plain["queue_position"], favoured["queue_position"]) == (1, 1)  # alice: first
        self.end(limited, first["request_id"])
        started = asyncio.run(self.starter(limited).start_due())
        assert started == [favoured["request_id"], plain["request_id"]]
        [job] = limited.publisher.published[1].data.jobs
        assert job.priority == 5  # fts3.priority 3 + 2
        [job] = limited.publisher.published[2].data.jobs
        assert job.priority is None  # fts3.priority, as configured

    def test_bytes_count_too(self, limited: Gateway) -> None:
        for datafile in limited.selections.datafiles.values():
            datafile.filesize = 2048
        assert restore(limited, {"dataset_ids": [10]}).json()["state"] == "SUBMITTED"  # 8 KiB
        queued = restore(limited, {"datafile_ids": [200, 201]}).json()  # 6 files, but 12 KiB
        assert queued["state"] == "QUEUED"
        assert "restore.max_user_bytes_in_flight" in queued["waiting_on"]

    def test_a_restore_past_a_cap_alone_is_413(self, limited: Gateway) -> None:
        for datafile in limited.selections.datafiles.values():
            datafile.filesize = 4096
        refused = restore(limited, {"dataset_ids": [10]})  # 16 KiB > 10 KiB
        assert refused.status_code == 413, refused.text
        assert "split it" in refused.json()["detail"]
        assert limited.publisher.published == []

    def test_the_queue_is_shown_to_admins_and_each_user_sees_their_own(
        self, limited: Gateway
    ) -> None:
        restore(limited, {"dataset_ids": [10]})
        queued = restore(limited, {"dataset_ids": [20]}).json()
        listing = limited.client.get("/restore-queue", headers=limited.bearer())
        assert listing.status_code == 200, listing.text
        [entry] = listing.json()["items"]
        assert (entry["request_id"], entry["position"], entry["files"]) == (
            queued["request_id"],
            1,
            4,
        )
        alice = limited.bearer("alice", "alice-pw", "db")
        assert limited.client.get("/restore-queue", headers=alice).json()["items"] == []

    def test_cancelling_a_queued_restore_takes_it_out_of_the_queue(self, limited: Gateway) -> None:
        restore(limited, {"dataset_ids": [10]})
        queued = restore(limited, {"dataset_ids": [20]}).json()
        answer = limited.client.delete(
            f"/requests/{queued['request_id']}", headers=limited.bearer()
        )
        assert answer.status_code == 202, answer.text
        assert limited.client.get("/restore-queue", headers=limited.bearer()).json()["items"] == []

    def test_a_start_that_fails_goes_back_to_its_place(self, limited: Gateway) -> None:
        first = restore(limited, {"dataset_ids": [10]}).json()
        queued = restore(limited, {"dataset_ids": [20]}).json()
        self.end(limited, first["request_id"])
        limited.user_cache.fail_with = PeerUnavailableError("udc: connection refused")
        starter = self.starter(limited)
        assert asyncio.run(starter.start_due()) == []
        [entry] = limited.client.get("/restore-queue", headers=limited.bearer()).json()["items"]
        assert (entry["request_id"], entry["state"]) == (queued["request_id"], "QUEUED")
        assert "starting it failed" in entry["waiting_on"]
        limited.user_cache.recover()
        assert asyncio.run(starter.start_due()) == [queued["request_id"]]

    def test_files_already_online_take_no_share(self, limited: Gateway) -> None:
        assert restore(limited, {"dataset_ids": [10]}).status_code == 202
        put_copies(limited, [200, 201, 202, 203])  # dataset 20 is on the user data cache
        accepted = restore(limited, {"dataset_ids": [20]})
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["job_ids"] == []

    def test_another_users_restores_do_not_count(self, limited: Gateway) -> None:
        assert restore(limited, {"dataset_ids": [10]}).json()["state"] == "SUBMITTED"
        other = restore(limited, {"dataset_ids": [20]}, user="alice").json()
        assert other["state"] == "SUBMITTED"


class TestDryRun:
    def dry_run(self, gateway: Gateway, body: Any, flag: str = "dry_run") -> dict[str, Any]:
        answer = gateway.client.post(f"/restore?{flag}=true", json=body, headers=gateway.bearer())
        assert answer.status_code == 200, answer.text
        preview: dict[str, Any] = answer.json()
        return preview

    @pytest.mark.parametrize("flag", ["dry_run", "get_size"])
    def test_it_tells_files_bytes_online_and_tape_and_submits_nothing(
        self, gateway: Gateway, archived: list[int], flag: str
    ) -> None:
        put_copies(gateway, archived[:1])
        preview = self.dry_run(gateway, {"dataset_ids": [10]}, flag)
        assert preview["dry_run"] is True
        assert (preview["files"], preview["bytes"]) == (4, 4 * 1024)
        assert (preview["already_online"], preview["already_online_bytes"]) == (1, 1024)
        assert (preview["from_tape"], preview["from_tape_bytes"]) == (3, 3 * 1024)
        assert (preview["would_queue"], preview["refused"], preview["needs_confirm"]) == (
            None,
            None,
            False,
        )
        assert gateway.publisher.published == []
        ledger = gateway.app.state.gateway.ledger
        destination = f"{gateway.settings.user_data_cache.rstrip('/')}//{LOCATIONS[3]}"
        assert asyncio.run(ledger.held_recalls([destination])) == {}  # nothing claimed
        real = restore(gateway, {"dataset_ids": [10]}).json()
        assert (real["already_in_flight"], len(real["job_ids"])) == ([], 1)

    def test_its_numbers_match_the_real_run(self, gateway: Gateway, archived: list[int]) -> None:
        put_copies(gateway, archived[2:])
        preview = self.dry_run(gateway, {"dataset_ids": [10]})
        accepted = restore(gateway, {"dataset_ids": [10]}).json()
        [job] = only_message(gateway).jobs
        assert preview["from_tape"] == len(job.transfers)
        assert preview["already_online"] == len(accepted["already_online"])

    def test_files_another_restore_is_recalling_are_counted_as_in_flight(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        restore(gateway, {"datafile_ids": archived[:2]})
        preview = self.dry_run(gateway, {"dataset_ids": [10]})
        assert (preview["already_in_flight"], preview["from_tape"]) == (2, 2)

    def test_the_usual_refusals_hold(self, gateway: Gateway, archived: list[int]) -> None:
        answer = gateway.client.post(
            "/restore?dry_run=true", json={"dataset_ids": [999]}, headers=gateway.bearer()
        )
        assert answer.status_code == 404


class TestConfirm:
    @pytest.fixture
    def guarded(self, tmp_path: Path) -> Iterator[Gateway]:
        """Restores above 3 KiB need confirm=true."""
        gateway = build_gateway(tmp_path)
        settings = gateway.settings.model_copy(
            update={"restore": RestoreSettings(confirm_above_bytes=3 * 1024)}
        )
        app = create_app(
            settings,
            sessions=gateway.sessions,
            publisher=gateway.publisher,
            vo=TEST_VO,
            selections=gateway.selections,
            transfers=gateway.transfers,
            vocabulary=gateway.vocabulary,
            user_cache=gateway.user_cache,
        )
        gateway.app, gateway.client, gateway.settings = app, TestClient(app), settings
        gateway.selections.add_dataset(1, 10, LOCATIONS, first_datafile_id=100)
        with gateway.client:
            yield gateway

    def test_a_big_restore_without_confirm_is_428_with_its_size(self, guarded: Gateway) -> None:
        refused = restore(guarded, {"dataset_ids": [10]})
        assert refused.status_code == 428, refused.text
        assert "4096 bytes" in refused.json()["detail"]
        assert "confirm=true" in refused.json()["detail"]
        assert guarded.publisher.published == []
        preview = guarded.client.post(
            "/restore?dry_run=true", json={"dataset_ids": [10]}, headers=guarded.bearer()
        ).json()
        assert preview["needs_confirm"] is True
        confirmed = guarded.client.post(
            "/restore?confirm=true", json={"dataset_ids": [10]}, headers=guarded.bearer()
        )
        assert confirmed.status_code == 202, confirmed.text

    def test_a_small_one_needs_no_confirm(self, guarded: Gateway) -> None:
        assert restore(guarded, {"datafile_ids": [100, 101]}).status_code == 202
