"""The TransferService port on FTS3: planned jobs in, job and file progress out.

``Fts3Client`` speaks the wire; this adapter decides what our jobs look like to FTS:
- every file carries ``metadata`` ``{"datafile_id", "dataset_id"}`` so a status answer can be
  mapped back to ICAT even without the plan at hand;
- job parameters follow the job's kind (settings ``fts3.*``): archive asks for
  ``archive_timeout`` (FINISHED only once on tape), restore for ``bring_online`` and
  ``copy_pin_lifetime``; both verify checksums and carry ``job_metadata``
  ``{"request_id", "kind", "sid"}`` for whoever looks at FTS's own monitoring.

Delegation happens here, once at a time: concurrent submissions that each met a 419 would each
ask FTS for a delegation request, and every PUT but the last then fails ("proxy does not match
the private key of the request"), a 400 that would read as the job being refused. So the proxy
is checked (and renewed when short) under a lock before submitting, at most every few minutes,
and a failure to delegate is transient: it is about our credential, never about the job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from datastore_common.adapters.fts3.client import Fts3Client
from datastore_common.adapters.fts3.proxy import require_private_key_file
from datastore_common.adapters.fts3.wire import FileStatus, JobParams, JobStatus, TransferSpec
from datastore_common.errors import (
    ConfigurationError,
    InvalidRequestError,
    PeerUnavailableError,
    PermanentError,
)
from datastore_common.messages import PlannedJob, PlannedTransfer
from datastore_common.ports import FileProgress, JobProgress, TransferService
from datastore_common.settings import DatastoreSettings, Fts3Settings

#: How often the delegated proxy is checked (the client renews it when < 2 h are left).
DELEGATION_CHECK_SECONDS: Final = 600.0


def transfer_spec(transfer: PlannedTransfer) -> TransferSpec:
    metadata: dict[str, Any] = {
        "datafile_id": transfer.datafile_id,
        "dataset_id": transfer.dataset_id,
    }
    return TransferSpec(
        source=transfer.source,
        destination=transfer.destination,
        checksum=transfer.checksum,
        filesize=transfer.filesize,
        metadata=metadata,
    )


def request_id_of(sid: str) -> str:
    """The request a sid belongs to (``job_sid`` is ``<request_id>:<batch index>``)."""
    request_id, _, _ = sid.rpartition(":")
    return request_id or sid


def job_params(job: PlannedJob, fts3: Fts3Settings) -> JobParams:
    """FTS parameters for a job of this kind, from the ``fts3`` settings."""
    metadata = {"request_id": request_id_of(job.sid), "kind": job.kind, "sid": job.sid}
    common = JobParams(
        verify_checksum=fts3.verify_checksum,
        overwrite=job.overwrite,
        retry=fts3.retry,
        priority=job.priority or fts3.priority,
        job_metadata=metadata,
    )
    if job.kind == "archive":
        return dataclasses.replace(common, archive_timeout=fts3.archive_timeout)
    return dataclasses.replace(
        common, bring_online=fts3.bring_online, copy_pin_lifetime=fts3.copy_pin_lifetime
    )


def file_progress(status: FileStatus) -> FileProgress:
    metadata = status.file_metadata if isinstance(status.file_metadata, Mapping) else None
    return FileProgress(
        file_id=status.file_id,
        source=status.source_surl,
        destination=status.dest_surl,
        state=status.file_state,
        reason=status.reason,
        metadata=metadata,
    )


def job_progress(status: JobStatus) -> JobProgress:
    return JobProgress(
        job_id=status.job_id,
        state=status.job_state,
        reason=status.reason,
        files=tuple(file_progress(f) for f in status.files),
    )


def require_private_credentials(settings: DatastoreSettings) -> None:
    """Refuse an X.509 key file others may read (``x509_user_key``, or the proxy file in
    ``x509_user_cert`` when no key is set) before anything connects; unused with a token."""
    if settings.fts3.token is not None or settings.x509_user_cert is None:
        return
    require_private_key_file(settings.x509_user_key or settings.x509_user_cert)


class Fts3TransferService(TransferService):
    """FTS3 through one long-lived ``Fts3Client``; close it with ``aclose()``."""

    def __init__(self, client: Fts3Client, fts3: Fts3Settings) -> None:
        self._client = client
        self._fts3 = fts3
        self.endpoint = client.endpoint
        self._delegation_lock = asyncio.Lock()
        self._delegation_checked: float | None = None

    @classmethod
    def from_settings(cls, settings: DatastoreSettings) -> Fts3TransferService:
        fts3 = settings.fts3
        token = fts3.token.get_secret_value() if fts3.token is not None else None
        if token is None and settings.x509_user_cert is None:
            raise ConfigurationError(
                "fts3: set fts3.token or x509_user_cert (and x509_user_key) to reach FTS3"
            )
        client = Fts3Client(
            str(fts3.endpoint),
            cert=None if token is not None else settings.x509_user_cert,
            key=None if token is not None else settings.x509_user_key,
            token=token,
            ca=fts3.ca_path,
            verify=fts3.verify_tls,
            timeout=fts3.request_timeout,  # each call sent once (architecture.md, "Retries")
        )
        return cls(client, fts3)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def vo(self) -> str:
        if self._fts3.vo:
            return self._fts3.vo
        return (await self._client.whoami()).vo  # the client caches the answer

    async def submit(self, job: PlannedJob) -> str:
        if not job.transfers:
            raise InvalidRequestError(f"job {job.job_id} ({job.sid}) has no transfers")
        await self.ensure_delegation()
        specs = [transfer_spec(t) for t in job.transfers]
        return await self._client.submit(specs, job_params(job, self._fts3), job.sid)

    async def ensure_delegation(self) -> None:
        """Make sure FTS holds a proxy of ours (certificate mode), one delegation at a time."""
        if self._client.uses_token or self._delegation_fresh():
            return
        async with self._delegation_lock:
            if self._delegation_fresh():
                return
            try:
                await self._client.delegate()
            except PermanentError as exc:
                raise PeerUnavailableError(f"FTS3 delegation failed: {exc}") from exc
            self._delegation_checked = time.monotonic()

    def _delegation_fresh(self) -> bool:
        checked = self._delegation_checked
        return checked is not None and time.monotonic() - checked < DELEGATION_CHECK_SECONDS

    async def status(self, job_ids: Sequence[str]) -> Mapping[str, JobProgress | None]:
        answers = await self._client.status(job_ids, with_files=True)
        return {
            job_id: None if status is None else job_progress(status)
            for job_id, status in answers.items()
        }

    async def cancel(self, job_id: str) -> JobProgress:
        return job_progress(await self._client.cancel(job_id))
