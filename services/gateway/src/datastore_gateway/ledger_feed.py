"""The ``gateway.ledger`` queue -> the request ledger: every event that moves a request."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from datastore_common.domain.ledger import accepted_request, ledger_jobs, new_request
from datastore_common.errors import PeerUnavailableError
from datastore_common.logging import get_logger
from datastore_common.messages import (
    ArchiveAccepted,
    ArchiveRegistered,
    ArchiveRequested,
    ArchiveRetryRequested,
    Envelope,
    RequestDelayed,
    RequestFailed,
    RestoreRequested,
    TransferStatus,
    TransferSubmitted,
)
from datastore_gateway.ledger import Ledger

log = get_logger(__name__)

#: The gateway publishes as this source; anything else came straight from the broker.
GATEWAY_SOURCE = "gateway"
#: An event of a request the ledger does not know yet waits this long for the request's own
#: event (retried by the bus); older ones belong to requests the ledger never had or forgot.
UNKNOWN_REQUEST_GRACE_SECONDS = 600.0


async def follow(
    envelope: Envelope[Any], *, ledger: Ledger, instruments: Collection[str] = ()
) -> None:
    """Apply one event; a request's own event records it, the others move it forward.

    An instrument account's request (its broker user in ``instruments``: the consumer set
    the source to it, ``domain.senders``) is recorded once the icat-writer accepted it
    (``archive.accepted``): one it rejects never enters the ledger."""
    data = envelope.data
    if isinstance(data, ArchiveAccepted):
        await ledger.record(accepted_request(data, owner=envelope.user))
        return
    if isinstance(data, ArchiveRequested | ArchiveRetryRequested | RestoreRequested):
        if envelope.source in instruments:
            return
        source = "http" if envelope.source == GATEWAY_SOURCE else "broker"
        await ledger.record(new_request(data, owner=envelope.user, source=source))
        return
    if not await ledger.knows(data.request_id):
        age = time.time() - envelope.time.timestamp()
        if age < UNKNOWN_REQUEST_GRACE_SECONDS:
            raise PeerUnavailableError(
                f"request {data.request_id} is not in the ledger yet; its event comes first"
            )
        log.info("ledger_event_of_unknown_request", request_id=data.request_id, type=envelope.type)
        return
    if isinstance(data, ArchiveRegistered):
        await ledger.registered(data.request_id, ledger_jobs(data.jobs))
    elif isinstance(data, TransferSubmitted):
        await ledger.submitted(data.request_id, data.job_id)
    elif isinstance(data, TransferStatus):
        await ledger.apply_status(data)
    elif isinstance(data, RequestFailed):
        await ledger.fail(data)
    elif isinstance(data, RequestDelayed):
        await ledger.delayed(data)
