"""The icat-writer answers an instrument's archive request: accepted once registered, or
rejected with the reason and nothing written (fakes: FakeCatalogue, FakeVocabulary)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from datastore_common.adapters.rabbitmq.consumer import RefusedMessage
from datastore_common.domain.answers import answer_id
from datastore_common.domain.senders import RefusedSenderError
from datastore_common.errors import InvalidMessageError, PermanentError
from datastore_common.messages import (
    ArchiveAccepted,
    ArchiveRegistered,
    ArchiveRejected,
    ArchiveRequested,
    Envelope,
    InvestigationSpec,
    RequestFailed,
    binding_key,
    wrap,
)
from datastore_common.settings import DatastoreSettings
from datastore_common.testing.fake_catalogue import FakeCatalogue
from datastore_common.testing.fake_vocabulary import FakeVocabulary
from datastore_common.testing.fakes import FakeStorage, RecordingPublisher
from datastore_icat_writer.answers import give_up_answerer, refusal_answerer
from datastore_icat_writer.bootstrap import bootstrap
from tests.support.factories import seed_investigation
from tests.unit.icat_writer.test_handlers import ENDPOINT, VO, World

DAQ = "daq-abc"
OWNER = "simple/abc"


def instrument_settings(**gateway: Any) -> DatastoreSettings:
    return DatastoreSettings(
        fts3={"endpoint": ENDPOINT, "vo": VO},  # type: ignore[arg-type]
        instruments=[{"broker_user": DAQ, "icat_user": OWNER, "instruments": ["instrument"]}],  # type: ignore[list-item]
        gateway={"public_url": "https://datastore.example", **gateway},  # type: ignore[arg-type]
    )


class InstrumentWorld(World):
    def __init__(self, **gateway: Any) -> None:
        self.settings = instrument_settings(**gateway)
        self.catalogue = FakeCatalogue()
        self.storage = FakeStorage()
        self.publisher = RecordingPublisher()
        self.vocabulary = FakeVocabulary()
        self.writer = bootstrap(
            self.settings,
            publisher=self.publisher,
            catalogue=self.catalogue,
            storage=self.storage,
            vocabulary=self.vocabulary,
        )

    def from_instrument(
        self, investigation: InvestigationSpec, request_id: str | None = None, **kw: Any
    ) -> Envelope[ArchiveRequested]:
        """As the consumer hands it over: source = the account's broker user, user = its
        ICAT identity (domain.senders.authorise)."""
        envelope = self.request(investigation, request_id, planned=False, **kw)
        return envelope.model_copy(update={"source": DAQ, "user": OWNER})

    def answers(self) -> list[Any]:
        return [p for p in self.publisher.published if p.data.TYPE.startswith("datastore.archive.")]


async def test_an_instrument_request_is_accepted_once_registered_then_its_jobs_go_on() -> None:
    world = InstrumentWorld()
    investigation = seed_investigation()
    world.put_sources(investigation)
    envelope = world.from_instrument(investigation)
    await world.register(envelope)

    types = [p.data.TYPE for p in world.publisher.published]
    assert types == [ArchiveAccepted.TYPE, ArchiveRegistered.TYPE]  # accepted first
    published = world.publisher.published[0]
    accepted = published.data
    assert isinstance(accepted, ArchiveAccepted)
    request_id = envelope.data.request_id
    own_plan = world.plan(investigation, request_id)
    assert accepted.request_id == request_id
    assert accepted.job_ids == [job.job_id for job in own_plan]
    assert accepted.instrument == DAQ and accepted.owner == OWNER
    assert accepted.status_url == f"https://datastore.example/requests/{request_id}"
    assert accepted.request_message_id == str(envelope.id)
    assert accepted.datasets == [
        {
            "investigation": investigation.name,
            "visit_id": "1",
            "dataset": "scan_0000",
            "datafiles": 4,
        }
    ]
    assert accepted.routing_key() == f"{ArchiveAccepted.TYPE}.{DAQ}"
    assert published.user == OWNER
    assert published.message_id == answer_id(request_id, "accepted")
    assert world.file_states(world.dataset(investigation)) == dict.fromkeys(
        ["file_0000.nxs", "file_0001.nxs", "file_0002.nxs", "file_0003.nxs"], "SUBMITTED"
    )


async def test_publishing_it_again_creates_nothing_and_gets_the_same_answer() -> None:
    world = InstrumentWorld()
    investigation = seed_investigation()
    world.put_sources(investigation)
    request_id = str(uuid.uuid4())
    await world.register(world.from_instrument(investigation, request_id))
    entities = (len(world.catalogue.investigations), len(world.catalogue.datafiles))
    first = world.publisher.published[0]
    # A new message (a new envelope id) with the same request: after a lost confirm.
    await world.register(world.from_instrument(investigation, request_id))
    accepted = world.publisher.of_type(ArchiveAccepted)
    assert len(accepted) == 2 and accepted[0] == accepted[1].model_copy(
        update={"request_message_id": accepted[0].request_message_id}
    )
    again = [p for p in world.publisher.published if isinstance(p.data, ArchiveAccepted)][1]
    assert again.message_id == first.message_id  # one answer: receivers de-duplicate by id
    assert (len(world.catalogue.investigations), len(world.catalogue.datafiles)) == entities
    assert world.publisher.of_type(ArchiveRejected) == []
    registered = world.publisher.of_type(ArchiveRegistered)
    assert registered[0] == registered[1]  # the same jobs, the same ids


@pytest.mark.parametrize(
    ("change", "rejection", "named"),
    [
        (
            {"instrument": {"name": "instrument"}, "facilityCycle": {"name": "19XX"}},
            "unknown_names",
            "unknown facilityCycle '19XX'",
        ),
        ({"investigationType": {"name": "nope"}}, "unknown_names", "investigationType 'nope'"),
    ],
)
async def test_names_icat_does_not_know_are_rejected_and_nothing_is_written(
    change: dict[str, Any], rejection: str, named: str
) -> None:
    world = InstrumentWorld()
    investigation = seed_investigation(**change)
    world.put_sources(investigation)
    envelope = world.from_instrument(investigation)
    await world.register(envelope)
    [published] = world.publisher.published
    rejected = published.data
    assert isinstance(rejected, ArchiveRejected)
    assert rejected.rejection == rejection and named in rejected.reason
    assert rejected.request_id == envelope.data.request_id
    assert rejected.routing_key() == f"{ArchiveRejected.TYPE}.{DAQ}"
    assert not rejected.mandatory()  # an instrument not listening does not stall us
    assert published.message_id == answer_id(envelope.data.request_id, "rejected")
    assert world.catalogue.writes == 0 and world.catalogue.investigations == {}


async def test_more_files_than_a_request_may_hold_is_rejected() -> None:
    world = InstrumentWorld(max_datafiles_per_request=3)
    investigation = seed_investigation(files=4)
    await world.register(world.from_instrument(investigation))
    [rejected] = world.publisher.of_type(ArchiveRejected)
    assert isinstance(rejected, ArchiveRejected)
    assert rejected.rejection == "too_large"
    assert "4 datafiles" in rejected.reason and "limit is 3" in rejected.reason
    assert world.catalogue.writes == 0 and world.vocabulary.calls == []


async def test_a_plan_not_ours_is_rejected_before_anything_is_written() -> None:
    world = InstrumentWorld()
    investigation = seed_investigation()
    world.put_sources(investigation)
    request_id = str(uuid.uuid4())
    jobs = world.plan(investigation, request_id)
    forged = jobs[0].model_copy(
        update={
            "transfers": [
                t.model_copy(update={"destination": t.destination.replace("archive", "elsewhere")})
                for t in jobs[0].transfers
            ]
        }
    )
    data = ArchiveRequested(request_id=request_id, investigations=[investigation], jobs=[forged])
    envelope = wrap(data, source=DAQ, correlation_id=request_id, user=OWNER)
    await world.register(envelope)
    [rejected] = world.publisher.of_type(ArchiveRejected)
    assert isinstance(rejected, ArchiveRejected) and rejected.rejection == "untrusted_plan"
    assert world.catalogue.writes == 0


async def test_datasets_another_request_holds_are_a_duplicate_in_flight() -> None:
    world = InstrumentWorld()
    investigation = seed_investigation()
    world.put_sources(investigation)
    await world.register(world.from_instrument(investigation))
    writes = world.catalogue.writes
    world.publisher.published.clear()
    other = world.from_instrument(investigation)  # the same data under a new request id
    await world.register(other)
    [published] = world.publisher.published  # the answer only: no FAILED states of it
    rejected = published.data
    assert isinstance(rejected, ArchiveRejected)
    assert rejected.rejection == "duplicate_in_flight"
    assert "already archived or being archived" in rejected.reason
    assert rejected.request_id == other.data.request_id
    assert world.catalogue.writes == writes


async def test_a_request_from_the_gateway_is_not_answered_on_the_bus() -> None:
    world = InstrumentWorld()
    investigation = seed_investigation()
    world.put_sources(investigation)
    await world.register(world.request(investigation))  # source "tests": not an instrument
    assert world.publisher.of_type(ArchiveAccepted) == []
    assert world.vocabulary.calls == []  # the gateway checked its names


def refused(error: PermanentError, *, body: bytes, sender: str | None = DAQ) -> RefusedMessage:
    return RefusedMessage(
        body=body,
        sender=sender,
        message_id="m-1",
        correlation_id="c-1",
        reason=str(error),
        error=error,
    )


async def test_an_unreadable_message_of_an_instrument_is_rejected_as_schema() -> None:
    publisher = RecordingPublisher()
    answer = refusal_answerer(publisher, instrument_settings())
    body = json.dumps({"type": ArchiveRequested.TYPE, "data": {"request_id": "r-7"}}).encode()
    await answer(
        refused(InvalidMessageError("invalid ...: investigations: Field required"), body=body)
    )
    [published] = publisher.published
    rejected = published.data
    assert isinstance(rejected, ArchiveRejected)
    assert rejected.rejection == "schema" and "investigations" in rejected.reason
    assert rejected.request_id == "r-7" and rejected.request_message_id == "m-1"
    assert published.correlation_id == "r-7"
    assert published.message_id == answer_id("m-1", "rejected")  # the same message, the same answer


async def test_a_refused_sender_is_answered_only_when_it_is_an_instrument() -> None:
    publisher = RecordingPublisher()
    answer = refusal_answerer(publisher, instrument_settings())
    error = RefusedSenderError("wrong_instrument", "refused: 'daq-abc' may archive only for X")
    await answer(refused(error, body=b"not json"))
    await answer(refused(error, body=b"not json", sender="datastore-gateway"))
    await answer(refused(error, body=b"not json", sender=None))
    [rejected] = publisher.of_type(ArchiveRejected)
    assert isinstance(rejected, ArchiveRejected)
    assert rejected.rejection == "not_allowed" and rejected.request_id is None
    assert rejected.instrument == DAQ


async def test_a_given_up_instrument_request_is_reported_and_rejected() -> None:
    publisher = RecordingPublisher()
    reported: list[str] = []

    async def reporter(envelope: Envelope[Any], reason: str, exc: BaseException) -> None:
        reported.append(reason)
        await publisher.publish(
            RequestFailed(request_id="r", kind="archive", failure_class="system", reason=reason),
            correlation_id="r",
        )

    answer = give_up_answerer(reporter, publisher, instrument_settings())
    world = InstrumentWorld()
    envelope = world.from_instrument(seed_investigation())
    await answer(envelope, "gave up after 9 attempts: ICAT down", RuntimeError())
    assert reported == ["gave up after 9 attempts: ICAT down"]
    [rejected] = publisher.of_type(ArchiveRejected)
    assert isinstance(rejected, ArchiveRejected) and rejected.rejection == "given_up"
    # Not an instrument's: reported only.
    await answer(world.request(seed_investigation()), "why", RuntimeError())
    assert len(publisher.of_type(ArchiveRejected)) == 1


def test_the_ledger_binds_every_instruments_acceptance() -> None:
    assert binding_key(ArchiveAccepted) == "datastore.archive.accepted.v1.#"
