"""The broker is a door too: forged messages change nothing in ICAT or FTS.

Each service runs as its own broker user (tests/support/stack_fixtures.py), and RabbitMQ
checks every message's ``user_id`` against the connection's user. Here somebody holding a
broker password (the instrument's, the gateway's, the operator's) publishes what only
another role may publish, without a ``user_id``, vouching falsely for another sender, or
archiving for an instrument or as an identity it was not given. Every one is dead-lettered
by each consumer it reaches, with the reason in its headers, and nothing happens: no FTS
job, no file copied, no ICAT entity or state written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import httpx
import pytest

from datastore_common.domain.senders import HEADER_SENDER, INSTRUMENT, OPERATOR
from datastore_common.messages import (
    ArchiveRegistered,
    ArchiveRequested,
    DatafileKey,
    FileState,
    InvestigationSpec,
    Payload,
    PlannedJob,
    PlannedTransfer,
    RestoreRequested,
    TransferStatus,
    wrap,
)
from datastore_common.ops.dlq import connect, show_dlq
from datastore_common.topology import (
    FTS_SUBMITTER,
    GATEWAY_LEDGER,
    ICAT_WRITER_ARCHIVE,
    ICAT_WRITER_STATUS,
    dlq_name,
)
from tests.e2e.api_client import ARCHIVAL_STATE, archival_parameters, icat_root, wait_for
from tests.e2e.test_restore_flow import archived_dataset
from tests.support.factories import seed_body
from tests.support.fts3_fixtures import Fts3Emulator
from tests.support.stack_fixtures import DatastoreStack

pytestmark = pytest.mark.e2e


@pytest.fixture
def icat_client(datastore_stack: DatastoreStack) -> Iterator[Any]:
    client = icat_root(datastore_stack.icat_url)
    yield client
    client.cleanup()


@dataclass(frozen=True)
class Forgery:
    what: str
    publisher: str  # whose broker password the forger holds
    payload: Payload
    reason: str  # in the dead letter's x-datastore-error
    queues: tuple[str, ...]  # every consumer queue it reaches
    user_id: str | bool | None = True  # True: the publisher's own user; None: no user_id
    vouch_for: str | None = None
    icat_user: str | None = None


def publish(stack: DatastoreStack, forgery: Forgery) -> str:
    """Publish one forged message; its correlation id."""
    correlation_id = f"forged-{uuid.uuid4()}"
    envelope = wrap(
        forgery.payload,
        source="forger",
        correlation_id=correlation_id,
        user=forgery.icat_user,
    )
    url = stack.broker_urls[forgery.publisher]
    user = stack.settings_as(forgery.publisher).broker.user
    user_id = user if forgery.user_id is True else forgery.user_id

    async def send() -> None:
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(stack.settings.broker.exchange, ensure=False)
            headers = {HEADER_SENDER: forgery.vouch_for} if forgery.vouch_for else {}
            await exchange.publish(
                aio_pika.Message(
                    envelope.model_dump_json().encode(),
                    content_type="application/json",
                    user_id=user_id or None,
                    headers=headers,
                    type=envelope.type,
                ),
                routing_key=envelope.type,
                mandatory=True,
            )
        finally:
            await connection.close()

    asyncio.run(send())
    return correlation_id


def dead_letters(stack: DatastoreStack, queue: str, correlation_id: str) -> list[str]:
    """The errors of the dead letters of ``correlation_id`` in ``queue``'s DLQ."""

    async def look() -> list[str]:
        async with connect(stack.broker_urls[OPERATOR]) as connection:
            name = dlq_name(stack.settings.broker.queue_prefix + queue)
            report = await show_dlq(connection, name, limit=10_000)
            return [
                letter.error or ""
                for letter in report.shown
                if letter.correlation_id == correlation_id
            ]

    return asyncio.run(look())


def fts_job_exists(fts3_emulator: Fts3Emulator, job_id: str) -> bool:
    answer = httpx.get(
        f"{fts3_emulator.url}/jobs/{job_id}",
        headers={"Authorization": f"Bearer {fts3_emulator.token}"},
        verify=str(fts3_emulator.ca),
        timeout=30,
    )
    return answer.status_code == 200


@pytest.mark.timeout(600)
def test_forged_messages_are_refused_and_change_nothing(
    datastore_stack: DatastoreStack, icat_client: Any, fts3_emulator: Fts3Emulator
) -> None:
    stack = datastore_stack
    settings = stack.settings
    name, _sums, dataset_id = archived_dataset(stack, icat_client, files=1)
    before = archival_parameters(icat_client, name)
    [[datafile_id, location]] = icat_client.search(
        f"SELECT df.id, df.location FROM Datafile df WHERE df.dataset.id = {dataset_id}"
    )
    tape = f"{settings.tape_archive}{settings.tape_root_dir}{location}"
    stolen = f"{settings.user_data_cache}forged/{uuid.uuid4().hex}/{location.rsplit('/', 1)[-1]}"
    restore_job = f"forged-restore-{uuid.uuid4().hex[:8]}"
    copy_to_anywhere = RestoreRequested(
        request_id="forged",
        jobs=[
            PlannedJob(
                job_id=restore_job,
                sid=restore_job,
                kind="restore",
                transfers=[PlannedTransfer(source=tape, destination=stolen)],
            )
        ],
    )
    archive_job = f"forged-archive-{uuid.uuid4().hex[:8]}"
    registered = ArchiveRegistered(
        request_id="forged",
        jobs=[
            PlannedJob(
                job_id=archive_job,
                sid=archive_job,
                kind="archive",
                transfers=[PlannedTransfer(source=tape, destination=stolen)],
            )
        ],
    )
    mark_failed = TransferStatus(
        request_id="forged",
        kind="archive",
        job_id=f"forged-status-{uuid.uuid4().hex[:8]}",
        fts_endpoint=str(settings.fts3.endpoint),
        job_state="FAILED",
        reason="forged",
        files=[
            FileState(
                source=f"{settings.instrument_data_cache}{location}",
                destination=tape,
                datafile_id=int(datafile_id),
                dataset_id=dataset_id,
                datafile=DatafileKey(
                    investigation=name,
                    visit_id="1",
                    dataset="scan_0000",
                    datafile=location.rsplit("/", 1)[-1],
                ),
                state="FAILED",
                reason="forged",
            )
        ],
    )
    other_name = f"FRG{uuid.uuid4().hex[:8].upper()}"
    foreign = seed_body(other_name, files=1)["investigations"]
    foreign[0]["instrument"]["name"] = "another-instrument"
    own = seed_body(other_name, files=1)["investigations"]
    for_other_instrument = ArchiveRequested(
        request_id="forged", investigations=[InvestigationSpec.model_validate(i) for i in foreign]
    )
    as_someone_else = ArchiveRequested(
        request_id="forged", investigations=[InvestigationSpec.model_validate(i) for i in own]
    )
    both_status = (ICAT_WRITER_STATUS, GATEWAY_LEDGER)
    forgeries = [
        Forgery(
            "an instrument copies a tape file anywhere",
            INSTRUMENT,
            copy_to_anywhere,
            "may not publish datastore.restore.requested",
            (FTS_SUBMITTER, GATEWAY_LEDGER),
        ),
        Forgery(
            "the gateway's password submits an FTS job",
            "gateway",
            registered,
            "may not publish datastore.archive.registered",
            (FTS_SUBMITTER,),
        ),
        Forgery(
            "no user_id at all",
            OPERATOR,
            registered,
            "no AMQP user_id",
            (FTS_SUBMITTER,),
            user_id=None,
        ),
        Forgery(
            "the gateway marks a datafile FAILED",
            "gateway",
            mark_failed,
            "may not publish datastore.transfer.status",
            both_status,
        ),
        Forgery(
            "the gateway vouches for the poller",
            "gateway",
            mark_failed,
            "only copies put back into a queue may",
            both_status,
            vouch_for=stack.settings_as("status-poller").broker.user,
        ),
        Forgery(
            "an instrument archives for another instrument",
            INSTRUMENT,
            for_other_instrument,
            "may archive only for instrument",
            (ICAT_WRITER_ARCHIVE, GATEWAY_LEDGER),
            icat_user="simple/root",
        ),
        Forgery(
            "an instrument archives as somebody else",
            INSTRUMENT,
            as_someone_else,
            "archives as 'simple/root'",
            (ICAT_WRITER_ARCHIVE, GATEWAY_LEDGER),
            icat_user="simple/someone-else",
        ),
    ]
    for forgery in forgeries:
        correlation_id = publish(stack, forgery)
        for queue in forgery.queues:
            errors = wait_for(
                lambda q=queue, c=correlation_id: dead_letters(stack, q, c),  # type: ignore[misc]
                60,
                f"{forgery.what}: dead-lettered by {queue}",
            )
            assert len(errors) == 1, (forgery.what, queue, errors)
            assert forgery.reason in errors[0], (forgery.what, queue, errors)

    stack.assert_running()
    # Nothing happened: no FTS job, ICAT unchanged, no investigation registered.
    assert not fts_job_exists(fts3_emulator, restore_job)
    assert not fts_job_exists(fts3_emulator, archive_job)
    assert archival_parameters(icat_client, name) == before
    assert before["Dataset:scan_0000"][ARCHIVAL_STATE] == "FINISHED"
    assert icat_client.search(f"SELECT i FROM Investigation i WHERE i.name = '{other_name}'") == []
    # ... and no request appeared for the owner of the forged identity.
    gateway = stack.gateway_url
    session = httpx.post(
        f"{gateway}/login",
        json={"auth": "simple", "username": "root", "password": "pw"},
        timeout=30,
    ).json()["sessionId"]
    mine = httpx.get(
        f"{gateway}/requests",
        params={"investigation": other_name, "mine": "false"},
        headers={"Authorization": f"Bearer {session}"},
        timeout=30,
    )
    assert mine.status_code == 200, mine.text
    assert mine.json()["items"] == []
