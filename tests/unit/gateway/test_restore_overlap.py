"""Overlapping restores: a second restore of files a first is still recalling follows the
first's transfers (no second recall, no overwrite of its half-written copy) and ends as
they do; the claims on destinations are atomic and released as files end."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from datastore_common.domain.ledger import in_flight_job_id, new_request
from datastore_common.messages import (
    FileState,
    PlannedJob,
    PlannedTransfer,
    RequestFailed,
    RestoreRequested,
    SharedTransfer,
    TransferStatus,
)
from datastore_gateway.ledger import Ledger
from tests.unit.gateway.conftest import Gateway
from tests.unit.gateway.test_restore import archived, put_copies, restore

__all__ = ["archived"]  # the fixture, shared with test_restore


def messages(gateway: Gateway) -> list[RestoreRequested]:
    return [p.data for p in gateway.publisher.published if isinstance(p.data, RestoreRequested)]


def report(gateway: Gateway, request_id: str, state: str, *, only: int | None = None) -> None:
    """FTS reports the request's jobs' files in ``state`` (``only``: its first file alone)."""
    ledger = gateway.app.state.gateway.ledger
    [message] = [m for m in messages(gateway) if m.request_id == request_id]
    for job in message.jobs:
        transfers = job.transfers if only is None else job.transfers[:only]
        status = TransferStatus(
            request_id=request_id,
            kind="restore",
            job_id=job.job_id,
            fts_endpoint="https://fts",
            job_state=state if only is None else "ACTIVE",
            files=[
                FileState(source=t.source, destination=t.destination, state=state)
                for t in transfers
            ],
        )
        asyncio.run(ledger.apply_status(status))


def again(gateway: Gateway, body: dict, key: str) -> dict:
    """The same body restored again as a new request (its own Idempotency-Key: not a replay)."""
    answer = restore(gateway, body, **{"Idempotency-Key": key})
    assert answer.status_code == 202, answer.text
    accepted: dict = answer.json()
    return accepted


def shown(gateway: Gateway, request_id: str) -> dict:
    answer = gateway.client.get(f"/requests/{request_id}", headers=gateway.bearer())
    assert answer.status_code == 200, answer.text
    body: dict = answer.json()
    return body


class TestSecondRestoreFollowsTheFirst:
    def test_files_in_flight_are_not_recalled_twice(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        first = restore(gateway, {"dataset_ids": [10]}).json()
        second = again(gateway, {"dataset_ids": [10]}, "second")
        assert second["request_id"] != first["request_id"]
        assert (second["job_ids"], second["already_in_flight"]) == ([], archived)
        [_, message] = messages(gateway)
        assert message.jobs == []  # FTS hears of nothing new
        assert {t.recalled_by for t in message.already_in_flight} == {first["request_id"]}
        assert shown(gateway, second["request_id"])["state"] == "SUBMITTED"

    def test_the_first_ones_half_written_copy_is_not_taken_for_a_different_file(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        first = restore(gateway, {"dataset_ids": [10]}).json()
        put_copies(gateway, archived, checksum="adler32:0badc0de")  # partly copied
        second = again(gateway, {"dataset_ids": [10]}, "second")
        assert second["already_in_flight"] == archived
        assert messages(gateway)[1].jobs == []  # nothing overwrites the first's copies
        assert first["job_ids"]

    def test_only_the_files_not_in_flight_are_recalled(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        first = restore(gateway, {"datafile_ids": archived[:2]}).json()
        second = again(gateway, {"dataset_ids": [10]}, "second")
        assert second["already_in_flight"] == archived[:2]
        [job] = messages(gateway)[1].jobs
        assert [t.datafile_id for t in job.transfers] == archived[2:]
        assert first["request_id"] not in job.job_id

    def test_the_second_ends_as_the_firsts_files_end_with_its_own_completion(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        first = restore(gateway, {"dataset_ids": [10]}).json()["request_id"]
        second = again(gateway, {"dataset_ids": [10]}, "second")["request_id"]
        report(gateway, first, "FINISHED", only=1)
        [job] = shown(gateway, second)["jobs"]
        assert job["job_id"] == in_flight_job_id(second)
        assert (job["files_done"], job["files_total"]) == (1, 4)
        assert shown(gateway, second)["state"] == "SUBMITTED"

        report(gateway, first, "FINISHED")
        assert shown(gateway, first)["state"] == "FINISHED"
        following = shown(gateway, second)
        assert following["state"] == "FINISHED"
        assert (following["jobs"][0]["files_done"], following["jobs"][0]["files_total"]) == (4, 4)
        ledger = gateway.app.state.gateway.ledger
        assert [d.channel for d in asyncio.run(ledger.deliveries(second))] == ["broker"]

    def test_a_file_the_first_fails_fails_for_the_second_and_is_free_to_recall_again(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        first = restore(gateway, {"dataset_ids": [10]}).json()["request_id"]
        second = again(gateway, {"dataset_ids": [10]}, "second")["request_id"]
        report(gateway, first, "FAILED")
        assert shown(gateway, second)["state"] == "FAILED"
        third = again(gateway, {"dataset_ids": [10]}, "third")
        assert third["already_in_flight"] == []  # the claims went with the files' end
        assert len(messages(gateway)[2].jobs) == 1

    def test_a_first_given_up_as_a_whole_fails_the_files_waiting_on_it(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        first = restore(gateway, {"dataset_ids": [10]}).json()["request_id"]
        second = again(gateway, {"dataset_ids": [10]}, "second")["request_id"]
        ledger = gateway.app.state.gateway.ledger
        asyncio.run(
            ledger.fail(
                RequestFailed(
                    request_id=first, kind="restore", failure_class="system", reason="fts gone"
                )
            )
        )
        following = shown(gateway, second)
        assert following["state"] == "FAILED"
        assert following["jobs"][0]["files_failed"] == 4

    def test_followed_files_take_no_share_of_the_follower(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        restore(gateway, {"dataset_ids": [10]})
        again(gateway, {"dataset_ids": [10]}, "second")
        ledger = gateway.app.state.gateway.ledger
        usage = asyncio.run(ledger.in_flight("simple/root"))
        assert usage.files == 4  # the first's four, not eight

    def test_cancelling_the_follower_leaves_the_first_alone(
        self, gateway: Gateway, archived: list[int]
    ) -> None:
        first = restore(gateway, {"dataset_ids": [10]}).json()
        second = again(gateway, {"dataset_ids": [10]}, "second")["request_id"]
        answer = gateway.client.delete(f"/requests/{second}", headers=gateway.bearer())
        assert answer.status_code == 202, answer.text
        assert answer.json()["canceled_job_ids"] == []
        assert shown(gateway, second)["state"] == "CANCELED"
        assert shown(gateway, first["request_id"])["state"] == "SUBMITTED"


def restore_of(request_id: str, names: list[str]) -> RestoreRequested:
    transfers = [
        PlannedTransfer(source=f"root://tape//{n}", destination=f"root://udc//{n}", filesize=1)
        for n in names
    ]
    job = PlannedJob(job_id=f"job-{request_id}", sid="s", kind="restore", transfers=transfers)
    return RestoreRequested(request_id=request_id, jobs=[job])


class TestClaims:
    async def test_two_restores_claiming_at_once_never_both_hold_a_destination(
        self, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path}/ledger.sqlite"
        one, two = Ledger(url), Ledger(url)  # two replicas, one database
        await one.open()
        await two.open()
        try:
            wanted = [f"root://udc//f{i}" for i in range(50)]
            held_by_others = await asyncio.gather(
                one.claim_recalls("req-1", wanted), two.claim_recalls("req-2", wanted[::-1])
            )
            # One of them took every destination first; the other follows it for each.
            assert sorted(len(h) for h in held_by_others) == [0, 50]
            assert {r for h in held_by_others for r in h.values()} in ({"req-1"}, {"req-2"})
        finally:
            await one.close()
            await two.close()

    async def test_a_claim_whose_request_never_reached_the_ledger_lapses(
        self, tmp_path: Path
    ) -> None:
        now = [1000.0]
        ledger = Ledger(f"sqlite:///{tmp_path}/ledger.sqlite", clock=lambda: now[0])
        await ledger.open()
        try:
            assert await ledger.claim_recalls("lost", ["root://udc//a"]) == {}
            assert await ledger.claim_recalls("next", ["root://udc//a"]) == {
                "root://udc//a": "lost"
            }
            now[0] += 3600
            assert await ledger.claim_recalls("later", ["root://udc//a"]) == {}
        finally:
            await ledger.close()

    async def test_a_follower_recorded_after_its_leader_finished_finishes_too(
        self, tmp_path: Path
    ) -> None:
        ledger = Ledger(f"sqlite:///{tmp_path}/ledger.sqlite")
        await ledger.open()
        try:
            leader = restore_of("req-1", ["a"])
            await ledger.claim_recalls("req-1", ["root://udc//a"])
            await ledger.record(new_request(leader, owner="root", source="http"))
            held = await ledger.claim_recalls("req-2", ["root://udc//a"])
            assert held == {"root://udc//a": "req-1"}
            await ledger.apply_status(
                TransferStatus(
                    request_id="req-1",
                    kind="restore",
                    job_id="job-req-1",
                    fts_endpoint="https://fts",
                    job_state="FINISHED",
                    files=[
                        FileState(
                            source="root://tape//a", destination="root://udc//a", state="FINISHED"
                        )
                    ],
                )
            )
            shared = SharedTransfer(**leader.jobs[0].transfers[0].model_dump(), recalled_by="req-1")
            follower = RestoreRequested(request_id="req-2", already_in_flight=[shared])
            await ledger.record(new_request(follower, owner="alice", source="http"))
            record = await ledger.get("req-2")
            assert record is not None
            assert record.state == "FINISHED"
        finally:
            await ledger.close()


async def test_an_earlier_ledger_gets_its_restores_in_flight_as_claims(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    old = Ledger(f"sqlite:///{path}")
    await old.open()
    await old.record(new_request(restore_of("req-1", ["a", "b"]), owner="root", source="http"))
    await old.close()
    with sqlite3.connect(path) as raw:  # as an earlier release left it
        raw.execute("DROP TABLE ledger_recalls")
        raw.execute("DROP INDEX ledger_files_follows")
        raw.execute("ALTER TABLE ledger_files DROP COLUMN follows")

    ledger = Ledger(f"sqlite:///{path}")
    await ledger.open()
    try:
        held = await ledger.claim_recalls("req-2", ["root://udc//a", "root://udc//c"])
        assert held == {"root://udc//a": "req-1"}
    finally:
        await ledger.close()
