"""A request given up anywhere ends FAILED in ICAT where its entities exist (on fakes)."""

from __future__ import annotations

import asyncio

import pytest

from datastore_common.domain.archival import ARCHIVAL_FAILURE, ARCHIVAL_IDS, ARCHIVAL_STATE
from datastore_common.domain.failures import give_up_events
from datastore_common.messages import RequestFailed, TransferStatus, wrap
from tests.support.factories import seed_investigation
from tests.unit.icat_writer.test_handlers import ENDPOINT, World

REASON = "gave up after 54 attempts: PeerTimeoutError: xrootd query checksum: expired"


@pytest.fixture
def world() -> World:
    return World()


async def record_all(world: World, events: list[object]) -> None:
    for event in events:
        if isinstance(event, TransferStatus):
            await world.writer.record_transfer_status(
                wrap(event, source="tests", correlation_id=event.request_id)
            )


async def test_given_up_after_registration_every_file_and_the_dataset_end_failed(
    world: World,
) -> None:
    investigation = seed_investigation(files=3)
    world.put_sources(investigation)
    envelope = world.request(investigation)
    await world.register(envelope)  # registered, then (say) every FTS submission gave up

    events = give_up_events(envelope.data, REASON, "system", fts_endpoint=ENDPOINT)
    await record_all(world, events)

    dataset_id = world.dataset(investigation)
    assert set(world.file_states(dataset_id).values()) == {"FAILED"}
    datafile = next(iter(world.catalogue.datafiles_in(dataset_id).values()))
    assert world.catalogue.archival("Datafile", datafile.id)[ARCHIVAL_FAILURE] == (
        f"system error: {REASON}"
    )
    assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FAILED"
    [failed] = [e for e in events if isinstance(e, RequestFailed)]
    assert failed.job_ids == [job.job_id for job in envelope.data.jobs]


async def test_given_up_before_registration_files_are_found_by_their_keys(world: World) -> None:
    investigation = seed_investigation(files=2)
    world.put_sources(investigation)
    first = world.request(investigation)
    await world.register(first)
    # The same datafiles asked again by a request whose plan carries no ICAT ids yet.
    second = world.request(investigation)
    assert all(t.datafile_id is None for job in second.data.jobs for t in job.transfers)
    events = give_up_events(second.data, REASON, "system", fts_endpoint=ENDPOINT)
    # Each event names the files by key; here they are the first request's jobs' files.
    renamed = [
        e.model_copy(update={"job_id": first.data.jobs[0].job_id})
        if isinstance(e, TransferStatus)
        else e
        for e in events
    ]
    await record_all(world, renamed)

    assert set(world.file_states(world.dataset(investigation)).values()) == {"FAILED"}


async def test_given_up_with_nothing_in_icat_records_nothing_and_does_not_fail(
    world: World,
) -> None:
    investigation = seed_investigation(files=2)
    envelope = world.request(investigation)
    await record_all(world, give_up_events(envelope.data, REASON, "user", fts_endpoint=ENDPOINT))
    assert world.catalogue.writes == 0


async def test_an_event_of_another_job_than_the_files_current_one_changes_nothing(
    world: World,
) -> None:
    investigation = seed_investigation(files=2)
    world.put_sources(investigation)
    envelope = world.request(investigation)
    await world.register(envelope)
    [job] = world.registered()[-1].jobs
    earlier_attempt = job.model_copy(update={"job_id": "0" * 36})
    writes = world.catalogue.writes

    await world.report(earlier_attempt, ["FAILED", "FAILED"])

    assert world.catalogue.writes == writes
    assert set(world.file_states(world.dataset(investigation)).values()) == {"SUBMITTED"}


async def test_two_requests_archiving_one_new_dataset_at_once_make_one_set_of_jobs(
    world: World,
) -> None:
    investigation = seed_investigation(files=2)
    world.put_sources(investigation)
    first, second = world.request(investigation), world.request(investigation)

    await asyncio.gather(world.register(first), world.register(second))

    [registered] = world.registered()
    winner, loser = (
        (first, second)
        if registered.request_id == first.data.request_id
        else (
            second,
            first,
        )
    )
    assert [j.job_id for j in registered.jobs] == [j.job_id for j in winner.data.jobs]
    [refusal] = [s for s in world.statuses() if s.request_id == loser.data.request_id]
    assert refusal.job_state == "FAILED"
    assert "already archived or being archived" in (refusal.reason or "")
    assert winner.data.jobs[0].job_id in (refusal.reason or "")
    assert set(world.file_states(world.dataset(investigation)).values()) == {"SUBMITTED"}


async def test_two_requests_archiving_a_failed_dataset_again_at_once_make_one_set_of_jobs(
    world: World,
) -> None:
    investigation = seed_investigation(files=2)
    world.put_sources(investigation)
    await world.register(world.request(investigation))
    [job] = world.registered()[0].jobs
    await world.report(job, ["FAILED", "FAILED"], reasons=["timeout", "timeout"])
    dataset_id = world.dataset(investigation)
    assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FAILED"
    first, second = world.request(investigation), world.request(investigation)

    await asyncio.gather(world.register(first), world.register(second))

    [_, again] = world.registered()
    assert again.request_id in (first.data.request_id, second.data.request_id)
    loser = second if again.request_id == first.data.request_id else first
    [refusal] = [s for s in world.statuses() if s.request_id == loser.data.request_id]
    assert refusal.job_state == "FAILED"
    assert "already archived or being archived" in (refusal.reason or "")
    assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_IDS] == ",".join(
        sorted(j.job_id for j in again.jobs)
    )


async def test_a_finisheddirty_dataset_is_archived_again_without_copying_what_is_on_tape(
    world: World,
) -> None:
    investigation = seed_investigation(files=2)
    world.put_sources(investigation)
    await world.register(world.request(investigation))
    [job] = world.registered()[0].jobs
    await world.report(job, ["FINISHED", "FAILED"], reasons=[None, "timeout"])
    dataset_id = world.dataset(investigation)
    assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FINISHEDDIRTY"

    retry = world.request(investigation)
    await world.register(retry)

    [again] = world.registered()[1].jobs
    assert [t.datafile.datafile for t in again.transfers if t.datafile] == ["file_0001.nxs"]
    assert world.file_states(dataset_id) == {
        "file_0000.nxs": "FINISHED",
        "file_0001.nxs": "SUBMITTED",
    }
    [kept] = [s for s in world.statuses() if s.request_id == retry.data.request_id]
    assert [(f.state, f.reason) for f in kept.files] == [
        ("FINISHED", "already on tape from an earlier request: not copied again")
    ]
    await world.report(again, ["FINISHED"])
    assert world.catalogue.archival("Dataset", dataset_id)[ARCHIVAL_STATE] == "FINISHED"
