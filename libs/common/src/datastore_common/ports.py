"""Ports: what the services need from the outside world, as small abstract classes.

Handlers depend on these, never on aio-pika, httpx, python-icat or XRootD directly. Real
adapters live in ``datastore_common.adapters``; in-memory fakes for unit tests in
``datastore_common.testing.fakes``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datastore_common.messages import Payload, PlannedJob


class Publisher(ABC):
    """Publishes a payload; returns once the broker has stored it."""

    @abstractmethod
    async def publish(
        self, data: Payload, *, correlation_id: str, user: str | None = None
    ) -> None: ...


@dataclass(frozen=True)
class StoredFile:
    size: int
    checksum: str  # "adler32:<8 hex>"


class Storage(ABC):
    """Read-only look at a storage endpoint (the instrument data cache)."""

    @abstractmethod
    async def describe(self, url: str) -> StoredFile | None:
        """Size and adler32 of a file, or None when it does not exist."""


@dataclass(frozen=True)
class FileProgress:
    file_id: int | None
    source: str
    destination: str
    state: str
    reason: str | None = None
    metadata: Mapping[str, object] | None = None


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    state: str
    reason: str | None
    files: tuple[FileProgress, ...]


class TransferService(ABC):
    """FTS3, as the submitter and poller use it."""

    endpoint: str

    @abstractmethod
    async def vo(self) -> str:
        """The VO deterministic job ids are derived from."""

    @abstractmethod
    async def submit(self, job: PlannedJob) -> str:
        """Submit a planned job under its sid; an existing job with that sid is success."""

    @abstractmethod
    async def status(self, job_ids: Sequence[str]) -> Mapping[str, JobProgress | None]:
        """Bulk status; None for ids FTS does not know."""

    @abstractmethod
    async def cancel(self, job_id: str) -> JobProgress: ...


@dataclass(frozen=True)
class UserSession:
    session_id: str
    user_name: str  # ICAT's plugin/name


class Sessions(ABC):
    """ICAT as the *user* sees it: login and checking a session (gateway)."""

    @abstractmethod
    async def login(self, auth: str, credentials: Mapping[str, str]) -> str:
        """A new ICAT session id; AuthenticationError when refused."""

    @abstractmethod
    async def check(self, session_id: str) -> UserSession:
        """Who owns the session; AuthenticationError when unknown or expired."""
