"""Composition root of the fts-submitter: real adapters unless a test passes its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from datastore_common.messages import Envelope
from datastore_common.ports import Publisher, TransferService
from datastore_fts_submitter.handlers import submit_jobs

Handler = Callable[[Envelope[Any]], Awaitable[None]]


def bootstrap(*, transfers: TransferService, publisher: Publisher) -> Handler:
    """``submit_jobs`` with its dependencies bound, ready for the bus."""
    return partial(submit_jobs, transfers=transfers, publisher=publisher)
