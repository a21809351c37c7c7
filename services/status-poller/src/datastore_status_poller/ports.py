"""The poller's own port: putting a job back to be polled again later."""

from __future__ import annotations

from abc import ABC, abstractmethod

from datastore_common.messages import TransferTracked


class Requeue(ABC):
    """Holds a tracked job for one poll interval, then hands it back to the poller."""

    @abstractmethod
    async def later(
        self, tracked: TransferTracked, *, correlation_id: str, user: str | None = None
    ) -> None:
        """Returns once the job is durably stored for its next poll."""
