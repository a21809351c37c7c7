"""The FTS3 REST API's JSON as the official client speaks it (cern-fts/fts-rest-flask): the jobs
we send, the job and file states FTS answers, and its failed answers as ``errors`` types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from datastore_common.errors import (
    AlreadyExistsError,
    AuthenticationError,
    CredentialError,
    InvalidRequestError,
    NotFoundError,
    PeerUnavailableError,
)

VerifyChecksum = bool | Literal["both", "source", "target", "none"]


class DelegationRequiredError(AuthenticationError):
    """FTS answered 419: it holds no (or too short a) delegated proxy for us."""


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferSpec:
    """One file to copy: ``source`` -> ``destination`` (URLs FTS understands, e.g. root://)."""

    source: str
    destination: str
    checksum: str | None = None  # "adler32:0a1b2c3d"
    filesize: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobParams:
    """Parameters shared by every file of one FTS job (``None`` = FTS's default)."""

    verify_checksum: VerifyChecksum = "both"
    overwrite: bool = False
    retry: int = 0
    priority: int | None = None
    bring_online: int | None = None  # seconds; restore from tape
    copy_pin_lifetime: int | None = None  # seconds; restore from tape
    archive_timeout: int | None = None  # seconds; archive to tape
    job_metadata: Mapping[str, Any] | None = None


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhoAmI:
    """Who FTS thinks we are. ``vo`` is what deterministic job ids are derived from."""

    user_dn: str
    delegation_id: str
    vos: tuple[str, ...]
    method: str

    @property
    def vo(self) -> str:
        return self.vos[0] if self.vos else self.delegation_id


@dataclass(frozen=True)
class FileStatus:
    file_id: int
    file_state: str
    source_surl: str
    dest_surl: str
    reason: str | None = None
    filesize: int | None = None
    checksum: str | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    file_metadata: Any = None


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    job_state: str
    reason: str | None = None
    submit_time: datetime | None = None
    job_finished: datetime | None = None
    files: list[FileStatus] = field(default_factory=list)


# --- reading answers, writing jobs ------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """FTS's naive-UTC ``YYYY-MM-DDTHH:MM:SS`` (or ``None``) as an aware UTC datetime."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise PeerUnavailableError(f"wrong answer: bad timestamp {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(float(value))


def parse_file(data: Any) -> FileStatus:
    """A file object from FTS; raises ``PeerUnavailableError`` if it is not one."""
    try:
        return FileStatus(
            file_id=int(data["file_id"]),
            file_state=str(data["file_state"]),
            source_surl=str(data.get("source_surl") or ""),
            dest_surl=str(data.get("dest_surl") or ""),
            reason=_opt_str(data.get("reason")) or None,
            filesize=_opt_int(data.get("filesize")),
            checksum=_opt_str(data.get("checksum")),
            start_time=parse_time(data.get("start_time")),
            finish_time=parse_time(data.get("finish_time")),
            file_metadata=data.get("file_metadata"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PeerUnavailableError(f"wrong answer: not a file object: {exc!r}") from exc


def parse_job(data: Any) -> JobStatus:
    """A job object from FTS (with ``files`` if asked for)."""
    try:
        files = [parse_file(f) for f in data.get("files") or []]
        return JobStatus(
            job_id=str(data["job_id"]),
            job_state=str(data["job_state"]),
            reason=_opt_str(data.get("reason")) or None,
            submit_time=parse_time(data.get("submit_time")),
            job_finished=parse_time(data.get("job_finished")),
            files=files,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise PeerUnavailableError(f"wrong answer: not a job object: {exc!r}") from exc


def _entry_ok(entry: Mapping[str, Any]) -> bool:
    """True if a bulk-status entry is a job (``http_status`` absent or 2xx), not an error."""
    return str(entry.get("http_status") or "200")[:1] == "2"


def parse_bulk_status(ids: Sequence[str], body: Any) -> dict[str, JobStatus | None]:
    """Match a bulk-status answer (list, or one object for one id) to ``ids``; errors -> None."""
    entries = body if isinstance(body, list) else [body]
    result: dict[str, JobStatus | None] = dict.fromkeys(ids)
    for entry in entries:
        if not isinstance(entry, dict):
            raise PeerUnavailableError("wrong answer: bulk status entry is not an object")
        job_id = entry.get("job_id")
        if job_id in result and _entry_ok(entry):
            result[job_id] = parse_job(entry)
    return result


def job_body(transfers: Sequence[TransferSpec], params: JobParams, sid: str) -> dict[str, Any]:
    """The JSON FTS expects on ``POST /jobs`` for a deterministic job named by ``sid``."""
    files: list[dict[str, Any]] = []
    for t in transfers:
        entry: dict[str, Any] = {
            "sources": [t.source],
            "destinations": [t.destination],
            "selection_strategy": "auto",
        }
        if t.checksum is not None:
            entry["checksum"] = t.checksum
        if t.filesize is not None:
            entry["filesize"] = t.filesize
        if t.metadata:
            entry["metadata"] = dict(t.metadata)
        files.append(entry)
    return {
        "files": files,
        "params": {
            "verify_checksum": params.verify_checksum,
            "overwrite": params.overwrite,
            "retry": params.retry,
            "priority": params.priority,
            "bring_online": params.bring_online,
            "copy_pin_lifetime": params.copy_pin_lifetime,
            "archive_timeout": params.archive_timeout,
            "job_metadata": dict(params.job_metadata) if params.job_metadata else None,
            "id_generator": "deterministic",
            "sid": sid,
        },
    }


def error_message(response: httpx.Response) -> str:
    """FTS's error text: the JSON body's ``message`` if there is one, else the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.text.strip() or response.reason_phrase


def raise_for_status(response: httpx.Response) -> None:
    """Translate a failed FTS answer into an ``errors`` type (2xx returns quietly)."""
    code = response.status_code
    if code < 300:
        return
    what = f"FTS3 {response.request.method} {response.request.url.path}"
    if code >= 500:
        raise PeerUnavailableError(f"{what}: {code} {error_message(response)}")
    message = f"{what}: {error_message(response)}"
    if code == 400:
        raise InvalidRequestError(message)
    if code in (401, 403):
        # Our certificate, proxy or token: not the request's fault (retried, alarmed).
        raise CredentialError(f"{message} ({code}: our FTS credential was refused)")
    if code == 404:
        raise NotFoundError(message)
    if code == 409:
        raise AlreadyExistsError(message)
    if code == 419:
        raise DelegationRequiredError(message)
    if code < 400:
        raise PeerUnavailableError(f"wrong answer: {what}: unexpected {code}")
    raise InvalidRequestError(f"{what}: {code} {error_message(response)}")
