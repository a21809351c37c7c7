"""Fakes subclass the ports and keep state that tests assert on (cosmicpython style)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from datastore_common.domain.job_ids import fts_job_id
from datastore_common.domain.states import CANCELED, is_terminal
from datastore_common.errors import (
    InvalidRequestError,
    NotFoundError,
    PeerTimeoutError,
    PeerUnavailableError,
    PermanentError,
    SessionRefusedError,
    TransientError,
)
from datastore_common.messages import Payload, PlannedJob
from datastore_common.ports import (
    FileProgress,
    JobProgress,
    Publisher,
    QueueDepth,
    QueueDepths,
    Sessions,
    Storage,
    StoredFile,
    TransferService,
    UserSession,
)


@dataclass
class Published:
    data: Payload
    correlation_id: str
    user: str | None
    message_id: uuid.UUID | None = None


class RecordingPublisher(Publisher):
    """Keeps what was published; ``fail_with`` makes the next publishes raise."""

    def __init__(self) -> None:
        self.published: list[Published] = []
        self.fail_with: Exception | None = None

    async def publish(
        self,
        data: Payload,
        *,
        correlation_id: str,
        user: str | None = None,
        message_id: uuid.UUID | None = None,
    ) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.published.append(Published(data, correlation_id, user, message_id))

    def of_type(self, payload: type[Payload]) -> list[Payload]:
        return [p.data for p in self.published if isinstance(p.data, payload)]


class FakeStorage(Storage):
    """Files in a dict. ``fail_with`` makes every call raise; ``time_out`` makes calls raise
    :class:`PeerTimeoutError`, as the XRootD adapter does when a server does not answer in
    time: for given URLs (until ``recover``) and/or for the next ``calls`` calls."""

    def __init__(self, files: Mapping[str, StoredFile] | None = None) -> None:
        self.files: dict[str, StoredFile] = dict(files or {})
        self.fail_with: Exception | None = None
        self.timing_out: set[str] = set()
        self.time_outs_left = 0
        self.described: list[str] = []  # every URL asked about, in call order
        self.removed: list[str] = []  # every URL removed, in call order

    def time_out(self, *urls: str, calls: int = 0) -> None:
        """Time out every call for ``urls`` until ``recover()``, and the next ``calls`` calls
        (whatever their URL)."""
        self.timing_out.update(urls)
        self.time_outs_left += calls

    def recover(self) -> None:
        self.timing_out.clear()
        self.time_outs_left = 0
        self.fail_with = None

    async def describe(self, url: str) -> StoredFile | None:
        self.described.append(url)
        if self.fail_with is not None:
            raise self.fail_with
        if self.time_outs_left > 0 or url in self.timing_out:
            self.time_outs_left = max(0, self.time_outs_left - 1)
            raise PeerTimeoutError(f"xrootd stat {url}: no answer")
        return self.files.get(url)

    async def list_tree(self, url: str) -> dict[str, int]:
        if self.fail_with is not None:
            raise self.fail_with
        folder = url if url.endswith("/") else url + "/"
        return {
            name[len(folder) :]: stored.size
            for name, stored in self.files.items()
            if name.startswith(folder)
        }

    async def remove(self, url: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        if self.files.pop(url, None) is None:
            raise NotFoundError(f"xrootd rm {url}: no such file")
        self.removed.append(url)


#: FTS's reason for a job, and its files, cancelled by the user.
CANCELED_BY_USER = "Job canceled by the user"


@dataclass
class FakeTransferService(TransferService):
    """Jobs live in a dict; tests move their states with ``set_state``. As FTS (and the
    ``Fts3TransferService`` on it) answers: a file's ``metadata`` holds the ICAT ids the
    submitter sent, a job without transfers is refused, a cancel ends only what still runs
    (and answers the job without its files), and a job FTS does not know is None in a status
    answer and NotFoundError to cancel."""

    endpoint: str = "https://fts.test:8446"
    vo_name: str = "test-vo"
    jobs: dict[str, PlannedJob] = field(default_factory=dict)
    states: dict[str, JobProgress] = field(default_factory=dict)
    submit_calls: int = 0
    status_calls: int = 0
    refuse_with: str | None = None  # a permanent refusal message
    down: bool = False

    async def vo(self) -> str:
        return self.vo_name

    async def submit(self, job: PlannedJob) -> str:
        self.submit_calls += 1
        if not job.transfers:
            raise InvalidRequestError(f"job {job.job_id} ({job.sid}) has no transfers")
        if self.down:
            raise TransientError("fts is down")
        if self.refuse_with is not None:
            raise PermanentError(self.refuse_with)
        job_id = fts_job_id(self.vo_name, job.sid)
        if job_id not in self.jobs:
            self.jobs[job_id] = job
            self.states[job_id] = JobProgress(
                job_id,
                "SUBMITTED",
                None,
                tuple(
                    FileProgress(
                        i,
                        t.source,
                        t.destination,
                        "SUBMITTED",
                        metadata={"datafile_id": t.datafile_id, "dataset_id": t.dataset_id},
                    )
                    for i, t in enumerate(job.transfers)
                ),
            )
        return job_id

    def set_state(
        self, job_id: str, state: str, file_states: Sequence[str | tuple[str, str]] | None = None
    ) -> None:
        old = self.states[job_id]
        files = []
        for index, current in enumerate(old.files):
            new = file_states[index] if file_states is not None else state
            file_state, reason = new if isinstance(new, tuple) else (new, None)
            files.append(
                FileProgress(
                    current.file_id,
                    current.source,
                    current.destination,
                    file_state,
                    reason,
                    current.metadata,
                )
            )
        self.states[job_id] = JobProgress(job_id, state, None, tuple(files))

    async def status(self, job_ids: Sequence[str]) -> Mapping[str, JobProgress | None]:
        self.status_calls += 1
        if self.down:
            raise TransientError("fts is down")
        return {job_id: self.states.get(job_id) for job_id in job_ids}

    async def cancel(self, job_id: str) -> JobProgress:
        if self.down:
            raise TransientError("fts is down")
        job = self.states.get(job_id)
        if job is None:
            raise NotFoundError(f'No job with the id "{job_id}" has been found')
        if not is_terminal(job.state):  # FTS leaves an ended job as it was
            files = tuple(
                f
                if is_terminal(f.state)
                else dataclasses.replace(f, state=CANCELED, reason=CANCELED_BY_USER)
                for f in job.files
            )
            job = self.states[job_id] = JobProgress(job_id, CANCELED, CANCELED_BY_USER, files)
        # FTS answers a cancel with the job alone: its files are for a status request.
        return dataclasses.replace(job, files=())


class FakeSessions(Sessions):
    """Users and passwords in a dict; sessions are uuids that can be expired by tests."""

    def __init__(self, users: Mapping[str, str] | None = None) -> None:
        self.users = dict(users or {"simple/root": "pw"})
        self.sessions: dict[str, str] = {}
        self.checks = 0

    async def login(self, auth: str, credentials: Mapping[str, str]) -> str:
        name = f"{auth}/{credentials.get('username', '')}"
        if self.users.get(name) != credentials.get("password"):
            raise SessionRefusedError("wrong username or password")
        session_id = str(uuid.uuid4())
        self.sessions[session_id] = name
        return session_id

    async def check(self, session_id: str) -> UserSession:
        self.checks += 1
        name = self.sessions.get(session_id)
        if name is None:
            raise SessionRefusedError("session expired or unknown")
        return UserSession(session_id, name)

    def expire(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)


class FakeQueueDepths(QueueDepths):
    """Queue depths set by a test (``messages``, ``consumers`` by queue name); a queue not set
    is not declared. ``unavailable`` makes every ask fail as an unreachable broker would."""

    def __init__(self) -> None:
        self.messages: dict[str, int] = {}
        self.consumers: dict[str, int] = {}
        self.unavailable: str | None = None
        self.asked: list[list[str]] = []

    async def depths(self, queues: Sequence[str]) -> list[QueueDepth]:
        self.asked.append(list(queues))
        if self.unavailable is not None:
            raise PeerUnavailableError(self.unavailable)
        return [
            QueueDepth(q, self.messages[q], self.consumers.get(q, 0))
            if q in self.messages
            else QueueDepth(q, None, None)
            for q in queues
        ]
