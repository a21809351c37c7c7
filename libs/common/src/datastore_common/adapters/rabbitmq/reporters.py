"""What every consumer tells the others when it retries or gives a message up: the
``on_retry`` and ``on_give_up`` a service passes to ``Bus.consume``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from datastore_common.adapters.rabbitmq.consumer import GiveUpHandler, RetryHandler
from datastore_common.domain.failures import failure_class_of, give_up_events
from datastore_common.logging import get_logger
from datastore_common.messages import Envelope, Payload, PlannedJob, RequestDelayed
from datastore_common.ports import Publisher

log = get_logger(__name__)

#: Finds the jobs of a message that names none (an instrument's archive request); may raise.
Planner = Callable[[Payload], Sequence[PlannedJob] | None]


def give_up_reporter(
    publisher: Publisher, *, fts_endpoint: str, planner: Planner | None = None
) -> GiveUpHandler:
    """The ``on_give_up`` of a consumer: publish the FAILED states and ``request.failed``
    (``domain.failures``) before the message goes to its DLQ."""

    async def report(envelope: Envelope[Any], reason: str, exc: BaseException) -> None:
        jobs: Sequence[PlannedJob] | None = None
        if planner is not None:
            try:
                jobs = planner(envelope.data)
            except Exception as plan_error:  # the plan itself may be what failed
                log.warning("give_up_without_plan", error=str(plan_error))
        events = give_up_events(
            envelope.data, reason, failure_class_of(exc), fts_endpoint=fts_endpoint, jobs=jobs
        )
        for event in events:
            await publisher.publish(
                event, correlation_id=envelope.correlation_id, user=envelope.user
            )
        log.error(
            "request_given_up",
            type=envelope.type,
            correlation_id=envelope.correlation_id,
            reason=reason,
            events=[event.TYPE for event in events],
        )

    return report


def retry_reporter(publisher: Publisher) -> RetryHandler:
    """The ``on_retry`` of a consumer: tell the ledger what the request now waits for."""

    async def report(envelope: Envelope[Any], reason: str, delay: float) -> None:
        request_id = getattr(envelope.data, "request_id", None)
        if request_id is None:
            return
        notice = RequestDelayed(
            request_id=request_id,
            reason=reason[:500],
            retry_at=datetime.now(UTC) + timedelta(seconds=delay),
        )
        await publisher.publish(notice, correlation_id=envelope.correlation_id, user=envelope.user)

    return report
