"""In-memory ``Requeue`` for unit tests and benchmarks: keeps what would wait for the next poll."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datastore_common.messages import Envelope, TransferTracked, wrap
from datastore_status_poller.ports import Requeue


@dataclass
class Waiting:
    tracked: TransferTracked
    correlation_id: str
    user: str | None


class RecordingRequeue(Requeue):
    def __init__(self) -> None:
        self.waiting: list[Waiting] = []
        self.fail_with: Exception | None = None

    async def later(
        self, tracked: TransferTracked, *, correlation_id: str, user: str | None = None
    ) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.waiting.append(Waiting(tracked, correlation_id, user))

    def due(self) -> list[Envelope[Any]]:
        """Everything waiting, as the envelopes the poll queue would deliver; clears the list."""
        envelopes: list[Envelope[Any]] = [
            wrap(w.tracked, source="tests", correlation_id=w.correlation_id, user=w.user)
            for w in self.waiting
        ]
        self.waiting = []
        return envelopes
