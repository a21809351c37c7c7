"""Answering instruments: ``archive.accepted`` / ``archive.rejected`` on the bus.

An instrument account (``instruments:`` in the settings) that publishes ``archive.requested``
straight to the broker is answered by the icat-writer, which consumes that request:
- by the archive handler (``handlers.register_archive``): rejected for its size, names ICAT
  does not know, a plan not ours, datasets another request holds; accepted once registered;
- by the consumer's ``on_refused`` (``answer_refusal``): rejected when it does not parse or
  its account may not send it (``domain.senders``), before any handler ran;
- by ``on_give_up`` (``answer_give_up``): rejected when it was given up.
What to say is decided in ``datastore_common.domain.answers``; here it is published.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datastore_common.adapters.rabbitmq.consumer import (
    GiveUpHandler,
    RefusalHandler,
    RefusedMessage,
)
from datastore_common.domain import answers
from datastore_common.logging import get_logger
from datastore_common.messages import ArchiveRequested, Envelope, RejectionClass
from datastore_common.ports import Publisher
from datastore_common.settings import DatastoreSettings

log = get_logger(__name__)


def instrument_of(settings: DatastoreSettings, sender: str | None) -> str | None:
    """The instrument account's broker user when ``sender`` is one (it is answered)."""
    return answers.instrument_of(sender, (a.broker_user for a in settings.instruments))


async def reject(
    publisher: Publisher,
    *,
    instrument: str,
    request_id: str | None,
    request_message_id: str | None,
    rejection: RejectionClass,
    reason: str,
    correlation_id: str,
    user: str | None = None,
) -> None:
    """Publish ``archive.rejected`` to ``instrument``: one message however often it is sent
    (its id names what it answers)."""
    answered = request_message_id or request_id
    await publisher.publish(
        answers.rejected(
            instrument=instrument,
            request_id=request_id,
            request_message_id=request_message_id,
            rejection=rejection,
            reason=reason,
        ),
        correlation_id=correlation_id,
        user=user,
        message_id=answers.answer_id(answered, "rejected") if answered else None,
    )
    log.warning(
        "archive_rejected",
        instrument=instrument,
        correlation_id=correlation_id,
        rejection=rejection,
        reason=reason,
    )


async def reject_request(
    publisher: Publisher,
    envelope: Envelope[ArchiveRequested],
    instrument: str,
    rejection: RejectionClass,
    reason: str,
) -> None:
    """Reject a request the handler read; keyed by the request, as its acceptance would be."""
    await reject(
        publisher,
        instrument=instrument,
        request_id=envelope.data.request_id,
        request_message_id=None,
        rejection=rejection,
        reason=reason,
        correlation_id=envelope.correlation_id,
        user=envelope.user,
    )


async def accept(
    publisher: Publisher,
    envelope: Envelope[ArchiveRequested],
    instrument: str,
    job_ids: Sequence[str],
    settings: DatastoreSettings,
) -> None:
    """Publish ``archive.accepted`` to ``instrument`` (and so into the request ledger)."""
    request = envelope.data
    await publisher.publish(
        answers.accepted(
            request,
            instrument=instrument,
            owner=envelope.user or "",
            job_ids=job_ids,
            public_url=settings.gateway.public_url,
            request_message_id=str(envelope.id),
        ),
        correlation_id=envelope.correlation_id,
        user=envelope.user,
        message_id=answers.answer_id(request.request_id, "accepted"),
    )
    log.info("archive_accepted", instrument=instrument, request_id=request.request_id)


def refusal_answerer(publisher: Publisher, settings: DatastoreSettings) -> RefusalHandler:
    """The archive queue's ``on_refused``: an instrument's message that does not parse, or
    that its account may not send, is answered ``archive.rejected`` (others are only
    dead-lettered: there is nobody to tell)."""

    async def answer_refusal(refused: RefusedMessage) -> None:
        instrument = instrument_of(settings, refused.sender)
        if instrument is None:
            return
        request_id = answers.request_id_in(refused.body)
        await reject(
            publisher,
            instrument=instrument,
            request_id=request_id,
            request_message_id=refused.message_id,
            rejection=answers.rejection_of(refused.error),
            reason=refused.reason,
            correlation_id=request_id or refused.correlation_id or refused.message_id or "unknown",
        )

    return answer_refusal


def give_up_answerer(
    reporter: GiveUpHandler, publisher: Publisher, settings: DatastoreSettings
) -> GiveUpHandler:
    """``reporter`` (the FAILED states, ``request.failed``), then, for an instrument's
    request, ``archive.rejected`` saying why it was given up."""

    async def report_and_answer(envelope: Envelope[Any], reason: str, exc: BaseException) -> None:
        await reporter(envelope, reason, exc)
        instrument = instrument_of(settings, envelope.source)
        if instrument is None or not isinstance(envelope.data, ArchiveRequested):
            return
        await reject_request(publisher, envelope, instrument, "given_up", reason)

    return report_and_answer
