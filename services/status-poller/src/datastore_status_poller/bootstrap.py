"""Composition root of the status-poller: real adapters unless a test passes its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from datastore_common.messages import Envelope
from datastore_common.ports import Publisher, TransferService
from datastore_status_poller.handlers import UNKNOWN_GRACE_POLLS, poll_batch
from datastore_status_poller.ports import Requeue

BatchHandler = Callable[[list[Envelope[Any]]], Awaitable[None]]


def bootstrap(
    *,
    transfers: TransferService,
    publisher: Publisher,
    requeue: Requeue,
    unknown_grace: int = UNKNOWN_GRACE_POLLS,
) -> BatchHandler:
    """``poll_batch`` with its dependencies bound, ready for ``Bus.consume_batches``."""
    return partial(
        poll_batch,
        transfers=transfers,
        publisher=publisher,
        requeue=requeue,
        unknown_grace=unknown_grace,
    )
