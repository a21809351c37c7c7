"""The FTS VO our deterministic job ids derive from: configured, or asked of FTS once.

FTS names a deterministic job ``uuid5(uuid5(BASE_ID, vo), sid)``, so the gateway must know
the VO of the credential the fts-submitter uses. ``fts3.vo`` sets it; otherwise it is read
from FTS ``/whoami`` at start-up and cached for the life of the process. If FTS cannot be
reached at start-up, the gateway still starts and asks again on the next archive request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from datastore_common.adapters.fts3.client import Fts3Client
from datastore_common.errors import DatastoreError, PeerUnavailableError
from datastore_common.logging import get_logger
from datastore_common.settings import DatastoreSettings

log = get_logger(__name__)


class VoSource:
    def __init__(
        self, *, vo: str | None = None, fetch: Callable[[], Awaitable[str]] | None = None
    ) -> None:
        if vo is None and fetch is None:
            raise ValueError("a VO or a way to fetch it is needed")
        self._vo = vo
        self._fetch = fetch
        self._lock = asyncio.Lock()

    @property
    def known(self) -> str | None:
        return self._vo

    async def get(self) -> str:
        if self._vo is not None:
            return self._vo
        assert self._fetch is not None
        async with self._lock:  # one FTS call, however many requests wait for it
            if self._vo is None:
                try:
                    self._vo = await self._fetch()
                except DatastoreError as exc:
                    raise PeerUnavailableError(
                        f"FTS VO unknown (set fts3.vo, or FTS /whoami must answer): {exc}"
                    ) from exc
                log.info("fts_vo_learned", vo=self._vo)
            return self._vo


def vo_source_from_settings(settings: DatastoreSettings) -> VoSource:
    if settings.fts3.vo:
        return VoSource(vo=settings.fts3.vo)
    return VoSource(fetch=lambda: whoami_vo(settings))


async def whoami_vo(settings: DatastoreSettings) -> str:
    """Ask FTS who our credential is (the fts-submitter's credential: the same settings)."""
    fts = settings.fts3
    async with Fts3Client(
        str(fts.endpoint),
        cert=settings.x509_user_cert,
        key=settings.x509_user_key,
        token=fts.token.get_secret_value() if fts.token is not None else None,
        ca=fts.ca_path,
        verify=fts.verify_tls,
        timeout=fts.request_timeout,
        retry_attempts=2,
    ) as client:
        return (await client.whoami()).vo
